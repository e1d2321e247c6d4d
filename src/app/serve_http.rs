//! Serving an axum router over HTTP/1.1, connection by connection (the public HTTP port and
//! the management listener): plain or TLS, with a header-read timeout, each request told its
//! connection's peer (axum's `ConnectInfo`), and a graceful drain on the shutdown signal.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_stream::StreamExt as _;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;

use crate::listener::Listener;
use crate::tls::ReloadingTls;

/// Serves `router` on `listener` (the HTTP port or the management listener), over TLS when
/// `tls` is given, until `stop`.
pub(super) async fn serve_listener(
    listener: Listener,
    tls: Option<Arc<ReloadingTls>>,
    router: axum::Router,
    header_read_timeout: Duration,
    handshake_timeout: Duration,
    stop: CancellationToken,
) {
    match tls {
        Some(tls) => {
            let incoming = crate::tls::incoming(listener, tls, handshake_timeout, stop.clone());
            serve_http(incoming, router, header_read_timeout, stop).await;
        }
        None => {
            let incoming = listener.incoming(stop.clone());
            serve_http(incoming, router, header_read_timeout, stop).await;
        }
    }
}

/// Serves the HTTP side port's `router` over HTTP/1.1 on each connection of `connections`
/// until `stop`, then lets the requests in flight finish. A client gets `header_read_timeout`
/// for each request's headers, the wait between kept-alive requests included, so a
/// half-sent request or an idle connection does not hold its connection longer.
async fn serve_http<IO>(
    mut connections: ReceiverStream<std::io::Result<IO>>,
    router: axum::Router,
    header_read_timeout: Duration,
    stop: CancellationToken,
) where
    IO: AsyncRead + AsyncWrite + PeerAddr + Unpin + Send + 'static,
{
    let mut http1 = hyper::server::conn::http1::Builder::new();
    http1
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout)
        .keep_alive(true);
    let graceful = GracefulShutdown::new();
    loop {
        let io = tokio::select! {
            () = stop.cancelled() => break,
            next = connections.next() => match next {
                Some(Ok(io)) => io,
                Some(Err(_)) => continue,
                None => break,
            },
        };
        let router = match io.peer_addr() {
            Some(peer) => router
                .clone()
                .layer(axum::Extension(axum::extract::ConnectInfo(peer))),
            None => router.clone(),
        };
        let service = TowerToHyperService::new(router);
        let connection = graceful.watch(http1.serve_connection(TokioIo::new(io), service));
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "HTTP connection ended with an error");
            }
        });
    }
    // Stop accepting before waiting for the connections to finish.
    drop(connections);
    graceful.shutdown().await;
}

/// The client's address of an accepted connection, plain or TLS, for the HTTP routes' connect
/// info (the per-source limit and the audit trail's source).
trait PeerAddr {
    fn peer_addr(&self) -> Option<SocketAddr>;
}

impl PeerAddr for crate::listener::Connection<tokio::net::TcpStream> {
    fn peer_addr(&self) -> Option<SocketAddr> {
        self.get_ref().peer_addr().ok()
    }
}

impl PeerAddr for crate::tls::TlsConnection {
    fn peer_addr(&self) -> Option<SocketAddr> {
        self.get_ref().0.get_ref().peer_addr().ok()
    }
}
