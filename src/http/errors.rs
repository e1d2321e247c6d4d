//! How the HTTP routes render errors. What an error *is* — its status, code and safe
//! message — is decided once in `grpc::error` (`to_status`, `http_status`, `oauth_error`);
//! this module only writes it out:
//!
//! - the JSON API answers the JSON form of `google.rpc.Status`, `{"code": 16, "message": …}`,
//!   with grpc-gateway's HTTP status and `Retry-After` when the status carries a retry hint;
//! - the OAuth 2.0 endpoints answer RFC 6749 §5.2 bodies with `Cache-Control: no-store`, and
//!   `WWW-Authenticate: Basic` on 401;
//! - a request the layer stack refuses ([`HttpRefusal`]) gets the first form.

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tonic::Status;

use crate::grpc::error::{OAuthError, http_status, retry_after, to_status};
use crate::limits::RateLimited;
use crate::middleware::Refuse;
use crate::service::AuthError;

/// The realm named in `WWW-Authenticate` challenges.
const REALM: &str = r#"Basic realm="authd""#;

/// A gRPC status as the JSON API answers it.
pub fn status_response(status: &Status) -> Response {
    with_status(http_status(status.code()), status)
}

/// A gRPC status with an HTTP status of its own (413, 415: refusals before decoding, which
/// grpc-gateway's table does not cover).
pub fn with_status(http: StatusCode, status: &Status) -> Response {
    let body = serde_json::json!({
        "code": status.code() as i32,
        "message": status.message(),
    });
    let mut response = (
        http,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response();
    // For the request metrics: counted under the status's code, as on gRPC.
    response.extensions_mut().insert(status.code());
    if let Some(secs) = retry_after(status) {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    response
}

/// An OAuth 2.0 error response (RFC 6749 §5.2).
pub fn oauth_response(e: &OAuthError) -> Response {
    let body = serde_json::json!({
        "error": e.error,
        "error_description": e.description,
    });
    let mut response = (e.status, no_store_json(), body.to_string()).into_response();
    response.extensions_mut().insert(e.code);
    let headers = response.headers_mut();
    if e.status == StatusCode::UNAUTHORIZED {
        headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(REALM));
    }
    if let Some(secs) = e.retry_after {
        headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    response
}

/// The headers of every OAuth 2.0 token or introspection answer: JSON, never cached
/// (RFC 6749 §5.1).
pub fn no_store_json() -> [(header::HeaderName, &'static str); 3] {
    [
        (header::CONTENT_TYPE, "application/json"),
        (header::CACHE_CONTROL, "no-store"),
        (header::PRAGMA, "no-cache"),
    ]
}

/// How the HTTP routes answer a request the layer stack refuses: the JSON status of the same
/// error gRPC would give.
#[derive(Debug, Clone, Copy, Default)]
pub struct HttpRefusal;

impl Refuse<Body> for HttpRefusal {
    fn rate_limited(&self, limited: RateLimited) -> http::Response<Body> {
        status_response(&to_status(AuthError::RateLimited {
            retry_after_secs: limited.retry_after_secs,
        }))
    }
}
