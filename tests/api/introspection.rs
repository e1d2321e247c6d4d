//! Issue 16: access tokens are bound to their session (`sid`), and Introspect is honest about
//! them — a token whose session ended, whose user was disabled or deleted, or whose password
//! changed is inactive at once — and answers only callers with a credential by default.

use tonic::Code;

use crate::helpers::{PASSWORD, TestApp, spawn_app, spawn_app_with};

async fn alice(app: &TestApp) -> authd::grpc::pb::TokenResponse {
    app.add_user("alice", &[]).await;
    app.login("alice", PASSWORD).await.unwrap()
}

#[tokio::test]
async fn access_token_names_its_session() {
    let app = spawn_app().await;
    let tokens = alice(&app).await;
    let access = app.introspect(&tokens.access_token).await.unwrap();
    let refresh = app.introspect(&tokens.refresh_token).await.unwrap();
    assert!(access.active);
    assert!(!access.session_id.is_empty());
    assert_eq!(access.session_id, refresh.session_id);
    // A refreshed access token stays in the same session.
    let next = app.refresh(&tokens.refresh_token).await.unwrap();
    let again = app.introspect(&next.access_token).await.unwrap();
    assert_eq!(again.session_id, access.session_id);
}

#[tokio::test]
async fn access_token_is_inactive_once_its_session_is_revoked() {
    let app = spawn_app().await;
    let tokens = alice(&app).await;
    let session = app
        .introspect(&tokens.access_token)
        .await
        .unwrap()
        .session_id;
    app.sessions().await.revoke(&session).await.unwrap();
    assert!(!app.is_active(&tokens.access_token).await);
}

#[tokio::test]
async fn access_token_is_inactive_after_logout_with_only_the_refresh_token() {
    let app = spawn_app().await;
    let tokens = alice(&app).await;
    let other = app.login("alice", PASSWORD).await.unwrap();
    app.logout(&tokens.refresh_token, "").await.unwrap();
    assert!(!app.is_active(&tokens.access_token).await);
    assert!(app.is_active(&other.access_token).await, "another session");
    // Logging out the access token of an ended session still succeeds.
    app.logout("", &tokens.access_token).await.unwrap();
    app.logout(&tokens.refresh_token, &tokens.access_token)
        .await
        .unwrap();
}

#[tokio::test]
async fn access_token_is_inactive_after_refresh_token_reuse() {
    let app = spawn_app_with(|c| c.refresh_reuse_grace = std::time::Duration::ZERO).await;
    let tokens = alice(&app).await;
    let next = app.refresh(&tokens.refresh_token).await.unwrap();
    assert!(app.is_active(&next.access_token).await);
    // The first token again: reuse ends the session, and every access token of it.
    let reused = app.refresh(&tokens.refresh_token).await.unwrap_err();
    assert_eq!(reused.code(), Code::Unauthenticated);
    assert!(!app.is_active(&next.access_token).await);
    assert!(!app.is_active(&tokens.access_token).await);
}

#[tokio::test]
async fn access_token_is_inactive_once_its_user_is_disabled_or_deleted() {
    let app = spawn_app().await;
    let tokens = alice(&app).await;
    app.add_user("bob", &[]).await;
    let bob = app.login("bob", PASSWORD).await.unwrap();
    let admin = app.admin().await;
    admin.set_enabled("alice", false).await.unwrap();
    assert!(!app.is_active(&tokens.access_token).await);
    admin.delete("bob").await.unwrap();
    assert!(!app.is_active(&bob.access_token).await);
}

#[tokio::test]
async fn access_token_is_inactive_once_the_password_changed() {
    let app = spawn_app().await;
    let tokens = alice(&app).await;
    let (_, key) = app.create_api_key("alice", &[], None).await;
    let by_key = app.api_key_login(&key).await.unwrap();
    app.admin()
        .await
        .set_password("alice", "another correct horse battery staple")
        .await
        .unwrap();
    assert!(!app.is_active(&tokens.access_token).await);
    // An API key is a credential of its own: its tokens outlive a password change.
    assert!(app.is_active(&by_key.access_token).await);
}

#[tokio::test]
async fn introspect_requires_a_caller_credential_by_default() {
    let app = spawn_app().await;
    let tokens = alice(&app).await;
    let status = app
        .introspect_as(&tokens.access_token, None)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    // An API key of a user holding `introspect_role`, sent as a bearer, is a credential...
    let answer = app.introspect(&tokens.access_token).await.unwrap();
    assert!(answer.active);
    // ...one without the role is not enough.
    let (_, plain) = app.create_api_key("alice", &[], None).await;
    let status = app
        .introspect_as(&tokens.access_token, Some(&format!("Bearer {plain}")))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    // A wrong secret for a real key id is no credential.
    let forged = format!("{}{}", &plain[..plain.len() - 4], "AAAA");
    let status = app
        .introspect_as(&tokens.access_token, Some(&format!("Bearer {forged}")))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
}

#[tokio::test]
async fn introspection_open_answers_anyone() {
    let app = spawn_app_with(|c| c.introspection_open = true).await;
    let tokens = alice(&app).await;
    let answer = app.introspect_as(&tokens.access_token, None).await.unwrap();
    assert!(answer.active);
}

fn kid_of(token: &str) -> String {
    use base64::Engine;
    let header = token.split('.').next().unwrap();
    let header = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header)
        .unwrap();
    let header: serde_json::Value = serde_json::from_slice(&header).unwrap();
    header["kid"].as_str().unwrap().to_owned()
}

/// `authd keys retire KID --now`: the key leaves the JWKS at once, its tokens are inactive,
/// and a new key signs. (The server is restarted so it loads the keys at once, as a running
/// one would within its reload interval.)
// Multi-threaded: the test thread blocks on the CLI process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_token_is_inactive_once_its_signing_key_is_retired_at_once() {
    let app = spawn_app().await;
    let tokens = alice(&app).await;
    let kid = kid_of(&tokens.access_token);
    let (ok, _, err) = app.cli(&["keys", "retire", &kid]);
    assert!(!ok, "--now is required: {err}");
    let (ok, out, err) = app.cli(&["keys", "retire", &kid, "--now"]);
    assert!(ok, "{err}");
    assert!(out.contains(&kid), "{out}");
    let (dir, config) = app.stop().await;
    let app = crate::helpers::spawn_on(dir, config).await;
    let jwks = app.get_json("/.well-known/jwks.json").await;
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert!(!kids.contains(&kid.as_str()), "{jwks}");
    assert!(!app.is_active(&tokens.access_token).await);
    // The session itself is not ended: a refresh gets a token signed by the new key.
    let next = app.refresh(&tokens.refresh_token).await.unwrap();
    let new_kid = kid_of(&next.access_token);
    assert_ne!(new_kid, kid);
    assert!(kids.contains(&new_kid.as_str()));
    assert!(app.is_active(&next.access_token).await);
    // Audited.
    let events = app.admin().await.audit_tail(None, 100).await.unwrap();
    assert!(events.iter().any(|e| {
        e.kind == authd::domain::AuditKind::KeyRotated
            && e.detail
                .as_deref()
                .is_some_and(|d| d.contains(&format!("retired={kid}")))
    }));
}
