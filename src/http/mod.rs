//! The HTTP port (axum): the public API for clients that do not speak gRPC, and what
//! verifiers and operators fetch. Handlers are thin: each calls the service the gRPC handlers
//! call, or reads one thing from it and renders it.
//!
//! - `POST /v1/auth/{token,refresh,logout,introspect}` — the JSON mapping of `auth.v1`
//!   ([`json`]);
//! - `POST /oauth2/{token,revoke,introspect}` — OAuth 2.0 ([`oauth2`]);
//! - `/v1/admin/…`, `/v1/account/…` — the JSON mapping of the admin and account APIs
//!   ([`admin_json`]), when the state carries them ([`HttpState::admin_api`]);
//! - `GET /.well-known/jwks.json` — the published public keys, with `Cache-Control: max-age`
//!   shorter than the pre-publication period (see [`crate::domain::KeyPolicy`]);
//! - `GET /.well-known/openid-configuration`, `GET /.well-known/oauth-authorization-server` —
//!   discovery metadata (RFC 8414): the issuer, the JWKS, the OAuth 2.0 endpoints and the
//!   grants enabled, and nothing authd does not do;
//! - `GET /healthz` (the process answers), `GET /readyz` (database and signing key).
//!
//! `GET /metrics` is not here: it is on the management listener ([`management`]), which
//! serves health too and is never meant to be public.
//!
//! The API routes pass the same layer stack as every gRPC call ([`crate::middleware`]:
//! request context, metrics and log, per-source limit), with [`errors::HttpRefusal`] answering
//! refusals; errors are written by [`errors`] from what `grpc::error` decides.

pub mod admin_json;
pub mod cors;
pub mod errors;
pub mod json;
pub mod management;
pub mod oauth2;
pub mod query;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::extract::connect_info::ConnectInfo;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use ipnet::IpNet;
use metrics_exporter_prometheus::PrometheusHandle;

use crate::grpc::AuthApi;
use crate::middleware::RequestStack;
use crate::service::TokenService;

/// What the handlers need.
#[derive(Clone)]
pub struct HttpState {
    service: Arc<TokenService>,
    metrics: Option<PrometheusHandle>,
    jwks_max_age: Duration,
    jwks_uri: String,
    api: ApiSettings,
    admin_api: Option<admin_json::AdminJsonApi>,
}

/// How the API routes are served.
#[derive(Clone, Default)]
pub struct ApiSettings {
    /// Whether `/oauth2/token` accepts the password grant (`oauth2_password_grant`).
    pub password_grant: bool,
    /// Largest request body, as `max_message_bytes` for gRPC.
    pub max_body_bytes: usize,
    /// Proxies whose `x-forwarded-for` is believed.
    pub trusted_proxies: Vec<IpNet>,
    /// Origins allowed cross-origin (`cors_allowed_origins`).
    pub cors_allowed_origins: Vec<String>,
}

/// Every API route, as the request metrics label it (`crate::metrics::method_label`).
pub const API_ROUTES: &[&str] = &[
    "/v1/auth/token",
    "/v1/auth/refresh",
    "/v1/auth/logout",
    "/v1/auth/introspect",
    "/oauth2/token",
    "/oauth2/revoke",
    "/oauth2/introspect",
];

/// The paths the per-source limit applies to on this port: every API route (keys, discovery
/// and health stay free).
pub const LIMITED_PATHS: &[&str] = &["/v1/auth/", "/oauth2/", "/v1/admin/", "/v1/account/"];

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
            api: ApiSettings {
                max_body_bytes: crate::grpc::MAX_MESSAGE_BYTES,
                ..ApiSettings::default()
            },
            admin_api: None,
        }
    }

    /// Serves the admin and account APIs' JSON routes too.
    #[must_use]
    pub fn admin_api(mut self, api: admin_json::AdminJsonApi) -> Self {
        self.admin_api = Some(api);
        self
    }

    /// Serves the API routes with these settings.
    #[must_use]
    pub fn api(mut self, api: ApiSettings) -> Self {
        self.api = api;
        self
    }
}

/// The TCP peer of a request on this port (axum's connect info).
pub(crate) fn peer_address(extensions: &http::Extensions) -> Option<std::net::IpAddr> {
    extensions
        .get::<ConnectInfo<std::net::SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip())
}

/// The side port's routes.
pub fn router(state: HttpState) -> Router {
    let settings = &state.api;
    let service = Arc::clone(&state.service);
    let json_api = json::JsonApi::new(
        Arc::new(AuthApi::new(Arc::clone(&service)).max_message_bytes(settings.max_body_bytes)),
        settings.max_body_bytes,
    );
    let oauth_api = oauth2::OAuthApi::new(
        Arc::clone(&service),
        settings.password_grant,
        settings.max_body_bytes,
    );
    let mut api = json::routes(json_api).merge(oauth2::routes(oauth_api));
    if let Some(admin_api) = state.admin_api.clone() {
        api = api.merge(admin_json::routes(admin_api));
    }
    let api = api
        .layer(RequestStack::new(
            service.source_limiter(),
            LIMITED_PATHS,
            peer_address,
            settings.trusted_proxies.clone(),
            errors::HttpRefusal,
        ))
        .layer(tower::util::option_layer(cors::layer(
            &settings.cors_allowed_origins,
        )));
    Router::new()
        .route("/.well-known/jwks.json", get(jwks))
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/.well-known/oauth-authorization-server", get(discovery))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(state)
        .merge(api)
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
/// authd really does: its issuer and JWKS, the token, revocation and introspection endpoints,
/// and the grants enabled. It has no authorization endpoint, so it lists no response types
/// (an empty list, where leaving the field out would mean the RFC's default, `code`). It issues
/// no ID tokens, so it names no ID-token algorithms.
async fn discovery(State(state): State<HttpState>) -> Response {
    let settings = state.service.settings();
    let base = settings.issuer.trim_end_matches('/');
    let body = serde_json::json!({
        "issuer": settings.issuer,
        "jwks_uri": state.jwks_uri,
        "token_endpoint": format!("{base}/oauth2/token"),
        "revocation_endpoint": format!("{base}/oauth2/revoke"),
        "introspection_endpoint": format!("{base}/oauth2/introspect"),
        "grant_types_supported": oauth2::grant_types(state.api.password_grant),
        "response_types_supported": [],
        "token_endpoint_auth_methods_supported": oauth2::CLIENT_AUTH_METHODS,
        "revocation_endpoint_auth_methods_supported": ["none"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "bearer"],
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

pub(crate) async fn healthz() -> &'static str {
    "ok\n"
}

pub(crate) async fn readyz(State(state): State<HttpState>) -> Response {
    if !state.service.rotation_writer_running() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: the rotation writer has stopped\n",
        )
            .into_response();
    }
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
