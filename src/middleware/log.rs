//! Request logging as a layer: one line per request on the `authd::request` target at debug
//! level (method, outcome, duration, request id, source), so every RPC is traceable by the id
//! its client sent, whether or not its handler logs. When the target is off, nothing is
//! captured.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use tracing::{Level, debug, enabled};

use crate::service::RequestContext;

/// Logs each request when it completes.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogRequestsLayer;

impl<S> tower::Layer<S> for LogRequestsLayer {
    type Service = LogRequests<S>;

    fn layer(&self, inner: S) -> Self::Service {
        LogRequests { inner }
    }
}

/// The service [`LogRequestsLayer`] produces.
#[derive(Debug, Clone)]
pub struct LogRequests<S> {
    inner: S,
}

impl<S, ReqBody, ResBody> tower::Service<http::Request<ReqBody>> for LogRequests<S>
where
    S: tower::Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ResBody: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        if !enabled!(target: "authd::request", Level::DEBUG) {
            return Box::pin(self.inner.call(request));
        }
        let method = crate::metrics::method_label(request.uri().path());
        let (request_id, source) = request
            .extensions()
            .get::<RequestContext>()
            .map(|c| (c.request_id.clone(), c.source_label()))
            .unwrap_or_default();
        let start = Instant::now();
        let future = self.inner.call(request);
        Box::pin(async move {
            let result = future.await;
            let (status, code) = match &result {
                Ok(response) => (
                    response.status().as_u16(),
                    crate::metrics::code_label(response),
                ),
                Err(_) => (0, "TRANSPORT_ERROR"),
            };
            debug!(target: "authd::request", method, status, code, %request_id,
                source = source.as_deref().unwrap_or("-"),
                elapsed_ms = start.elapsed().as_secs_f64() * 1000.0, "request");
            result
        })
    }
}
