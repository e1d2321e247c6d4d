//! The layer stack every request of the `auth.v1` API passes before its handler, written as
//! generic tower layers over `http::Request` so the gRPC server has it now and an HTTP/JSON
//! router can have the same stack by construction.
//!
//! In order, outermost first ([`RequestStack`]):
//! 1. [`context::ResolveContextLayer`]: resolve the client's address (trusted proxies,
//!    [`crate::limits::client_address`]), request id and user agent once, into a
//!    [`crate::service::RequestContext`] in the request extensions, where handlers take it;
//! 2. [`observe::ObserveLayer`]: count and time every request in the metrics (per method and
//!    status code) and log it at debug level with its request id;
//! 3. [`rate_limit::RateLimitLayer`]: one token from the source's bucket per request on the
//!    limited paths; a refused request never reaches its handler (or body decoding).
//!
//! What a refusal looks like on the wire is the transport's business ([`Refuse`]: gRPC maps
//! it in `grpc::error`, the one place statuses are made). This module knows no tonic.

pub mod context;
pub mod observe;
pub mod rate_limit;

use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;

use crate::limits::{RateLimited, SourceLimiter};

pub use context::{ResolveContext, ResolveContextLayer};
pub use observe::{Observe, ObserveLayer};
pub use rate_limit::{RateLimit, RateLimitLayer};

/// How a transport finds the TCP peer of a request in its extensions.
pub type PeerAddress = fn(&http::Extensions) -> Option<IpAddr>;

/// How a transport answers a request the stack refuses, with responses of body `B`.
pub trait Refuse<B>: Clone + Send + Sync + 'static {
    /// The response to a request over its source's rate.
    fn rate_limited(&self, limited: RateLimited) -> http::Response<B>;
}

/// The whole stack as one layer.
#[derive(Clone)]
pub struct RequestStack<R> {
    context: ResolveContextLayer,
    limit: RateLimitLayer<R>,
}

impl<R: Clone> RequestStack<R> {
    /// `limiter` charges requests whose path starts with one of `limited` (others, such as
    /// health checks, pass free); `peer` reads the TCP peer from the request's extensions and
    /// `trusted_proxies` say whose `x-forwarded-for` to believe; `refuse` answers refusals.
    pub fn new(
        limiter: Arc<SourceLimiter>,
        limited: &'static [&'static str],
        peer: PeerAddress,
        trusted_proxies: Vec<IpNet>,
        refuse: R,
    ) -> Self {
        Self {
            context: ResolveContextLayer::new(peer, trusted_proxies),
            limit: RateLimitLayer::new(limiter, limited, refuse),
        }
    }
}

impl<S, R: Clone> tower::Layer<S> for RequestStack<R> {
    type Service = ResolveContext<Observe<RateLimit<S, R>>>;

    fn layer(&self, inner: S) -> Self::Service {
        let limited = self.limit.layer(inner);
        let observed = ObserveLayer.layer(limited);
        self.context.layer(observed)
    }
}
