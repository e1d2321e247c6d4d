//! The JSON mapping of `auth.v1.AuthService` (grpc-gateway conventions), as the
//! `google.api.http` annotations in `proto/auth/v1/auth.proto` declare it:
//! `POST /v1/auth/token | refresh | logout | introspect`, the request message as the body.
//!
//! Each route decodes the proto3 JSON body into the generated message (serde code from
//! pbjson-build: lowerCamelCase out, both spellings in, unknown fields ignored, int64 as
//! strings), calls the *same* [`AuthApi`] method the gRPC server calls — with the request
//! context the layer stack resolved and the `authorization` header as metadata — and encodes
//! the response, or the status as JSON ([`super::errors`]). No rule lives here.
//!
//! Refused before decoding: a content type other than JSON (415), a body over the configured
//! message limit (413), malformed JSON (400).

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tonic::Status;

use super::errors::{status_response, with_status};
use crate::grpc::AuthApi;
use crate::grpc::pb::auth_service_server::AuthService;

/// What the JSON routes need: the gRPC handlers, and the body limit.
#[derive(Clone)]
pub struct JsonApi {
    api: Arc<AuthApi>,
    max_body_bytes: usize,
}

impl JsonApi {
    pub fn new(api: Arc<AuthApi>, max_body_bytes: usize) -> Self {
        Self {
            api,
            max_body_bytes,
        }
    }
}

/// The four routes.
pub fn routes(api: JsonApi) -> Router {
    Router::new()
        .route(
            "/v1/auth/token",
            post(|State(s): State<JsonApi>, r: Request| async move {
                unary(&s, r, |req| s.api.token(req)).await
            }),
        )
        .route(
            "/v1/auth/refresh",
            post(|State(s): State<JsonApi>, r: Request| async move {
                unary(&s, r, |req| s.api.refresh_token(req)).await
            }),
        )
        .route(
            "/v1/auth/logout",
            post(|State(s): State<JsonApi>, r: Request| async move {
                unary(&s, r, |req| s.api.logout(req)).await
            }),
        )
        .route(
            "/v1/auth/introspect",
            post(|State(s): State<JsonApi>, r: Request| async move {
                unary(&s, r, |req| s.api.introspect(req)).await
            }),
        )
        .with_state(api)
}

/// Decodes, calls, encodes.
async fn unary<Req, Res, F, Fut>(api: &JsonApi, request: Request, call: F) -> Response
where
    Req: DeserializeOwned,
    Res: Serialize,
    F: FnOnce(tonic::Request<Req>) -> Fut,
    Fut: Future<Output = Result<tonic::Response<Res>, Status>>,
{
    let (parts, body) = request.into_parts();
    if !is_json(parts.headers.get(header::CONTENT_TYPE)) {
        return with_status(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            &Status::invalid_argument("content-type must be application/json"),
        );
    }
    let Ok(bytes) = axum::body::to_bytes(body, api.max_body_bytes).await else {
        return with_status(
            StatusCode::PAYLOAD_TOO_LARGE,
            &Status::resource_exhausted("request body too large"),
        );
    };
    // An empty body is the empty message, as in grpc-gateway.
    let bytes = if bytes.iter().all(u8::is_ascii_whitespace) {
        &b"{}"[..]
    } else {
        &bytes[..]
    };
    let Ok(message) = serde_json::from_slice::<Req>(bytes) else {
        return status_response(&Status::invalid_argument("malformed JSON request body"));
    };
    reply(
        call(tonic::Request::from_http(http::Request::from_parts(
            parts, message,
        )))
        .await,
    )
}

/// A handler's answer as JSON (shared with the admin and account routes, [`super::admin_json`]).
pub(super) fn reply<Res: Serialize>(result: Result<tonic::Response<Res>, Status>) -> Response {
    match result {
        Ok(response) => (
            [
                (header::CONTENT_TYPE, "application/json"),
                // Responses carry tokens: never cached.
                (header::CACHE_CONTROL, "no-store"),
            ],
            serde_json::to_string(response.get_ref()).unwrap_or_default(),
        )
            .into_response(),
        Err(status) => status_response(&status),
    }
}

/// `application/json`, with or without parameters.
pub(super) fn is_json(content_type: Option<&http::HeaderValue>) -> bool {
    content_type
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"))
}
