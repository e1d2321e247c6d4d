//! A tower layer for tonic (or any `http` service): no valid bearer token, no entry.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use crate::claims::Claims;
use crate::verify::Verifier;

/// Requires `authorization: Bearer <access token>` on every request. A missing or invalid
/// token gets gRPC `UNAUTHENTICATED` (the reason is logged, not sent); a valid one puts its
/// [`Claims`] in the request extensions for the handler.
#[derive(Debug, Clone)]
pub struct RequireBearerLayer {
    verifier: Arc<Verifier>,
}

impl RequireBearerLayer {
    pub fn new(verifier: Arc<Verifier>) -> Self {
        Self { verifier }
    }
}

impl<S> tower::Layer<S> for RequireBearerLayer {
    type Service = RequireBearer<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequireBearer {
            inner,
            verifier: Arc::clone(&self.verifier),
        }
    }
}

/// The service [`RequireBearerLayer`] produces.
#[derive(Debug, Clone)]
pub struct RequireBearer<S> {
    inner: S,
    verifier: Arc<Verifier>,
}

impl<S, ReqBody, ResBody> tower::Service<http::Request<ReqBody>> for RequireBearer<S>
where
    S: tower::Service<http::Request<ReqBody>, Response = http::Response<ResBody>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
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
        Box::pin(async move {
            let Some(token) = bearer_token(request.headers()) else {
                return Ok(tonic::Status::unauthenticated("missing bearer token").into_http());
            };
            match verifier.verify(token).await {
                Ok(claims) => {
                    request.extensions_mut().insert(claims);
                    inner.call(request).await
                }
                Err(e) => {
                    tracing::info!(reason = %e, "access token refused");
                    Ok(tonic::Status::unauthenticated("invalid access token").into_http())
                }
            }
        })
    }
}

/// The token of an `authorization: Bearer …` header (scheme case-insensitive).
pub fn bearer_token(headers: &http::HeaderMap) -> Option<&str> {
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// The verified claims of a request that passed [`RequireBearerLayer`].
pub fn claims<T>(request: &tonic::Request<T>) -> Option<&Claims> {
    request.extensions().get::<Claims>()
}
