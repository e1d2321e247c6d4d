//! The load generator's HTTP client: the same operations as over gRPC, sent to the public HTTP
//! port's JSON routes (`POST /v1/auth/token`, `POST /v1/auth/refresh`) and `GET /healthz`,
//! over HTTP/1.1 keep-alive connections (one per request in flight, as browsers and most HTTP
//! clients use them).
//!
//! It speaks the documented wire format (proto3 JSON, lowerCamelCase) with plain
//! `serde_json`, like any non-Rust client would; errors are read back from the JSON
//! `google.rpc.Status` body into the gRPC code the report counts them under.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use tonic::{Code, Status};

/// A client of one server's HTTP port, shared by the workers (it pools its connections).
#[derive(Clone)]
pub struct HttpApi {
    client: Client<HttpConnector, Full<Bytes>>,
    base: String,
}

impl HttpApi {
    /// `base` is `http://HOST:PORT`; at most `connections` idle connections are kept.
    pub fn new(base: String, connections: usize) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(connections)
            .build(connector);
        Self { client, base }
    }

    /// `GET /healthz`.
    pub async fn health(&self) -> Result<(), Status> {
        self.send(http::Method::GET, "/healthz", None)
            .await
            .map(drop)
    }

    /// A password login; returns the refresh token.
    pub async fn login(&self, username: &str, password: &str) -> Result<String, Status> {
        let body = json!({
            "passwordCredential": { "username": username, "password": password },
        });
        let answer = self
            .send(http::Method::POST, "/v1/auth/token", Some(&body))
            .await?;
        refresh_token(&answer)
    }

    /// Rotates `refresh_token`; returns its successor.
    pub async fn refresh(&self, refresh_token: String) -> Result<String, Status> {
        let body = json!({ "refreshToken": refresh_token });
        let answer = self
            .send(http::Method::POST, "/v1/auth/refresh", Some(&body))
            .await?;
        self::refresh_token(&answer)
    }

    async fn send(
        &self,
        method: http::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Bytes, Status> {
        let mut request = http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base));
        let payload = match body {
            Some(body) => {
                request = request.header(http::header::CONTENT_TYPE, "application/json");
                Bytes::from(body.to_string())
            }
            None => Bytes::new(),
        };
        let request = request
            .body(Full::new(payload))
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let response = self
            .client
            .request(request)
            .await
            .map_err(|e| Status::unavailable(format!("HTTP request failed: {e}")))?;
        let status = response.status();
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(|e| Status::unavailable(format!("HTTP body failed: {e}")))?
            .to_bytes();
        if status.is_success() {
            Ok(bytes)
        } else {
            Err(error_status(status, &bytes))
        }
    }
}

/// The `refreshToken` of a JSON `TokenResponse`.
fn refresh_token(answer: &[u8]) -> Result<String, Status> {
    serde_json::from_slice::<Value>(answer)
        .ok()
        .and_then(|v| v.get("refreshToken")?.as_str().map(str::to_owned))
        .ok_or_else(|| Status::internal("a token response without refreshToken"))
}

/// The gRPC status of a JSON error (`{"code": 16, "message": "…"}`), or, for a body that is
/// not one, of the HTTP status.
fn error_status(status: http::StatusCode, body: &[u8]) -> Status {
    let parsed: Option<(i32, String)> = serde_json::from_slice::<Value>(body).ok().and_then(|v| {
        let code = i32::try_from(v.get("code")?.as_i64()?).ok()?;
        let message = v.get("message")?.as_str().unwrap_or_default().to_owned();
        Some((code, message))
    });
    match parsed {
        Some((code, message)) => Status::new(Code::from_i32(code), message),
        None => Status::unknown(format!("HTTP {status}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_errors_become_their_grpc_code() {
        let status = error_status(
            http::StatusCode::UNAUTHORIZED,
            br#"{"code":16,"message":"invalid refresh token"}"#,
        );
        assert_eq!(status.code(), Code::Unauthenticated);
        assert_eq!(status.message(), "invalid refresh token");
        let status = error_status(http::StatusCode::BAD_GATEWAY, b"<html>");
        assert_eq!(status.code(), Code::Unknown);
    }

    #[test]
    fn the_refresh_token_is_read_from_the_camel_case_field() {
        assert_eq!(
            refresh_token(br#"{"accessToken":"a","refreshToken":"r"}"#).unwrap(),
            "r"
        );
        assert!(refresh_token(b"{}").is_err());
    }
}
