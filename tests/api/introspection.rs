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
