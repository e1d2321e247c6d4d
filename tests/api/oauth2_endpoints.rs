//! The OAuth 2.0 endpoints over a real socket (issue 17): every grant, the RFC 6749 §5.1 and
//! §5.2 bodies, client authentication (Basic and form), revocation (RFC 7009), introspection
//! (RFC 7662) with caller authentication, and the metadata naming only what is enabled.

use base64::Engine;
use serde_json::{Value, json};

use crate::helpers::{PASSWORD, TestApp, spawn_app, spawn_app_with};

/// POSTs a form with an optional `authorization` header.
async fn form(
    app: &TestApp,
    path: &str,
    params: &[(&str, &str)],
    authorization: Option<String>,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let body: String = params
        .iter()
        .map(|(k, v)| format!("{k}={}", v.replace('+', "%2B")))
        .collect::<Vec<_>>()
        .join("&");
    let mut request = reqwest::Client::new()
        .post(format!("{}{path}", app.http))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body);
    if let Some(value) = authorization {
        request = request.header("authorization", value);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap();
    (
        status,
        headers,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn basic(id: &str, secret: &str) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"));
    format!("Basic {encoded}")
}

/// An API key as OAuth 2.0 client credentials: `(client_id, client_secret)`.
async fn client(app: &TestApp, roles: &[&str]) -> (String, String) {
    app.add_user("svc", roles).await;
    let (id, key) = app.create_api_key("svc", roles, None).await;
    let secret = key
        .strip_prefix(&format!("authd_{id}_"))
        .unwrap()
        .to_owned();
    (id, secret)
}

#[tokio::test]
async fn refresh_token_grant_rotates_with_reuse_detection_as_on_grpc() {
    let app = spawn_app_with(|c| c.refresh_reuse_grace = std::time::Duration::ZERO).await;
    app.add_user("alice", &[]).await;
    let first = app.login("alice", PASSWORD).await.unwrap();

    let (status, headers, body) = form(
        &app,
        "/oauth2/token",
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &first.refresh_token),
        ],
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], app.config.access_token_ttl.as_secs());
    app.verify(body["access_token"].as_str().unwrap());
    let second = body["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(second, first.refresh_token);

    // Reuse of the rotated token: invalid_grant, and the whole family is revoked.
    let (status, _, body) = form(
        &app,
        "/oauth2/token",
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &first.refresh_token),
        ],
        None,
    )
    .await;
    assert_eq!(
        (status, body["error"].clone()),
        (400, json!("invalid_grant"))
    );
    assert!(!app.is_active(&second).await);

    // A token never issued is the grant refused, not the client.
    let (status, headers, body) = form(
        &app,
        "/oauth2/token",
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", "not-a-token"),
        ],
        None,
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(body["error"], "invalid_grant");
    assert_eq!(body["error_description"], "invalid refresh token");
}

#[tokio::test]
async fn client_credentials_by_basic_or_form_issue_an_access_token_only() {
    let app = spawn_app().await;
    let (id, secret) = client(&app, &["reader"]).await;

    let (status, _, body) = form(
        &app,
        "/oauth2/token",
        &[("grant_type", "client_credentials")],
        Some(basic(&id, &secret)),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.get("refresh_token").is_none(), "{body}");
    let (_, claims) = app.verify(body["access_token"].as_str().unwrap());
    assert_eq!(claims.key_id.as_deref(), Some(id.as_str()));

    let (status, _, body) = form(
        &app,
        "/oauth2/token",
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &id),
            ("client_secret", &secret),
        ],
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");

    // Wrong secret: 401 invalid_client with a Basic challenge.
    let (status, headers, body) = form(
        &app,
        "/oauth2/token",
        &[("grant_type", "client_credentials")],
        Some(basic(&id, "wrong")),
    )
    .await;
    assert_eq!(status, 401);
    assert_eq!(body["error"], "invalid_client");
    assert!(
        headers["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Basic")
    );
    // No client at all.
    let (status, _, body) = form(
        &app,
        "/oauth2/token",
        &[("grant_type", "client_credentials")],
        None,
    )
    .await;
    assert_eq!(
        (status, body["error"].clone()),
        (401, json!("invalid_client"))
    );
}

