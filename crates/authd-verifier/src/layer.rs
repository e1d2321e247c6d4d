//! A tower layer for any `http` service (tonic's included, with the `tonic` feature): no valid
//! bearer token, no entry.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use crate::verify::Verifier;

/// Why a request was turned away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No `authorization: Bearer …` header.
    MissingToken,
    /// A token that did not verify (the reason is logged, not sent).
    InvalidToken,
}

impl Refusal {
    /// The message sent to the client.
    pub fn message(self) -> &'static str {
        match self {
            Self::MissingToken => "missing bearer token",
            Self::InvalidToken => "invalid access token",
        }
    }
}

/// How a refused request is answered, per transport.
pub trait Rejection: Clone + Send + Sync + 'static {
    fn reject<B: Default>(&self, refusal: Refusal) -> http::Response<B>;
}

/// Plain HTTP: `401 Unauthorized` with `WWW-Authenticate: Bearer` (RFC 6750 §3).
#[derive(Debug, Clone, Copy, Default)]
pub struct HttpRejection;

impl Rejection for HttpRejection {
    fn reject<B: Default>(&self, refusal: Refusal) -> http::Response<B> {
        let challenge = match refusal {
            Refusal::MissingToken => "Bearer",
            Refusal::InvalidToken => "Bearer error=\"invalid_token\"",
        };
        let mut response = http::Response::new(B::default());
        *response.status_mut() = http::StatusCode::UNAUTHORIZED;
        response.headers_mut().insert(
            http::header::WWW_AUTHENTICATE,
            http::HeaderValue::from_static(challenge),
        );
        response
    }
}

/// gRPC: status `UNAUTHENTICATED` (feature `tonic`).
#[cfg(feature = "tonic")]
#[derive(Debug, Clone, Copy, Default)]
pub struct GrpcRejection;

#[cfg(feature = "tonic")]
impl Rejection for GrpcRejection {
    fn reject<B: Default>(&self, refusal: Refusal) -> http::Response<B> {
        tonic::Status::unauthenticated(refusal.message()).into_http()
    }
}

/// Requires `authorization: Bearer <access token>` on every request. A missing or invalid
/// token is answered by the layer's [`Rejection`]; a valid one puts its [`crate::Claims`] in the
/// request extensions for the handler.
#[derive(Debug, Clone)]
pub struct RequireBearerLayer<R> {
    verifier: Arc<Verifier>,
    rejection: R,
}

#[cfg(feature = "tonic")]
impl RequireBearerLayer<GrpcRejection> {
    /// For tonic servers: refusals are gRPC `UNAUTHENTICATED`.
    pub fn new(verifier: Arc<Verifier>) -> Self {
        Self {
            verifier,
            rejection: GrpcRejection,
        }
    }
}

impl RequireBearerLayer<HttpRejection> {
    /// For plain HTTP services: refusals are `401` with `WWW-Authenticate: Bearer`.
    pub fn http(verifier: Arc<Verifier>) -> Self {
        Self {
            verifier,
            rejection: HttpRejection,
        }
    }
}

impl<S, R: Clone> tower::Layer<S> for RequireBearerLayer<R> {
    type Service = RequireBearer<S, R>;

    fn layer(&self, inner: S) -> Self::Service {
        RequireBearer {
            inner,
            verifier: Arc::clone(&self.verifier),
            rejection: self.rejection.clone(),
        }
    }
}

/// The service [`RequireBearerLayer`] produces.
#[derive(Debug, Clone)]
pub struct RequireBearer<S, R> {
    inner: S,
    verifier: Arc<Verifier>,
    rejection: R,
}

impl<S, R, ReqBody, ResBody> tower::Service<http::Request<ReqBody>> for RequireBearer<S, R>
where
    S: tower::Service<http::Request<ReqBody>, Response = http::Response<ResBody>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    R: Rejection,
    ReqBody: Send + 'static,
    ResBody: Default,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<ReqBody>) -> Self::Future {
        // The clone is not ready; the ready one (self.inner) is taken for this call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let verifier = Arc::clone(&self.verifier);
        let rejection = self.rejection.clone();
        Box::pin(async move {
            let Some(token) = bearer_token(request.headers()) else {
                return Ok(rejection.reject(Refusal::MissingToken));
            };
            match verifier.verify(token).await {
                Ok(claims) => {
                    request.extensions_mut().insert(claims);
                    inner.call(request).await
                }
                Err(e) => {
                    tracing::info!(reason = %e, "access token refused");
                    Ok(rejection.reject(Refusal::InvalidToken))
                }
            }
        })
    }
}

/// The token of an `authorization: Bearer …` header (see [`parse_bearer`]).
pub fn bearer_token(headers: &http::HeaderMap) -> Option<&str> {
    parse_bearer(headers.get(http::header::AUTHORIZATION)?.to_str().ok()?)
}

/// The token of an `authorization` value `Bearer <token>`: the scheme in any letter case
/// (RFC 9110 §11.1), the token trimmed and not empty.
pub fn parse_bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// The verified claims of a tonic request that passed [`RequireBearerLayer`] (feature `tonic`;
/// elsewhere, read [`crate::Claims`] from the `http` request's extensions).
#[cfg(feature = "tonic")]
pub fn claims<T>(request: &tonic::Request<T>) -> Option<&crate::Claims> {
    request.extensions().get::<crate::Claims>()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_values_parse_in_any_case_and_refuse_the_rest() {
        assert_eq!(parse_bearer("Bearer abc"), Some("abc"));
        assert_eq!(parse_bearer("bEaReR  abc "), Some("abc"));
        for bad in ["Bearer", "Bearer ", "Basic abc", "abc", ""] {
            assert_eq!(parse_bearer(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn http_refusals_are_401_with_a_bearer_challenge() {
        let response: http::Response<()> = HttpRejection.reject(Refusal::InvalidToken);
        assert_eq!(response.status(), http::StatusCode::UNAUTHORIZED);
        assert_eq!(
            response.headers()[http::header::WWW_AUTHENTICATE],
            "Bearer error=\"invalid_token\""
        );
    }
}
