//! `client_id` (RFC 9068 §2.2) in every access token, and what Introspect says of it and of
//! `nbf`: an API key is its own client; a password session's tokens name `default_client_id`.

use crate::helpers::{PASSWORD, spawn_app, spawn_app_with};

#[tokio::test]
async fn session_tokens_carry_the_default_client_id_and_introspect_reports_it_with_nbf() {
    let app = spawn_app().await;
    app.add_user("alice", &[]).await;
    let tokens = app.login("alice", PASSWORD).await.unwrap();
    let (_, claims) = app.verify(&tokens.access_token);
    assert_eq!(
        claims.client_id.as_deref(),
        Some("authd"),
        "the documented default"
    );

    let refreshed = app.refresh(&tokens.refresh_token).await.unwrap();
    let (_, claims) = app.verify(&refreshed.access_token);
    assert_eq!(
        claims.client_id.as_deref(),
        Some("authd"),
        "a refresh keeps it"
    );

    let found = app.introspect(&refreshed.access_token).await.unwrap();
    assert!(found.active);
    assert_eq!(found.client_id, "authd");
    assert_eq!(found.nbf, claims.nbf.unwrap());
    assert!(found.nbf > 0 && found.nbf <= found.iat);

    // A refresh token belongs to the same client; it has no nbf.
    let found = app.introspect(&refreshed.refresh_token).await.unwrap();
    assert!(found.active);
    assert_eq!(found.client_id, "authd");
    assert_eq!(found.nbf, 0);
}

#[tokio::test]
async fn the_default_client_id_is_configurable() {
    let app = spawn_app_with(|c| c.default_client_id = "web-frontend".into()).await;
    app.add_user("alice", &[]).await;
    let tokens = app.login("alice", PASSWORD).await.unwrap();
    let (_, claims) = app.verify(&tokens.access_token);
    assert_eq!(claims.client_id.as_deref(), Some("web-frontend"));
    let found = app.introspect(&tokens.refresh_token).await.unwrap();
    assert_eq!(found.client_id, "web-frontend");
}

#[tokio::test]
async fn api_key_tokens_name_the_key_as_their_client() {
    let app = spawn_app().await;
    app.add_user("svc", &["reader"]).await;
    let (id, key) = app.create_api_key("svc", &["reader"], None).await;
    let tokens = app.api_key_login(&key).await.unwrap();
    let (_, claims) = app.verify(&tokens.access_token);
    assert_eq!(claims.client_id.as_deref(), Some(id.as_str()));
    assert_eq!(claims.key_id.as_deref(), Some(id.as_str()));
    let found = app.introspect(&tokens.access_token).await.unwrap();
    assert_eq!(
        (found.client_id.as_str(), found.key_id.as_str()),
        (id.as_str(), id.as_str())
    );
    assert_eq!(found.nbf, claims.nbf.unwrap());
}

#[test]
fn an_empty_or_control_character_default_client_id_is_refused() {
    for bad in ["", "  ", "a\nb"] {
        let config = authd::config::Config {
            default_client_id: bad.into(),
            ..authd::config::Config::default()
        };
        let error = config.validate().unwrap_err().to_string();
        assert!(error.contains("default_client_id"), "{error}");
    }
}