#[tokio::test]
async fn password_grant_is_off_by_default_and_works_when_enabled() {
    let app = spawn_app().await;
    app.add_user("alice", &[]).await;
    let params = [
        ("grant_type", "password"),
        ("username", "alice"),
        ("password", PASSWORD),
    ];
    let (status, _, body) = form(&app, "/oauth2/token", &params, None).await;
    assert_eq!(
        (status, body["error"].clone()),
        (400, json!("unsupported_grant_type"))
    );

    let app = spawn_app_with(|c| c.oauth2_password_grant = true).await;
    app.add_user("alice", &[]).await;
    let (status, _, body) = form(&app, "/oauth2/token", &params, None).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["refresh_token"].is_string());
    let wrong = [
        ("grant_type", "password"),
        ("username", "alice"),
        ("password", "not the password"),
    ];
    let (status, _, body) = form(&app, "/oauth2/token", &wrong, None).await;
    assert_eq!(
        (status, body["error"].clone()),
        (400, json!("invalid_grant"))
    );
}

#[tokio::test]
async fn token_endpoint_refuses_malformed_requests_per_rfc_6749() {
    let app = spawn_app().await;
    let (status, _, body) = form(&app, "/oauth2/token", &[], None).await;
    assert_eq!(
        (status, body["error"].clone()),
        (400, json!("invalid_request"))
    );
    let (status, _, body) = form(
        &app,
        "/oauth2/token",
        &[("grant_type", "authorization_code")],
        None,
    )
    .await;
    assert_eq!(
        (status, body["error"].clone()),
        (400, json!("unsupported_grant_type"))
    );
    // JSON is not what the token endpoint takes.
    let response = reqwest::Client::new()
        .post(format!("{}/oauth2/token", app.http))
        .header("content-type", "application/json")
        .body(r#"{"grant_type":"refresh_token"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
}

#[tokio::test]
async fn revocation_ends_the_session_and_answers_200_for_unknown_tokens() {
    let app = spawn_app().await;
    app.add_user("alice", &[]).await;
    let tokens = app.login("alice", PASSWORD).await.unwrap();

    let (status, _, _) = form(
        &app,
        "/oauth2/revoke",
        &[
            ("token", &tokens.refresh_token),
            ("token_type_hint", "refresh_token"),
        ],
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert!(!app.is_active(&tokens.refresh_token).await);

    let other = app.login("alice", PASSWORD).await.unwrap();
    let (status, _, _) = form(
        &app,
        "/oauth2/revoke",
        &[("token", &other.access_token)],
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert!(!app.is_active(&other.access_token).await);

    let (status, _, _) = form(&app, "/oauth2/revoke", &[("token", "never-issued")], None).await;
    assert_eq!(status, 200);
    let (status, _, body) = form(&app, "/oauth2/revoke", &[], None).await;
    assert_eq!(
        (status, body["error"].clone()),
        (400, json!("invalid_request"))
    );
}

#[tokio::test]
async fn introspection_requires_an_authenticated_caller_and_hides_inactive_tokens() {
    let app = spawn_app().await;
    // The caller holds `introspect_role` (default `introspector`).
    let (id, secret) = client(&app, &["reader", "introspector"]).await;
    // alice may introspect too, with her own access token as the bearer below.
    app.add_user("alice", &["reader", "introspector"]).await;
    let tokens = app.login("alice", PASSWORD).await.unwrap();

    // No caller: 401 with a challenge, even with no introspect_role configured.
    let (status, headers, body) = form(
        &app,
        "/oauth2/introspect",
        &[("token", &tokens.access_token)],
        None,
    )
    .await;
    assert_eq!(
        (status, body["error"].clone()),
        (401, json!("invalid_client"))
    );
    assert!(headers.contains_key("www-authenticate"));

    let (status, headers, body) = form(
        &app,
        "/oauth2/introspect",
        &[("token", &tokens.access_token)],
        Some(basic(&id, &secret)),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(body["active"], true);
    assert_eq!(body["username"], "alice");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["iss"], app.config.issuer.as_str());
    for field in ["sub", "exp", "iat", "jti"] {
        assert!(body.get(field).is_some(), "{field}: {body}");
    }

    // A bearer access token authenticates a caller too.
    let (status, _, body) = form(
        &app,
        "/oauth2/introspect",
        &[("token", &tokens.refresh_token)],
        Some(format!("Bearer {}", tokens.access_token)),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["active"], true);
    assert_eq!(body["token_type"], "refresh_token");

    app.logout(&tokens.refresh_token, &tokens.access_token)
        .await
        .unwrap();
    for token in [
        &tokens.access_token,
        &tokens.refresh_token,
        &"garbage".to_owned(),
    ] {
        let (status, _, body) = form(
            &app,
            "/oauth2/introspect",
            &[("token", token)],
            Some(basic(&id, &secret)),
        )
        .await;
        assert_eq!((status, body), (200, json!({"active": false})));
    }
}

/// RFC 7662 names `client_id` and `nbf`; a client-credentials token's client is its API key
/// (RFC 9068), a password session's is `default_client_id`.
#[tokio::test]
async fn introspection_reports_client_id_and_nbf() {
    let app = spawn_app().await;
    let (id, secret) = client(&app, &["introspector"]).await;
    let (status, _, issued) = form(
        &app,
        "/oauth2/token",
        &[("grant_type", "client_credentials")],
        Some(basic(&id, &secret)),
    )
    .await;
    assert_eq!(status, 200, "{issued}");
    let access = issued["access_token"].as_str().unwrap().to_owned();
    let (_, claims) = app.verify(&access);
    assert_eq!(claims.client_id.as_deref(), Some(id.as_str()));

    app.add_user("alice", &[]).await;
    let session = app.login("alice", PASSWORD).await.unwrap();
    for (token, client_id) in [(&access, id.as_str()), (&session.access_token, "authd")] {
        let (status, _, body) = form(
            &app,
            "/oauth2/introspect",
            &[("token", token)],
            Some(basic(&id, &secret)),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["client_id"], client_id, "{body}");
        let nbf = body["nbf"].as_i64().unwrap();
        assert!(nbf > 0 && nbf <= body["iat"].as_i64().unwrap(), "{body}");
    }
    // A refresh token: its session's client, no nbf.
    let (_, _, body) = form(
        &app,
        "/oauth2/introspect",
        &[("token", &session.refresh_token)],
        Some(basic(&id, &secret)),
    )
    .await;
    assert_eq!(body["client_id"], "authd", "{body}");
    assert!(body.get("nbf").is_none(), "{body}");
}

#[tokio::test]
async fn introspection_role_applies_to_oauth_callers_as_on_grpc() {
    let app = spawn_app_with(|c| c.introspect_role = "auditor".into()).await;
    let (id, secret) = client(&app, &["reader"]).await;
    let (status, _, body) = form(
        &app,
        "/oauth2/introspect",
        &[("token", "x")],
        Some(basic(&id, &secret)),
    )
    .await;
    assert_eq!(
        (status, body["error"].clone()),
        (403, json!("access_denied"))
    );
}

#[tokio::test]
async fn metadata_names_the_endpoints_and_only_the_enabled_grants() {
    let app = spawn_app().await;
    let doc = app
        .get_json("/.well-known/oauth-authorization-server")
        .await;
    let base = app.config.issuer.trim_end_matches('/');
    assert_eq!(doc["token_endpoint"], format!("{base}/oauth2/token"));
    assert_eq!(doc["revocation_endpoint"], format!("{base}/oauth2/revoke"));
    assert_eq!(
        doc["introspection_endpoint"],
        format!("{base}/oauth2/introspect")
    );
    assert_eq!(
        doc["grant_types_supported"],
        json!(["refresh_token", "client_credentials"])
    );
    assert_eq!(
        doc["token_endpoint_auth_methods_supported"],
        json!(["client_secret_basic", "client_secret_post"])
    );

    let app = spawn_app_with(|c| c.oauth2_password_grant = true).await;
    let doc = app.get_json("/.well-known/openid-configuration").await;
    assert_eq!(
        doc["grant_types_supported"],
        json!(["refresh_token", "client_credentials", "password"])
    );
}
