//! API keys: login with a key, what its token carries, every refusal looking like a wrong
//! password, the CLI round trip, and a database that holds no usable key.

use std::time::Duration;

use authd::service::AdminError;
use tonic::Code;

use crate::helpers::{PASSWORD, assert_unauthenticated, spawn_app};

const BAD_LOGIN: &str = "invalid username or password";

#[tokio::test]
async fn api_key_logs_in_with_the_keys_roles_and_id_and_no_refresh_token() {
    let app = spawn_app().await;
    app.add_user("alice", &["admin", "billing:read"]).await;
    let (id, key) = app.create_api_key("alice", &["billing:read"], None).await;
    assert!(
        key.starts_with(&format!("authd_{id}_")),
        "recognisable prefix and id"
    );

    let tokens = app.api_key_login(&key).await.unwrap();
    assert!(
        tokens.refresh_token.is_empty(),
        "the key is the long-lived credential"
    );
    let (_, claims) = app.verify(&tokens.access_token);
    let password_login = app.login("alice", PASSWORD).await.unwrap();
    let (_, user_claims) = app.verify(&password_login.access_token);
    assert_eq!(claims.sub, user_claims.sub, "sub is the owning user");
    assert_eq!(claims.roles, vec!["billing:read"]);
    assert_eq!(claims.key_id.as_deref(), Some(id.as_str()));
    assert_eq!(user_claims.key_id, None, "password logins name no key");

    // Without --role a key gets all of the user's roles.
    let (_, all) = app.create_api_key("alice", &[], None).await;
    let (_, claims) = app.verify(&app.api_key_login(&all).await.unwrap().access_token);
    assert_eq!(claims.roles, vec!["admin", "billing:read"]);

    // Introspect names the key.
    let answer = app.introspect(&tokens.access_token).await.unwrap();
    assert!(answer.active);
    assert_eq!(answer.key_id, id);
    assert_eq!(answer.roles, vec!["billing:read"]);
}

#[tokio::test]
async fn revoking_a_key_or_disabling_its_owner_makes_its_tokens_inactive_online() {
    let app = spawn_app().await;
    app.add_user("alice", &[]).await;
    let (id, key) = app.create_api_key("alice", &[], None).await;
    let (_, other) = app.create_api_key("alice", &[], None).await;
    let token = app.api_key_login(&key).await.unwrap().access_token;
    let other_token = app.api_key_login(&other).await.unwrap().access_token;
    assert!(app.is_active(&token).await);
    app.api_keys().await.revoke(&id).await.unwrap();
    assert!(!app.is_active(&token).await);
    // Offline verification cannot know until exp: the documented trade-off.
    app.verify(&token);
    assert!(app.is_active(&other_token).await);
    app.admin().await.set_enabled("alice", false).await.unwrap();
    assert!(!app.is_active(&other_token).await);
}

#[tokio::test]
async fn a_role_taken_from_the_user_is_taken_from_the_key() {
    let app = spawn_app().await;
    app.add_user("alice", &["admin", "ops"]).await;
    let (_, key) = app.create_api_key("alice", &[], None).await;
    app.admin()
        .await
        .change_roles("alice", &[], &["admin".into()])
        .await
        .unwrap();
    let (_, claims) = app.verify(&app.api_key_login(&key).await.unwrap().access_token);
    assert_eq!(claims.roles, vec!["ops"]);
}

