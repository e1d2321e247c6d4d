//! The HTTP side port (axum): what verifiers and operators fetch. Handlers are thin: each
//! reads one thing from the service and renders it.
//!
//! - `GET /.well-known/jwks.json` — the published public keys, with `Cache-Control: max-age`
//!   shorter than the pre-publication period (see [`crate::domain::KeyPolicy`]);
//! - `GET /.well-known/openid-configuration`, `GET /.well-known/oauth-authorization-server` —
//!   discovery metadata (RFC 8414): `issuer` and `jwks_uri`, and nothing authd does not do;
//! - `GET /healthz` (the process answers), `GET /readyz` (database and signing key);
//! - `GET /metrics` — Prometheus text.
//!
//! It serves no tokens and accepts no credentials: logins go over gRPC only.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use metrics_exporter_prometheus::PrometheusHandle;

use crate::service::TokenService;

/// What the handlers need.
#[derive(Clone)]
pub struct HttpState {
    service: Arc<TokenService>,
    metrics: Option<PrometheusHandle>,
    jwks_max_age: Duration,
    jwks_uri: String,
}

impl HttpState {
    pub fn new(
        service: Arc<TokenService>,
        metrics: Option<PrometheusHandle>,
        jwks_max_age: Duration,
        jwks_uri: String,
    ) -> Self {
        Self {
            service,
            metrics,
            jwks_max_age,
            jwks_uri,
        }
    }
}

/// The side port's routes.
pub fn router(state: HttpState) -> Router {
    Router::new()
        .route("/.well-known/jwks.json", get(jwks))
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/.well-known/oauth-authorization-server", get(discovery))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state)
}

async fn jwks(State(state): State<HttpState>) -> Response {
    let body = state.service.key_manager().jwks();
    (
        [
            (header::CONTENT_TYPE, "application/json".to_owned()),
            (
                header::CACHE_CONTROL,
                format!("public, max-age={}", state.jwks_max_age.as_secs()),
            ),
        ],
        body.to_string(),
    )
        .into_response()
}

/// The metadata document (RFC 8414), served under both well-known names. It names only what
/// authd really does: its issuer and JWKS. authd has no HTTP token or authorization endpoint
/// (logins go over gRPC), so it lists no grant types and no response types; empty lists say so,
/// where leaving the fields out would mean the RFC's defaults (authorization code, implicit).
/// It issues no ID tokens, so it names no ID-token algorithms.
async fn discovery(State(state): State<HttpState>) -> Response {
    let settings = state.service.settings();
    let body = serde_json::json!({
        "issuer": settings.issuer,
        "jwks_uri": state.jwks_uri,
        "grant_types_supported": [],
        "response_types_supported": [],
    });
    (
        [
            (header::CONTENT_TYPE, "application/json".to_owned()),
            (
                header::CACHE_CONTROL,
                format!("public, max-age={}", state.jwks_max_age.as_secs()),
            ),
        ],
        body.to_string(),
    )
        .into_response()
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(state): State<HttpState>) -> Response {
    if state.service.ping().await.is_err() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: database unavailable\n",
        )
            .into_response();
    }
    let now = state.service.clock().now();
    if state.service.keys().signing_key(now).is_none() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: no active signing key\n",
        )
            .into_response();
    }
    (StatusCode::OK, "ready\n").into_response()
}

async fn metrics(State(state): State<HttpState>) -> Response {
    let Some(handle) = &state.metrics else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "metrics recorder not installed\n",
        )
            .into_response();
    };
    let keys = state.service.key_manager();
    let now = state.service.clock().now();
    crate::metrics::signing_keys(
        keys.signing_key_age(),
        keys.ring().published(now, keys.policy()).len(),
    );
    handle.run_upkeep();
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        handle.render(),
    )
        .into_response()
}
