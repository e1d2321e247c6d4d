//! The management listener (issue 17 part 4) and the request metrics' labels (part 3):
//! `/metrics` only on `management_addr`, health on both, the listener switched off by
//! configuration; every API route and every `auth.v1` RPC (from the descriptors) counted under
//! its own label, HTTP errors under their real code.

use std::time::Duration;

use authd::grpc::admin::AdminServiceClient;
use serde_json::json;

use crate::helpers::{PASSWORD, spawn_app, spawn_app_with};

/// The value of the series `series` (its full name with labels) in `text`, 0 when absent.
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

fn requests(method: &str, code: &str) -> String {
    format!(r#"authd_grpc_requests_total{{method="{method}",code="{code}"}}"#)
}

#[tokio::test]
async fn metrics_are_served_on_the_management_listener_and_not_on_the_public_port() {
    let app = spawn_app().await;
    let (status, _, _) = app.get("/metrics").await;
    assert_eq!(status, 404, "the public port does not serve metrics");
    let (status, headers, body) = app.get_management("/metrics").await;
    assert_eq!(status, 200);
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    assert!(body.contains("authd_connections_open"), "{body}");
    // Health is on both.
    for path in ["/healthz", "/readyz"] {
        assert_eq!(app.get(path).await.0, 200, "{path} public");
        assert_eq!(app.get_management(path).await.0, 200, "{path} management");
    }
    // The API is not on the management listener.
    assert_eq!(
        app.get_management("/.well-known/jwks.json").await.0,
        404,
        "only metrics and health"
    );
}

#[tokio::test]
async fn the_management_listener_can_be_switched_off() {
    let app = spawn_app_with(|c| c.management_addr = None).await;
    assert!(app.management.is_none());
    assert_eq!(app.get("/metrics").await.0, 404);
    assert_eq!(app.get("/healthz").await.0, 200);
}

async fn post_json(base: &str, path: &str, body: serde_json::Value) -> u16 {
    reqwest::Client::new()
        .post(format!("{base}{path}"))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn http_routes_are_counted_under_their_own_labels_with_their_real_codes() {
    let app = spawn_app().await;
    app.add_user("alice", &[]).await;
    let (_, _, before) = app.get_management("/metrics").await;

    let login =
        |password: &str| json!({"passwordCredential": {"username": "alice", "password": password}});
    assert_eq!(
        post_json(&app.http, "/v1/auth/token", login(PASSWORD)).await,
        200
    );
    assert_eq!(
        post_json(
            &app.http,
            "/v1/auth/token",
            login("a wrong password, surely")
        )
        .await,
        401
    );
    assert_eq!(
        post_json(
            &app.http,
            "/v1/auth/refresh",
            json!({"refreshToken": "nope"})
        )
        .await,
        401
    );
    let oauth = reqwest::Client::new()
        .post(format!("{}/oauth2/token", app.http))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=authorization_code")
        .send()
        .await
        .unwrap();
    assert_eq!(oauth.status(), 400);
    // An admin RPC without a token.
    let mut admin = AdminServiceClient::new(
        tonic::transport::Endpoint::from_shared(format!("http://{}", app.grpc_addr))
            .unwrap()
            .connect_lazy(),
    );
    let refused = admin
        .list_users(authd::grpc::pb::ListUsersRequest::default())
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unauthenticated);

    // Metrics are process-wide and tests run in parallel: counters only grow.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let (_, _, after) = app.get_management("/metrics").await;
    let grew = |series: String| {
        assert!(
            sample(&after, &series) - sample(&before, &series) >= 1.0,
            "{series} did not grow in {after}"
        );
    };
    grew(requests("/v1/auth/token", "OK"));
    grew(requests("/v1/auth/token", "UNAUTHENTICATED"));
    grew(requests("/v1/auth/refresh", "UNAUTHENTICATED"));
    grew(requests("/oauth2/token", "INVALID_ARGUMENT"));
    grew(requests(
        "/auth.v1.AdminService/ListUsers",
        "UNAUTHENTICATED",
    ));
}

#[test]
fn every_auth_v1_rpc_has_its_own_label_and_unknown_paths_share_one() {
    for path in authd::grpc::pb::RPC_PATHS {
        assert_eq!(authd::metrics::method_label(path), *path);
    }
    for service in ["AuthService", "AdminService", "AccountService"] {
        assert!(
            authd::grpc::pb::RPC_PATHS
                .iter()
                .any(|p| p.starts_with(&format!("/auth.v1.{service}/"))),
            "{service}"
        );
    }
    for route in authd::http::API_ROUTES {
        assert_eq!(authd::metrics::method_label(route), *route);
    }
    assert_eq!(
        authd::metrics::method_label("/auth.v1.AdminService/Nope"),
        "other"
    );
    assert_eq!(authd::metrics::method_label("/v1/auth/anything"), "other");
}
