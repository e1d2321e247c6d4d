//! The management listener (`management_addr`, default `127.0.0.1:9090`): what operators and
//! their tools read, kept off the public HTTP port.
//!
//! - `GET /metrics` — Prometheus text (the recorder of [`crate::metrics`]);
//! - `GET /healthz`, `GET /readyz` — the same answers as on the public port, for probes that
//!   should not go through a public load balancer.
//!
//! It passes no API layer stack (no per-source limit, no request metrics: scrapes are not API
//! requests), but its connections go through the same `Listener` caps and the same TLS (and
//! mTLS) settings as the other listeners. It owns no rule: health is [`super::readyz`].

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::HttpState;

/// Connections the management listener holds at once (a scraper and a probe or two need a
/// handful); kept out of the descriptors the public listeners may use.
pub const MAX_CONNECTIONS: usize = 16;

/// The management listener's routes.
pub fn router(state: HttpState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(super::healthz))
        .route("/readyz", get(super::readyz))
        .with_state(state)
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