#[tokio::test]
async fn keys_cannot_have_roles_their_user_lacks() {
    let app = spawn_app().await;
    app.add_user("alice", &["ops"]).await;
    let err = app
        .api_keys()
        .await
        .create("alice", "ci", &["admin".into()], None)
        .await
        .unwrap_err();
    assert!(matches!(err, AdminError::RoleNotHeld(_)), "{err:?}");
    assert_eq!(err.to_string(), "user does not have role \"admin\"");
    assert!(
        app.api_keys()
            .await
            .list(Some("alice"))
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn revoked_expired_malformed_and_disabled_owner_keys_fail_like_a_wrong_password() {
    let app = spawn_app().await;
    app.add_user("alice", &[]).await;
    app.add_user("bob", &[]).await;
    let wrong_password = app.login("alice", "not the password at all").await;
    assert_unauthenticated(wrong_password, BAD_LOGIN);

    let (revoked_id, revoked) = app.create_api_key("alice", &[], None).await;
    app.api_keys().await.revoke(&revoked_id).await.unwrap();
    let (_, expired) = app
        .create_api_key("alice", &[], Some(Duration::from_millis(1)))
        .await;
    // Only makes sure the millisecond has passed; nothing here measures time.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let (_, bobs) = app.create_api_key("bob", &[], None).await;
    app.admin().await.set_enabled("bob", false).await.unwrap();
    let (_, live) = app.create_api_key("alice", &[], None).await;
    // The live key's id with another secret.
    let mut wrong_secret = live.clone().into_bytes();
    let last = wrong_secret.len() - 2;
    wrong_secret[last] = if wrong_secret[last] == b'A' {
        b'B'
    } else {
        b'A'
    };
    let wrong_secret = String::from_utf8(wrong_secret).unwrap();
    let unknown = format!("authd_{}_{}", "0".repeat(24), "A".repeat(43));

    for key in [
        &revoked,
        &expired,
        &bobs,
        &wrong_secret,
        &unknown,
        "authd_nonsense",
        &"x".repeat(5000),
    ] {
        assert_unauthenticated(app.api_key_login(key).await, BAD_LOGIN);
    }
    app.api_key_login(&live).await.unwrap();
    let status = app.api_key_login("").await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);

    // Re-enabling the owner brings the key back; revoking is final.
    app.admin().await.set_enabled("bob", true).await.unwrap();
    app.api_key_login(&bobs).await.unwrap();
    assert_unauthenticated(app.api_key_login(&revoked).await, BAD_LOGIN);
}

// Multi-threaded: the test thread blocks on the CLI process while the server runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_shows_use_but_never_the_secret() {
    let app = spawn_app().await;
    app.add_user("alice", &[]).await;
    let (id, key) = app.create_api_key("alice", &[], None).await;
    let before = app.api_keys().await.list(Some("alice")).await.unwrap();
    assert_eq!(before.len(), 1);
    assert_eq!(before[0].key.last_used_at, None);
    app.api_key_login(&key).await.unwrap();
    let after = app.api_keys().await.list(None).await.unwrap();
    assert!(after[0].key.last_used_at.is_some());
    assert_eq!(after[0].key.id.as_str(), id);

    let (ok, stdout, _) = app.cli(&["apikey", "list", "alice"]);
    assert!(ok);
    assert!(
        stdout.contains(&id) && stdout.contains("active"),
        "{stdout}"
    );
    assert!(!stdout.contains(&key[31..]), "the secret is never listed");
}

// Multi-threaded: the test thread blocks on the CLI process while the server runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_creates_a_key_shown_once_that_logs_in_until_revoked() {
    let app = spawn_app().await;
    app.add_user("alice", &["deploy", "admin"]).await;
    let (ok, stdout, stderr) = app.cli(&[
        "apikey",
        "create",
        "alice",
        "--name",
        "ci deploy",
        "--role",
        "deploy",
        "--expires",
        "90d",
    ]);
    assert!(ok, "{stderr}");
    let key = stdout.trim();
    assert_eq!(
        stdout.lines().count(),
        1,
        "just the key on stdout: {stdout}"
    );
    assert!(stderr.contains("cannot be shown again"), "{stderr}");
    let (_, claims) = app.verify(&app.api_key_login(key).await.unwrap().access_token);
    assert_eq!(claims.roles, vec!["deploy"]);
    let id = claims.key_id.unwrap();

    let listed = app.api_keys().await.list(Some("alice")).await.unwrap();
    let expires = listed[0].key.expires_at.unwrap();
    let lifetime = expires.since(listed[0].key.created_at);
    assert_eq!(lifetime, Duration::from_secs(90 * 24 * 3600));
    assert_eq!(listed[0].key.name, "ci deploy");

    let (ok, stdout, _) = app.cli(&["apikey", "revoke", &id]);
    assert!(ok);
    assert_eq!(stdout.trim(), format!("revoked api key {id}"));
    assert_unauthenticated(app.api_key_login(key).await, BAD_LOGIN);
    // Revoking again is fine; an unknown id is an error.
    assert!(app.cli(&["apikey", "revoke", &id]).0);
    let (ok, stdout, stderr) = app.cli(&["apikey", "revoke", "nope"]);
    assert!(!ok && stdout.is_empty());
    assert_eq!(stderr, "error: no api key with id \"nope\"\n");
}

#[tokio::test]
async fn database_holds_no_usable_api_key() {
    let app = spawn_app().await;
    app.add_user("alice", &[]).await;
    let mut keys = Vec::new();
    for _ in 0..3 {
        let (_, key) = app.create_api_key("alice", &[], None).await;
        app.api_key_login(&key).await.unwrap();
        keys.push(key);
    }
    let db = app.db_path();
    let (dir, _) = app.stop().await;
    let mut haystack = std::fs::read(&db).unwrap();
    for suffix in ["-wal", "-shm"] {
        let p = dir.path().join(format!("authd.db{suffix}"));
        if p.exists() {
            haystack.extend(std::fs::read(p).unwrap());
        }
    }
    let contains = |needle: &[u8]| haystack.windows(needle.len()).any(|w| w == needle);
    for key in &keys {
        let (id_part, secret) = key["authd_".len()..].split_at(24);
        let secret = &secret[1..];
        // The scan finds what is there: the lookup id is stored in the clear.
        assert!(
            contains(id_part.as_bytes()),
            "id {id_part} not found: the scan is broken"
        );
        assert!(!contains(key.as_bytes()), "whole key in the database");
        assert!(!contains(secret.as_bytes()), "secret in the database");
        let raw = base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, secret)
            .unwrap();
        assert!(!contains(&raw), "raw secret bytes in the database");
    }
}
