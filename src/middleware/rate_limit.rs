//! Per-source rate limiting as a layer: one token from the client's bucket
//! ([`SourceLimiter`], keyed by the address [`super::context`] resolved) per request on the
//! limited paths. A refused request is answered by the transport's [`Refuse`] and never
//! reaches its handler.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tracing::info;

use super::Refuse;
use crate::limits::SourceLimiter;
use crate::service::RequestContext;

/// Charges requests on `limited` paths to their source's bucket.
#[derive(Clone)]
pub struct RateLimitLayer<R> {
    limiter: Arc<SourceLimiter>,
    limited: &'static [&'static str],
    refuse: R,
}

impl<R> RateLimitLayer<R> {
    /// Limits requests whose path starts with one of `limited`.
    pub fn new(limiter: Arc<SourceLimiter>, limited: &'static [&'static str], refuse: R) -> Self {
        Self {
            limiter,
            limited,
            refuse,
        }
    }
}

impl<S, R: Clone> tower::Layer<S> for RateLimitLayer<R> {
    type Service = RateLimit<S, R>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimit {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service [`RateLimitLayer`] produces.
#[derive(Clone)]
pub struct RateLimit<S, R> {
    inner: S,
    layer: RateLimitLayer<R>,
}

impl<S, R, ReqBody, ResBody> tower::Service<http::Request<ReqBody>> for RateLimit<S, R>
where
    S: tower::Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    R: Refuse<ResBody>,
    ResBody: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        let path = request.uri().path();
        if self.layer.limited.iter().any(|p| path.starts_with(p)) {
            let context = request.extensions().get::<RequestContext>();
            if let Err(limited) = self.layer.limiter.check(context.and_then(|c| c.source)) {
                info!(target: "authd::limits",
                    source = %context.and_then(RequestContext::source_label).unwrap_or_default(),
                    request_id = context.map_or("-", |c| c.request_id.as_str()),
                    request = crate::metrics::method_label(path),
                    "per-source rate limit exceeded");
                let refused = self.layer.refuse.rate_limited(limited);
                return Box::pin(std::future::ready(Ok(refused)));
            }
        }
        Box::pin(self.inner.call(request))
    }
}
