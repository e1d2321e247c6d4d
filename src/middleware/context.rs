//! Who is asking, resolved once per request: the client's address (the TCP peer, or what a
//! trusted proxy forwarded), the request id and the user agent, put into the request's
//! extensions as a [`RequestContext`] for the layers after it and the handler.
//!
//! `x-forwarded-for` from a peer that is not in `trusted_proxies` is ignored (anyone can write
//! it); since that usually means authd runs behind a proxy nobody declared, so that all its
//! clients share one rate-limit bucket, it is counted and logged at most once a minute
//! ([`UntrustedForwarding`]).

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use ipnet::IpNet;

use super::PeerAddress;
use crate::service::RequestContext;

/// Resolves each request's [`RequestContext`] into its extensions.
#[derive(Clone)]
pub struct ResolveContextLayer {
    peer: PeerAddress,
    trusted_proxies: Arc<[IpNet]>,
    untrusted_forwarding: Arc<UntrustedForwarding>,
}

impl ResolveContextLayer {
    pub fn new(peer: PeerAddress, trusted_proxies: Vec<IpNet>) -> Self {
        Self {
            peer,
            trusted_proxies: trusted_proxies.into(),
            untrusted_forwarding: Arc::new(UntrustedForwarding::new(UNTRUSTED_WARNING_INTERVAL)),
        }
    }
}

/// How often at most the warning about ignored `x-forwarded-for` headers is logged.
pub const UNTRUSTED_WARNING_INTERVAL: Duration = Duration::from_secs(60);

/// Requests that carried `x-forwarded-for` from an untrusted peer: counted always, logged at
/// most once per interval (a flood of them must not become a flood of log lines).
#[derive(Debug)]
pub struct UntrustedForwarding {
    started: Instant,
    interval: Duration,
    /// Milliseconds after `started` of the last warning, plus one (0: never warned).
    last_warned: AtomicU64,
    /// Ignored headers since the last warning.
    ignored: AtomicU64,
}

impl UntrustedForwarding {
    pub fn new(interval: Duration) -> Self {
        Self {
            started: Instant::now(),
            interval,
            last_warned: AtomicU64::new(0),
            ignored: AtomicU64::new(0),
        }
    }

    /// Counts one ignored header from `peer`; returns whether this call logged the warning.
    pub fn record(&self, peer: IpAddr) -> bool {
        crate::metrics::untrusted_forwarded_for();
        self.ignored.fetch_add(1, Ordering::Relaxed);
        let now = u64::try_from(self.started.elapsed().as_millis())
            .unwrap_or(u64::MAX)
            .saturating_add(1);
        let last = self.last_warned.load(Ordering::Relaxed);
        let interval = u64::try_from(self.interval.as_millis()).unwrap_or(u64::MAX);
        let due = last == 0 || now.saturating_sub(last) >= interval;
        // One caller wins the slot; the others only count.
        if !due
            || self
                .last_warned
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return false;
        }
        let ignored = self.ignored.swap(0, Ordering::Relaxed);
        tracing::warn!(
            %peer,
            ignored,
            "ignored x-forwarded-for from a peer not in trusted_proxies: if authd runs behind \
             a proxy, list it in trusted_proxies, or every client behind it shares one \
             per-source rate limit (README: running behind a proxy)"
        );
        true
    }
}

impl<S> tower::Layer<S> for ResolveContextLayer {
    type Service = ResolveContext<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ResolveContext {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service [`ResolveContextLayer`] produces.
#[derive(Clone)]
pub struct ResolveContext<S> {
    inner: S,
    layer: ResolveContextLayer,
}

impl<S, ReqBody> tower::Service<http::Request<ReqBody>> for ResolveContext<S>
where
    S: tower::Service<http::Request<ReqBody>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<ReqBody>) -> Self::Future {
        let context = resolve(&request, &self.layer);
        request.extensions_mut().insert(context);
        self.inner.call(request)
    }
}

fn resolve<B>(request: &http::Request<B>, layer: &ResolveContextLayer) -> RequestContext {
    let header = |name: &str| request.headers().get(name).and_then(|v| v.to_str().ok());
    // Every line of the header (it may repeat); one that is not text reads as malformed.
    let forwarded_for: Vec<&str> = request
        .headers()
        .get_all("x-forwarded-for")
        .iter()
        .map(|v| v.to_str().unwrap_or_default())
        .collect();
    let peer = (layer.peer)(request.extensions());
    if let Some(peer) = peer
        && !forwarded_for.is_empty()
        && !crate::limits::is_trusted(peer, &layer.trusted_proxies)
    {
        layer.untrusted_forwarding.record(peer);
    }
    let source = crate::limits::client_address(peer, &forwarded_for, &layer.trusted_proxies);
    RequestContext::new(source, header("x-request-id"))
        .with_user_agent(header(http::header::USER_AGENT.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;

    fn peer(extensions: &http::Extensions) -> Option<IpAddr> {
        extensions.get::<IpAddr>().copied()
    }

    #[test]
    fn resolves_source_request_id_and_user_agent_from_headers() {
        let layer = ResolveContextLayer::new(peer, vec!["10.0.0.0/8".parse().unwrap()]);
        let mut request = http::Request::builder()
            .header("x-forwarded-for", "203.0.113.9, 10.0.0.2")
            .header("x-request-id", "req-1")
            .header("user-agent", "grpc-rust")
            .body(())
            .unwrap();
        request
            .extensions_mut()
            .insert("10.0.0.1".parse::<IpAddr>().unwrap());
        let context = resolve(&request, &layer);
        assert_eq!(context.source, Some("203.0.113.9".parse().unwrap()));
        assert_eq!(context.request_id, "req-1");
        assert_eq!(context.user_agent.as_deref(), Some("grpc-rust"));
        // An untrusted peer is the client, whatever it forwards.
        request
            .extensions_mut()
            .insert("192.0.2.7".parse::<IpAddr>().unwrap());
        let context = resolve(&request, &layer);
        assert_eq!(context.source, Some("192.0.2.7".parse().unwrap()));
    }

    /// Issue 16 item 4: a repeated header is read whole, not just its first line.
    #[test]
    fn every_forwarded_for_line_counts() {
        let layer = ResolveContextLayer::new(peer, vec!["10.0.0.0/8".parse().unwrap()]);
        let mut request = http::Request::builder()
            .header("x-forwarded-for", "198.51.100.66")
            .header("x-forwarded-for", "203.0.113.9")
            .body(())
            .unwrap();
        request
            .extensions_mut()
            .insert("10.0.0.1".parse::<IpAddr>().unwrap());
        let context = resolve(&request, &layer);
        assert_eq!(context.source, Some("203.0.113.9".parse().unwrap()));
    }

    #[test]
    fn ignored_forwarding_is_logged_at_most_once_per_interval() {
        let warnings = UntrustedForwarding::new(Duration::from_secs(3600));
        let peer: IpAddr = "192.0.2.7".parse().unwrap();
        assert!(warnings.record(peer));
        for _ in 0..100 {
            assert!(!warnings.record(peer));
        }
        assert_eq!(warnings.ignored.load(Ordering::Relaxed), 100);
        let often = UntrustedForwarding::new(Duration::ZERO);
        assert!(often.record(peer));
        std::thread::sleep(Duration::from_millis(2));
        assert!(often.record(peer));
    }
}
