//! The HTTP side port and the gRPC extras: JWKS verified by a third-party library, discovery,
//! health and readiness (also when the database breaks), reflection, metrics.

use std::time::{Duration, Instant};

use authd::crypto::access_token::Claims;
use jsonwebtoken::jwk::JwkSet;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::helpers::{PASSWORD, TestApp, spawn_app};

#[tokio::test]
async fn a_third_party_jwt_library_verifies_tokens_through_the_served_jwks() {
    let app = spawn_app().await;
    app.add_user("alice", &["reader"]).await;
    let tokens = app.login("alice", PASSWORD).await.unwrap();

    let (status, headers, body) = app.get("/.well-known/jwks.json").await;
    assert_eq!(status, 200);
    let cache = headers["cache-control"].to_str().unwrap();
    let max_age: u64 = cache.split("max-age=").nth(1).unwrap().parse().unwrap();
    assert!(
        Duration::from_secs(max_age) < app.config.key_prepublish(),
        "verifiers must refetch within the pre-publication period: {cache}"
    );
    // Public members only.
    let raw: serde_json::Value = serde_json::from_str(&body).unwrap();
    for key in raw["keys"].as_array().unwrap() {
        assert!(key.get("d").is_none(), "no private material: {key}");
        assert_eq!(key["use"], "sig");
    }

    // jsonwebtoken's own JWK types, not authd code, pick the key and check everything.
    let jwks: JwkSet = serde_json::from_str(&body).unwrap();
    let header = jsonwebtoken::decode_header(&tokens.access_token).unwrap();
    let jwk = jwks
        .find(header.kid.as_deref().unwrap())
        .expect("kid is published");
    let key = jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap();
    let mut validation = jsonwebtoken::Validation::new(header.alg);
    validation.set_issuer(&[&app.config.issuer]);
    validation.set_audience(&app.config.audience);
    let claims = jsonwebtoken::decode::<Claims>(&tokens.access_token, &key, &validation).unwrap();
    assert_eq!(claims.claims.preferred_username.as_deref(), Some("alice"));
    assert_eq!(header.typ.as_deref(), Some("at+jwt"));
}

#[tokio::test]
async fn discovery_documents_name_the_issuer_and_the_jwks_and_nothing_untrue() {
    let app = spawn_app().await;
    for path in [
        "/.well-known/openid-configuration",
        "/.well-known/oauth-authorization-server",
    ] {
        let doc = app.get_json(path).await;
        assert_eq!(doc["issuer"], app.config.issuer.as_str());
        assert_eq!(
            doc["jwks_uri"],
            format!("{}/.well-known/jwks.json", app.config.issuer)
        );
        // Issue 16: it named a password grant and a `token` response type without a token
        // endpoint, and ID-token algorithms without ID tokens. Issue 17 added the token
        // endpoint: the grants it accepts by default, and still no response types (there is no
        // authorization endpoint). tests/api/oauth2_endpoints.rs checks the endpoints.
        assert_eq!(
            doc["grant_types_supported"],
            serde_json::json!(["refresh_token", "client_credentials"])
        );
        assert_eq!(doc["response_types_supported"], serde_json::json!([]));
        for absent in [
            "authorization_endpoint",
            "id_token_signing_alg_values_supported",
            "subject_types_supported",
        ] {
            assert!(doc.get(absent).is_none(), "{path} names {absent}: {doc}");
        }
    }
}

