//! Requests in flight per connection, so a connection with none can be closed as idle.
//!
//! [`TrackStreams`] is a tower layer for a server fed by a [`super::Listener`]: each request
//! finds its connection by the peer address tonic puts in the request's extensions, and
//! counts as in flight until its response body is finished or dropped. The connection's
//! [`super::Connection`] reads the count to decide whether it is idle.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::time::Instant;
use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};

use super::Shared;

/// One connection's requests in flight, and since when it has had none.
#[derive(Debug)]
pub(super) struct StreamCount {
    state: Mutex<(usize, Instant)>,
}

impl StreamCount {
    pub(super) fn new() -> Self {
        Self {
            state: Mutex::new((0, Instant::now())),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, (usize, Instant)> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Since when no request has been in flight; `None` while one is.
    pub(super) fn idle_since(&self) -> Option<Instant> {
        let (in_flight, since) = *self.state();
        (in_flight == 0).then_some(since)
    }

    fn start(self: &Arc<Self>) -> InFlight {
        self.state().0 += 1;
        InFlight(Arc::clone(self))
    }
}

/// A request in flight; dropping it ends the request.
#[derive(Debug)]
pub struct InFlight(Arc<StreamCount>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut state = self.0.state();
        state.0 = state.0.saturating_sub(1);
        if state.0 == 0 {
            state.1 = Instant::now();
        }
    }
}

/// A tower layer counting each request against its connection (see the module docs).
#[derive(Clone)]
pub struct TrackStreams {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for TrackStreams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrackStreams")
            .field("listener", &self.shared.name)
            .finish()
    }
}

impl TrackStreams {
    pub(super) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }

    fn start<B>(&self, request: &http::Request<B>) -> Option<InFlight> {
        let extensions = request.extensions();
        let peer = extensions
            .get::<TcpConnectInfo>()
            .and_then(TcpConnectInfo::remote_addr)
            .or_else(|| {
                extensions
                    .get::<TlsConnectInfo<TcpConnectInfo>>()
                    .and_then(|info| info.get_ref().remote_addr())
            })?;
        let streams = self.shared.registry().streams.get(&peer).cloned()?;
        Some(streams.start())
    }
}

impl<S> tower::Layer<S> for TrackStreams {
    type Service = TrackedStreams<S>;

    fn layer(&self, inner: S) -> Self::Service {
        TrackedStreams {
            inner,
            tracker: self.clone(),
        }
    }
}

/// The service [`TrackStreams`] wraps.
#[derive(Debug, Clone)]
pub struct TrackedStreams<S> {
    inner: S,
    tracker: TrackStreams,
}

impl<S, ReqBody, ResBody> tower::Service<http::Request<ReqBody>> for TrackedStreams<S>
where
    S: tower::Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ResBody: Send + 'static,
{
    type Response = http::Response<Counted<ResBody>>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        let in_flight = self.tracker.start(&request);
        let future = self.inner.call(request);
        Box::pin(async move {
            let response = future.await?;
            Ok(response.map(|body| Counted {
                body,
                _in_flight: in_flight,
            }))
        })
    }
}

/// A response body that keeps its request in flight until it is finished or dropped
/// (streaming responses such as health `Watch` stay in flight for their whole life).
#[derive(Debug)]
pub struct Counted<B> {
    body: B,
    _in_flight: Option<InFlight>,
}

impl<B: http_body::Body + Unpin> http_body::Body for Counted<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}
