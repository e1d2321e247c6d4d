//! Who is asking, resolved once per request: the client's address (the TCP peer, or what a
//! trusted proxy forwarded), the request id and the user agent, put into the request's
//! extensions as a [`RequestContext`] for the layers after it and the handler.

use std::sync::Arc;
use std::task::{Context, Poll};

use ipnet::IpNet;

use super::PeerAddress;
use crate::service::RequestContext;

/// Resolves each request's [`RequestContext`] into its extensions.
#[derive(Clone)]
pub struct ResolveContextLayer {
    peer: PeerAddress,
    trusted_proxies: Arc<[IpNet]>,
}

impl ResolveContextLayer {
    pub fn new(peer: PeerAddress, trusted_proxies: Vec<IpNet>) -> Self {
        Self {
            peer,
            trusted_proxies: trusted_proxies.into(),
        }
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
    let source = crate::limits::client_address(
        (layer.peer)(request.extensions()),
        header("x-forwarded-for"),
        &layer.trusted_proxies,
    );
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
}