async fn health_status(app: &TestApp, service: &str) -> ServingStatus {
    let channel = tonic::transport::Endpoint::new(format!("http://{}", app.grpc_addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = HealthClient::new(channel);
    let response = client
        .check(HealthCheckRequest {
            service: service.into(),
        })
        .await
        .unwrap()
        .into_inner();
    ServingStatus::try_from(response.status).unwrap()
}

/// Polls until the health service reports `want` for both names; the probe runs every 2 s,
/// the bound is generous so a busy machine does not fail the test.
async fn wait_for_health(app: &TestApp, want: ServingStatus) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let both = (
            health_status(app, "auth.v1.AuthService").await,
            health_status(app, "").await,
        );
        if both == (want, want) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "health stayed {both:?}, wanted {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn health_and_readiness_follow_the_database() {
    let app = spawn_app().await;
    assert_eq!(app.get("/healthz").await.0, 200);
    assert_eq!(app.get("/readyz").await.0, 200);
    wait_for_health(&app, ServingStatus::Serving).await;

    // Break the database under the running server.
    let pool = sqlx::SqlitePool::connect(&app.config.database_url)
        .await
        .unwrap();
    sqlx::query("ALTER TABLE refresh_tokens RENAME TO broken")
        .execute(&pool)
        .await
        .unwrap();
    let (status, _, body) = app.get("/readyz").await;
    assert_eq!(status, 503);
    assert!(body.contains("database"), "{body}");
    assert_eq!(
        app.get("/healthz").await.0,
        200,
        "the process itself is alive"
    );
    wait_for_health(&app, ServingStatus::NotServing).await;

    sqlx::query("ALTER TABLE broken RENAME TO refresh_tokens")
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(app.get("/readyz").await.0, 200);
    wait_for_health(&app, ServingStatus::Serving).await;
}

async fn reflected_services(app: &TestApp, v1alpha: bool) -> Vec<String> {
    let channel = tonic::transport::Endpoint::new(format!("http://{}", app.grpc_addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    if v1alpha {
        use tonic_reflection::pb::v1alpha::ServerReflectionRequest;
        use tonic_reflection::pb::v1alpha::server_reflection_client::ServerReflectionClient;
        use tonic_reflection::pb::v1alpha::server_reflection_request::MessageRequest;
        use tonic_reflection::pb::v1alpha::server_reflection_response::MessageResponse;
        let request = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        };
        let mut stream = ServerReflectionClient::new(channel)
            .server_reflection_info(futures::stream::iter([request]))
            .await
            .unwrap()
            .into_inner();
        match stream.message().await.unwrap().unwrap().message_response {
            Some(MessageResponse::ListServicesResponse(list)) => {
                list.service.into_iter().map(|s| s.name).collect()
            }
            other => panic!("unexpected {other:?}"),
        }
    } else {
        use tonic_reflection::pb::v1::ServerReflectionRequest;
        use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
        use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
        use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
        let request = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        };
        let mut stream = ServerReflectionClient::new(channel)
            .server_reflection_info(futures::stream::iter([request]))
            .await
            .unwrap()
            .into_inner();
        match stream.message().await.unwrap().unwrap().message_response {
            Some(MessageResponse::ListServicesResponse(list)) => {
                list.service.into_iter().map(|s| s.name).collect()
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[tokio::test]
async fn reflection_lists_the_auth_service_in_v1_and_v1alpha() {
    let app = spawn_app().await;
    for v1alpha in [false, true] {
        let services = reflected_services(&app, v1alpha).await;
        assert!(
            services.iter().any(|s| s == "auth.v1.AuthService"),
            "{services:?}"
        );
        assert!(
            services.iter().any(|s| s == "grpc.health.v1.Health"),
            "{services:?}"
        );
    }
}

/// The value of the series whose line starts with `prefix` (name and labels), or 0.
fn sample(metrics: &str, prefix: &str) -> f64 {
    metrics
        .lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .map_or(0.0, |v| v.parse().unwrap())
}

/// The recorder buffers every histogram sample until its upkeep drains them; upkeep must run
/// on its own schedule, not only when `/metrics` is rendered, or a server nobody scrapes grows
/// without bound (issue 24: ~25 bytes per refresh). The memory itself is measured by `authd
/// bench --pid` (its timeline, BENCHMARKS.md); this checks the thread that drains it runs.
#[tokio::test]
async fn metrics_upkeep_runs_without_a_scrape() {
    let _app = spawn_app().await;
    let threads: Vec<String> = std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .map(|name| name.trim().to_owned())
        .collect();
    assert!(
        threads
            .iter()
            .any(|name| name == authd::metrics::UPKEEP_THREAD),
        "no upkeep thread among {threads:?}"
    );
}

#[tokio::test]
async fn logout_and_introspect_are_counted_by_name() {
    let app = spawn_app().await;
    app.add_user("alice", &[]).await;
    let (_, _, before) = app.get_management("/metrics").await;
    let tokens = app.login("alice", PASSWORD).await.unwrap();
    app.introspect(&tokens.access_token).await.unwrap();
    app.logout(&tokens.refresh_token, "").await.unwrap();
    let (_, _, after) = app.get_management("/metrics").await;
    let grew = |prefix: &str| sample(&after, prefix) - sample(&before, prefix);
    for method in ["Logout", "Introspect"] {
        let series = format!(
            r#"authd_grpc_requests_total{{method="/auth.v1.AuthService/{method}",code="OK"}}"#
        );
        assert!(grew(&series) >= 1.0, "{series} missing from {after}");
    }
}

#[tokio::test]
async fn metrics_counters_move_with_logins_and_refreshes() {
    let app = spawn_app().await;
    app.add_user("alice", &[]).await;
    // Metrics are process-wide and other tests run in parallel: compare before and after,
    // counters only grow.
    let (status, headers, before) = app.get_management("/metrics").await;
    assert_eq!(status, 200);
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );

    let tokens = app.login("alice", PASSWORD).await.unwrap();
    app.login("alice", "wrong password, clearly")
        .await
        .unwrap_err();
    app.refresh(&tokens.refresh_token).await.unwrap();

    let (_, _, after) = app.get_management("/metrics").await;
    let grew = |prefix: &str| sample(&after, prefix) - sample(&before, prefix);
    assert!(
        grew(r#"authd_logins_total{outcome="success"}"#) >= 1.0,
        "{after}"
    );
    assert!(grew(r#"authd_logins_total{outcome="invalid_credentials"}"#) >= 1.0);
    assert!(grew(r#"authd_refreshes_total{outcome="rotated"}"#) >= 1.0);
    assert!(
        grew(r#"authd_grpc_requests_total{method="/auth.v1.AuthService/Token",code="OK"}"#) >= 1.0
    );
    assert!(
        grew(
            r#"authd_grpc_requests_total{method="/auth.v1.AuthService/Token",code="UNAUTHENTICATED"}"#
        ) >= 1.0
    );
    assert!(
        grew(
            r#"authd_grpc_request_duration_seconds_count{method="/auth.v1.AuthService/RefreshToken",code="OK"}"#
        ) >= 1.0
    );
    assert!(grew("authd_argon2_duration_seconds_count") >= 2.0);
    assert!(after.contains("authd_signing_key_age_seconds"));
    assert!(after.contains("authd_argon2_queue_depth"));
}

#[tokio::test]
async fn health_watchers_see_not_serving_and_do_not_block_shutdown() {
    let app = spawn_app().await;
    let channel = tonic::transport::Endpoint::new(format!("http://{}", app.grpc_addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut stream = HealthClient::new(channel)
        .watch(HealthCheckRequest {
            service: "auth.v1.AuthService".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let first = stream.message().await.unwrap().unwrap();
    assert_eq!(
        ServingStatus::try_from(first.status).unwrap(),
        ServingStatus::Serving
    );
    // stop() fails the test if the server does not finish within 10 s.
    let stopping = tokio::spawn(app.stop());
    // A guard against hanging, not a speed assertion: without the fix the stream never ends.
    let last = tokio::time::timeout(Duration::from_secs(30), async {
        let mut last = None;
        while let Ok(Some(message)) = stream.message().await {
            last = Some(ServingStatus::try_from(message.status).unwrap());
        }
        last
    })
    .await
    .expect("the watch stream ends when the server stops");
    assert_eq!(last, Some(ServingStatus::NotServing));
    stopping.await.unwrap();
}
