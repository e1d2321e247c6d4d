//! Observing every request as a layer: counted and timed in the metrics
//! ([`crate::metrics::grpc_request`], per method and status code, refused requests included)
//! and, at debug level on the `authd::request` target, one log line with the request id and
//! source the context layer resolved, so every RPC is traceable by the id its client sent.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use tracing::{Level, debug, enabled};

use crate::metrics::{code_label, method_label};
use crate::service::RequestContext;

/// Counts, times and logs each request when its response headers are ready.
#[derive(Debug, Clone, Copy, Default)]
pub struct ObserveLayer;

impl<S> tower::Layer<S> for ObserveLayer {
    type Service = Observe<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Observe { inner }
    }
}

/// The service [`ObserveLayer`] produces.
#[derive(Debug, Clone)]
pub struct Observe<S> {
    inner: S,
}

impl<S, ReqBody, ResBody> tower::Service<http::Request<ReqBody>> for Observe<S>
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
        let method = method_label(request.uri().path());
        // Captured only when the line will be written.
        let logged = enabled!(target: "authd::request", Level::DEBUG)
            .then(|| request.extensions().get::<RequestContext>().cloned())
            .flatten();
        let start = Instant::now();
        let future = self.inner.call(request);
        Box::pin(async move {
            let result = future.await;
            let took = start.elapsed();
            let (status, code) = match &result {
                Ok(response) => (response.status().as_u16(), code_label(response)),
                Err(_) => (0, "TRANSPORT_ERROR"),
            };
            crate::metrics::grpc_request(method, code, took);
            if let Some(context) = logged {
                debug!(target: "authd::request", method, status, code,
                    request_id = %context.request_id,
                    source = context.source_label().as_deref().unwrap_or("-"),
                    elapsed_ms = took.as_secs_f64() * 1000.0, "request");
            }
            result
        })
    }
}
