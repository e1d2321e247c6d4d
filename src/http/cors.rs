//! Cross-origin access for browsers: only the configured origins (`cors_allowed_origins`),
//! for gRPC-Web on the gRPC port and the JSON and OAuth 2.0 routes on the HTTP port alike.
//! No origins configured: no layer, no CORS headers, so browsers keep other origins out.
//! No credentials mode: authd sets no cookies; callers send tokens in `authorization`.

use std::time::Duration;

use http::{HeaderName, HeaderValue, Method};
use tower_http::cors::{AllowOrigin, CorsLayer};

/// The CORS layer for `origins`, or none when the list is empty. Origins that are not valid
/// header values are refused by `Config::validate` before this runs.
pub fn layer(origins: &[String]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let origins: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    let header = HeaderName::from_static;
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_methods([Method::POST, Method::GET, Method::DELETE]) // DELETE: the admin and account JSON routes
            .allow_headers([
                http::header::CONTENT_TYPE,
                http::header::AUTHORIZATION,
                header("x-grpc-web"),
                header("x-user-agent"),
                header("grpc-timeout"),
                header("x-request-id"),
            ])
            .expose_headers([
                header("grpc-status"),
                header("grpc-message"),
                header("grpc-status-details-bin"),
                http::header::RETRY_AFTER,
            ])
            .max_age(Duration::from_secs(600)),
    )
}
