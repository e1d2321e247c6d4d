//! The JSON mapping of `auth.v1` on the HTTP port (issue 17): every route, its proto3 JSON,
//! the error shapes (JSON `google.rpc.Status` with grpc-gateway's statuses), the size and
//! content-type limits, and the same per-source limit as on gRPC.

use serde_json::{Value, json};

use crate::helpers::{PASSWORD, TestApp, spawn_app, spawn_app_with};

/// POSTs `body` with `content_type`; returns status, headers and the body parsed as JSON.
async fn post(
    app: &TestApp,
    path: &str,
    content_type: &str,
    body: impl Into<reqwest::Body>,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let response = reqwest::Client::new()
        .post(format!("{}{path}", app.http))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap();
    let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, headers, value)
}

async fn post_json(app: &TestApp, path: &str, body: Value) -> (u16, Value) {
    let (status, _, body) = post(app, path, "application/json", body.to_string()).await;
    (status, body)
}

#[tokio::test]
async fn json_login_refresh_introspect_and_logout_use_proto3_json() {
    let app = spawn_app().await;
    app.add_user("alice", &["reader"]).await;

    // lowerCamelCase in, as grpc-gateway clients send it; unknown fields are ignored.
    let (status, tokens) = post_json(
        &app,
        "/v1/auth/token",
        json!({"passwordCredential": {"username": "alice", "password": PASSWORD}, "extra": 1}),
    )
    .await;
    assert_eq!(status, 200, "{tokens}");
    let access = tokens["accessToken"].as_str().unwrap().to_owned();
    let refresh = tokens["refreshToken"].as_str().unwrap().to_owned();
    assert_eq!(tokens["tokenType"], "Bearer");
    // int64 is a string in proto3 JSON.
    assert_eq!(
        tokens["expiresIn"],
        app.config.access_token_ttl.as_secs().to_string()
    );
    app.verify(&access);

    // The proto field names are accepted too.
    let (status, rotated) =
        post_json(&app, "/v1/auth/refresh", json!({"refresh_token": refresh})).await;
    assert_eq!(status, 200, "{rotated}");
    let newest = rotated["refreshToken"].as_str().unwrap().to_owned();
    assert_ne!(newest, refresh);

    // Introspection needs a caller credential holding `introspect_role` (issue 16).
    let (status, _) = post_json(&app, "/v1/auth/introspect", json!({"token": access})).await;
    assert_eq!(status, 401);
    let found = reqwest::Client::new()
        .post(format!("{}/v1/auth/introspect", app.http))
        .header("content-type", "application/json")
        .header("authorization", app.introspector_authorization().await)
        .body(json!({"token": access}).to_string())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let found: Value = serde_json::from_str(&found).unwrap();
    assert_eq!(found["active"], true);
    assert_eq!(found["username"], "alice");
    assert_eq!(found["tokenType"], "access_token");

    let (status, empty) = post_json(&app, "/v1/auth/logout", json!({"refreshToken": newest})).await;
    assert_eq!((status, empty), (200, json!({})));
    assert!(!app.is_active(&newest).await);
}

#[tokio::test]
async fn the_same_tokens_come_back_with_expires_in_and_token_type_on_grpc() {
    let app = spawn_app().await;
    app.add_user("alice", &[]).await;
    let tokens = app.login("alice", PASSWORD).await.unwrap();
    assert_eq!(tokens.token_type, "Bearer");
    assert_eq!(
        u64::try_from(tokens.expires_in).unwrap(),
        app.config.access_token_ttl.as_secs()
    );
    let rotated = app.refresh(&tokens.refresh_token).await.unwrap();
    assert_eq!(rotated.token_type, "Bearer");
    assert!(rotated.expires_in > 0);
}

#[tokio::test]
async fn json_errors_are_google_rpc_status_with_grpc_gateway_http_statuses() {
    let app = spawn_app().await;
    app.add_user("alice", &[]).await;

    let (status, body) = post_json(
        &app,
        "/v1/auth/token",
        json!({"passwordCredential": {"username": "alice", "password": "wrong password!"}}),
    )
    .await;
    assert_eq!(status, 401);
    assert_eq!(
        body,
        json!({"code": 16, "message": "invalid username or password"})
    );

    let (status, body) = post_json(&app, "/v1/auth/refresh", json!({"refreshToken": "nope"})).await;
    assert_eq!(status, 401);
    assert_eq!(
        body,
        json!({"code": 16, "message": "invalid refresh token"})
    );

    // No credential: INVALID_ARGUMENT → 400, as gRPC says it.
    let (status, body) = post_json(&app, "/v1/auth/token", json!({})).await;
    assert_eq!(status, 400);
    assert_eq!(body["code"], 3);

    let (status, body) = post_json(&app, "/v1/auth/logout", json!({})).await;
    assert_eq!(status, 400);
    assert_eq!(body["code"], 3);
}

#[tokio::test]
async fn introspection_with_a_role_configured_answers_401_and_403_over_json() {
    let app = spawn_app_with(|c| c.introspect_role = "auditor".into()).await;
    app.add_user("alice", &["reader"]).await;
    let tokens = app.login("alice", PASSWORD).await.unwrap();

    let (status, body) = post_json(
        &app,
        "/v1/auth/introspect",
        json!({"token": tokens.access_token}),
    )
    .await;
    assert_eq!((status, body["code"].clone()), (401, json!(16)));

    let response = reqwest::Client::new()
        .post(format!("{}/v1/auth/introspect", app.http))
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {}", tokens.access_token))
        .body(json!({"token": tokens.access_token}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 403);
    let body: Value = serde_json::from_str(&response.text().await.unwrap()).unwrap();
    assert_eq!(body["code"], 7);
}

#[tokio::test]
async fn wrong_content_type_is_415_oversized_is_413_and_malformed_json_is_400() {
    let app = spawn_app().await;

    let (status, _, body) = post(&app, "/v1/auth/token", "text/plain", "{}").await;
    assert_eq!(status, 415, "{body}");
    assert_eq!(body["code"], 3);

    let huge = format!(
        r#"{{"refreshToken": "{}"}}"#,
        "a".repeat(app.config.max_message_bytes + 1)
    );
    let (status, _, body) = post(&app, "/v1/auth/refresh", "application/json", huge).await;
    assert_eq!(status, 413, "{body}");

    let (status, _, body) = post(
        &app,
        "/v1/auth/refresh",
        "application/json; charset=utf-8",
        "{not json",
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body["code"], 3);
}

#[tokio::test]
async fn a_flood_over_http_is_shed_by_the_same_per_source_limit_as_grpc() {
    let app = spawn_app_with(|c| {
        c.per_source_rate = 1;
        c.per_source_burst = 3;
    })
    .await;
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for _ in 0..6 {
        let (status, headers, body) = post(
            &app,
            "/v1/auth/refresh",
            "application/json",
            r#"{"refreshToken": "x"}"#,
        )
        .await;
        if status == 429 {
            assert_eq!(body["code"], 8, "{body}");
            retry_after = headers.get("retry-after").cloned();
        }
        statuses.push(status);
    }
    assert_eq!(&statuses[..3], &[401, 401, 401], "{statuses:?}");
    assert_eq!(&statuses[3..], &[429, 429, 429], "{statuses:?}");
    assert!(retry_after.is_some());
    // The bucket is the source's, not the transport's: gRPC is refused too.
    let refused = app.refresh("x").await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
    // Health and keys stay free.
    assert_eq!(app.get("/healthz").await.0, 200);
}
