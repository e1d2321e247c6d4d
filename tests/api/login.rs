use std::time::Duration;

use authd::grpc::pb::TokenRequest;
use tonic::Code;

use crate::helpers::{PASSWORD, assert_unauthenticated, spawn_app, spawn_app_with};

const BAD_LOGIN: &str = "invalid username or password";

#[tokio::test]
async fn login_returns_an_at_jwt_with_the_documented_claims() {
    let app = spawn_app().await;
    app.add_user("alice", &["admin", "billing:read"]).await;

    let tokens = app.login("alice", PASSWORD).await.unwrap();
    let (header, claims) = app.verify(&tokens.access_token);

    assert_eq!(header.typ.as_deref(), Some("at+jwt"));
    assert_eq!(header.alg, jsonwebtoken::Algorithm::ES256);
    let user = app.admin().await.list().await.unwrap().remove(0);
    assert_eq!(
        claims.sub,
        user.id.to_string(),
        "sub is the stable id, not the username"
    );
    assert_eq!(claims.preferred_username.as_deref(), Some("alice"));
    assert_eq!(claims.roles, vec!["admin", "billing:read"]);
    assert_eq!(claims.iss, "http://localhost:8080");
    assert_eq!(claims.exp - claims.iat, 15 * 60);
    assert_eq!(claims.jti.len(), 22);
    assert_eq!(tokens.refresh_token.len(), 54);
}

#[tokio::test]
async fn every_token_has_a_unique_jti_and_every_login_a_new_family() {
    let app = spawn_app().await;
    app.add_user("alice", &[]).await;
    let a = app.login("alice", PASSWORD).await.unwrap();
    let b = app.login("alice", PASSWORD).await.unwrap();
    assert_ne!(
        app.verify(&a.access_token).1.jti,
        app.verify(&b.access_token).1.jti
    );
    assert_ne!(a.refresh_token, b.refresh_token);
    // Two families: refreshing one does not touch the other.
    app.refresh(&a.refresh_token).await.unwrap();
    app.refresh(&b.refresh_token).await.unwrap();
}

#[tokio::test]
async fn eddsa_is_configurable() {
    let app =
        spawn_app_with(|c| c.signing_algorithm = authd::crypto::keys::SigningAlgorithm::EdDSA)
            .await;
    app.add_user("alice", &[]).await;
    let tokens = app.login("alice", PASSWORD).await.unwrap();
    assert_eq!(
        app.verify(&tokens.access_token).0.alg,
        jsonwebtoken::Algorithm::EdDSA
    );
}

#[tokio::test]
async fn audience_list_is_an_array_claim() {
    let app = spawn_app_with(|c| c.audience = vec!["api".into(), "admin".into()]).await;
    app.add_user("alice", &[]).await;
    let tokens = app.login("alice", PASSWORD).await.unwrap();
    let payload = tokens.access_token.split('.').nth(1).unwrap();
    let json: serde_json::Value = serde_json::from_slice(
        &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, payload)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(json["aud"], serde_json::json!(["api", "admin"]));
}

#[tokio::test]
async fn unknown_user_wrong_password_and_disabled_user_get_the_same_answer() {
    let app = spawn_app().await;
    app.add_user("alice", &[]).await;
    app.add_user("bob", &[]).await;
    app.admin().await.set_enabled("bob", false).await.unwrap();

    assert_unauthenticated(app.login("nobody", PASSWORD).await, BAD_LOGIN);
    assert_unauthenticated(
        app.login("alice", "wrong password entirely").await,
        BAD_LOGIN,
    );
    assert_unauthenticated(app.login("bob", PASSWORD).await, BAD_LOGIN);
    // A name that cannot exist, and a password that cannot have been set: same answer.
    assert_unauthenticated(app.login("no spaces allowed", PASSWORD).await, BAD_LOGIN);
    assert_unauthenticated(app.login("alice", "control\u{7}char").await, BAD_LOGIN);
}

#[tokio::test]
async fn enabling_a_user_again_allows_login() {
    let app = spawn_app().await;
    app.add_user("bob", &[]).await;
    let admin = app.admin().await;
    admin.set_enabled("bob", false).await.unwrap();
    assert_unauthenticated(app.login("bob", PASSWORD).await, BAD_LOGIN);
    admin.set_enabled("bob", true).await.unwrap();
    app.login("bob", PASSWORD).await.unwrap();
}

#[tokio::test]
async fn missing_credential_or_empty_fields_are_invalid_argument() {
    let app = spawn_app().await;
    let status = app
        .client
        .clone()
        .token(TokenRequest { credential: None })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(
        app.login("", PASSWORD).await.unwrap_err().code(),
        Code::InvalidArgument
    );
    assert_eq!(
        app.login("alice", "").await.unwrap_err().code(),
        Code::InvalidArgument
    );
}

#[tokio::test]
async fn usernames_are_case_insensitive_and_normalised() {
    let app = spawn_app().await;
    app.add_user("Jos\u{e9}", &[]).await;
    for name in ["jos\u{e9}", "JOS\u{c9}", "jose\u{301}", "JOSE\u{301}"] {
        let tokens = app.login(name, PASSWORD).await.unwrap();
        assert_eq!(
            app.verify(&tokens.access_token)
                .1
                .preferred_username
                .as_deref(),
            Some("jos\u{e9}")
        );
    }
    let dup = app
        .admin()
        .await
        .add("JOSE\u{301}", PASSWORD, &[])
        .await
        .unwrap_err();
    assert!(dup.to_string().contains("already exists"), "{dup}");
}

#[tokio::test]
async fn password_set_in_nfc_verifies_in_nfd() {
    let app = spawn_app().await;
    let nfc = "caf\u{e9} cr\u{e8}me br\u{fb}l\u{e9}e";
    let nfd = "cafe\u{301} cre\u{300}me bru\u{302}le\u{301}e";
    app.admin().await.add("alice", nfc, &[]).await.unwrap();
    app.login("alice", nfd).await.unwrap();
    app.login("alice", nfc).await.unwrap();
}

#[tokio::test]
async fn oversized_passwords_are_refused_before_hashing() {
    // One hashing permit and costly parameters: a request that needed hashing would queue
    // behind the slow login below. The oversized ones must come back while it still runs.
    let app = spawn_app_with(|c| {
        c.hash_permits = 1;
        c.argon2_memory_kib = 64 * 1024;
        c.argon2_iterations = 24;
    })
    .await;
    let slow = {
        let app_client = app.client.clone();
        tokio::spawn(async move {
            let mut client = app_client;
            let request = TokenRequest {
                credential: Some(
                    authd::grpc::pb::token_request::Credential::PasswordCredential(
                        authd::grpc::pb::PasswordCredential {
                            username: "nobody".into(),
                            password: "some password".into(),
                        },
                    ),
                ),
            };
            client.token(request).await
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;

    // Over 1024 bytes but within the 16 KiB message limit: refused by the password rule.
    let status = app.login("nobody", &"x".repeat(2000)).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(status.message(), "password is too long");
    // 1 MiB: refused by the message limit before it is even decoded.
    let status = app.login("nobody", &"x".repeat(1 << 20)).await.unwrap_err();
    assert_ne!(status.code(), Code::Ok);
    assert_ne!(status.code(), Code::Unauthenticated);

    assert!(
        !slow.is_finished(),
        "the oversized requests did not wait for the hashing pool"
    );
    let slow = slow.await.unwrap();
    assert_eq!(slow.unwrap_err().code(), Code::Unauthenticated);
}
