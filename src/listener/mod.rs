//! Accepting connections under limits: the one accept loop every listener goes through (gRPC
//! and the HTTP side port, plain and TLS).
//!
//! [`Listener::accept`] admits a connection only while its listener holds fewer than
//! `max_connections` and the connection's source fewer than `max_connections_per_source`.
//! Past a cap the connection is closed at once, counted (`authd_connections_refused_total`,
//! by reason) and logged at most once per [`LOG_INTERVAL`] per listener. An admitted
//! connection carries a [`ConnectionPermit`] for its whole life (dropping it frees the slot)
//! and the slow-client deadlines of [`Connection`]. Accept errors such as EMFILE (out of file
//! descriptors) back off, doubling up to [`MAX_BACKOFF`], instead of spinning.
//!
//! The source is the TCP peer's address (an IPv6 peer's /64, as for the per-source rate
//! limit): `x-forwarded-for` is per request and unknown at accept. So a trusted proxy's own
//! address is exempt from the per-source cap: it carries many clients.
//!
//! This module speaks neither TLS nor HTTP: `tls` handshakes on top of its connections and
//! `app` serves them. [`capacity`] sizes the default caps from the open-file limit;
//! [`TrackStreams`] tells connections which requests they have in flight, so an idle one can
//! be closed.

pub mod capacity;
mod connection;
mod streams;

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use ipnet::IpNet;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;

pub use connection::{Connection, Timeouts};
pub use streams::{TrackStreams, TrackedStreams};

use streams::StreamCount;

/// Refused connections and accept errors are logged at most once per this interval per
/// listener, with the number refused since the previous line.
pub const LOG_INTERVAL: Duration = Duration::from_secs(5);
/// The first wait after an accept error; it doubles on each further error.
pub const MIN_BACKOFF: Duration = Duration::from_millis(5);
/// The longest wait between accept attempts after errors.
pub const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// Accepted connections waiting to be served, per listener.
const QUEUED: usize = 64;

/// The caps and deadlines of one listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Connections held at once.
    pub max_connections: usize,
    /// Connections held at once per source (an IPv4 address or an IPv6 /64).
    pub max_per_source: usize,
    /// Peers exempt from the per-source cap.
    pub trusted_proxies: Vec<IpNet>,
    pub timeouts: Timeouts,
}

/// Why a connection was refused at accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    MaxConnections,
    MaxConnectionsPerSource,
}

impl Refusal {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MaxConnections => "max_connections",
            Self::MaxConnectionsPerSource => "max_connections_per_source",
        }
    }
}

/// Open connections of one listener.
#[derive(Default)]
struct Registry {
    open: usize,
    per_source: HashMap<IpAddr, usize>,
    /// Each open connection's requests in flight, by peer (one connection per peer address
    /// and port at a time), for [`TrackStreams`].
    streams: HashMap<SocketAddr, Arc<StreamCount>>,
}

struct Shared {
    name: &'static str,
    limits: ConnectionLimits,
    registry: Mutex<Registry>,
}

impl Shared {
    fn registry(&self) -> MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn admit(self: &Arc<Self>, peer: SocketAddr) -> Result<ConnectionPermit, Refusal> {
        let source = (!crate::limits::is_trusted(peer.ip(), &self.limits.trusted_proxies))
            .then(|| crate::limits::bucket_key(peer.ip()));
        let streams;
        {
            let mut registry = self.registry();
            if registry.open >= self.limits.max_connections {
                return Err(Refusal::MaxConnections);
            }
            if let Some(source) = source {
                let held = registry.per_source.entry(source).or_default();
                if *held >= self.limits.max_per_source {
                    if *held == 0 {
                        registry.per_source.remove(&source);
                    }
                    return Err(Refusal::MaxConnectionsPerSource);
                }
                *held += 1;
            }
            registry.open += 1;
            streams = Arc::new(StreamCount::new());
            registry.streams.insert(peer, Arc::clone(&streams));
        }
        crate::metrics::connection_opened(self.name);
        Ok(ConnectionPermit {
            shared: Arc::clone(self),
            peer,
            source,
            streams,
        })
    }
}

/// A connection's place under its listener's caps, held for the connection's life.
pub struct ConnectionPermit {
    shared: Arc<Shared>,
    peer: SocketAddr,
    /// The per-source key it counts against; `None` for a trusted proxy.
    source: Option<IpAddr>,
    streams: Arc<StreamCount>,
}

impl std::fmt::Debug for ConnectionPermit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionPermit")
            .field("listener", &self.shared.name)
            .field("peer", &self.peer)
            .finish_non_exhaustive()
    }
}

impl Drop for ConnectionPermit {
    fn drop(&mut self) {
        {
            let mut registry = self.shared.registry();
            registry.open = registry.open.saturating_sub(1);
            if let Some(source) = self.source
                && let Some(held) = registry.per_source.get_mut(&source)
            {
                *held = held.saturating_sub(1);
                if *held == 0 {
                    registry.per_source.remove(&source);
                }
            }
            registry.streams.remove(&self.peer);
        }
        crate::metrics::connection_closed(self.shared.name);
    }
}

/// Counts events and says when one may be logged: at most once per [`LOG_INTERVAL`].
struct LogBudget {
    last: Option<Instant>,
    unlogged: u64,
}

impl LogBudget {
    const fn new() -> Self {
        Self {
            last: None,
            unlogged: 0,
        }
    }

    /// Records one event; returns how many happened since the last logged one (this one
    /// included) when this one may be logged.
    fn record(&mut self, now: Instant) -> Option<u64> {
        self.unlogged += 1;
        if self
            .last
            .is_some_and(|last| now.duration_since(last) < LOG_INTERVAL)
        {
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.unlogged))
    }
}

/// A bound TCP listener that admits connections under [`ConnectionLimits`].
pub struct Listener {
    tcp: TcpListener,
    shared: Arc<Shared>,
    refusals: LogBudget,
    errors: LogBudget,
    backoff: Duration,
}

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listener")
            .field("name", &self.shared.name)
            .field("limits", &self.shared.limits)
            .finish_non_exhaustive()
    }
}

impl Listener {
    /// `name` labels its metrics and logs (`grpc`, `http`).
    pub fn new(tcp: TcpListener, name: &'static str, limits: ConnectionLimits) -> Self {
        crate::metrics::connections_listener(name);
        Self {
            tcp,
            shared: Arc::new(Shared {
                name,
                limits,
                registry: Mutex::new(Registry::default()),
            }),
            refusals: LogBudget::new(),
            errors: LogBudget::new(),
            backoff: MIN_BACKOFF,
        }
    }

    /// # Errors
    /// When the socket's address cannot be read.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.tcp.local_addr()
    }

    /// What requests on this listener's connections use to report themselves (see
    /// [`TrackStreams`]).
    pub fn track_streams(&self) -> TrackStreams {
        TrackStreams::new(Arc::clone(&self.shared))
    }

    /// Connections held now.
    pub fn open(&self) -> usize {
        self.shared.registry().open
    }

    /// The next connection admitted under the caps. Refused connections are closed here;
    /// accept errors are waited out. Cancel-safe.
    pub async fn accept(&mut self) -> Connection<TcpStream> {
        loop {
            match self.tcp.accept().await {
                Ok((stream, peer)) => {
                    self.backoff = MIN_BACKOFF;
                    match self.shared.admit(peer) {
                        Ok(permit) => {
                            // Small unary messages: send them without waiting for more.
                            let _ = stream.set_nodelay(true);
                            return Connection::new(stream, permit, self.shared.limits.timeouts);
                        }
                        Err(refusal) => self.refuse(stream, peer, refusal),
                    }
                }
                Err(e) if is_per_connection(&e) => {
                    tracing::debug!(listener = self.shared.name, error = %e,
                        "a connection failed while being accepted");
                }
                Err(e) => {
                    crate::metrics::accept_error(self.shared.name);
                    if let Some(errors) = self.errors.record(Instant::now()) {
                        tracing::warn!(listener = self.shared.name, error = %e, errors,
                            backoff_ms = self.backoff.as_millis(),
                            "cannot accept connections; backing off");
                    }
                    tokio::time::sleep(self.backoff).await;
                    self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    fn refuse(&mut self, stream: TcpStream, peer: SocketAddr, refusal: Refusal) {
        drop(stream);
        crate::metrics::connection_refused(self.shared.name, refusal.as_str());
        if let Some(refused) = self.refusals.record(Instant::now()) {
            let limits = &self.shared.limits;
            tracing::warn!(listener = self.shared.name, %peer, reason = refusal.as_str(),
                refused, max_connections = limits.max_connections,
                max_connections_per_source = limits.max_per_source,
                "connections refused at accept (this line is logged at most every 5 s)");
        }
    }

    /// Accepts in a task of its own until `stop`, yielding admitted connections.
    pub fn incoming(
        mut self,
        stop: CancellationToken,
    ) -> ReceiverStream<io::Result<Connection<TcpStream>>> {
        let (tx, rx) = mpsc::channel(QUEUED);
        tokio::spawn(async move {
            loop {
                let connection = tokio::select! {
                    () = stop.cancelled() => return,
                    connection = self.accept() => connection,
                };
                if tx.send(Ok(connection)).await.is_err() {
                    return;
                }
            }
        });
        ReceiverStream::new(rx)
    }
}

/// Accept errors that concern one connection only (it was reset before it was accepted), as
/// opposed to the process lacking descriptors or memory.
fn is_per_connection(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
            | io::ErrorKind::Interrupted
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max: usize, per_source: usize, trusted: &[&str]) -> ConnectionLimits {
        ConnectionLimits {
            max_connections: max,
            max_per_source: per_source,
            trusted_proxies: trusted.iter().map(|s| s.parse().unwrap()).collect(),
            timeouts: Timeouts::default(),
        }
    }

    fn shared(limits: ConnectionLimits) -> Arc<Shared> {
        Arc::new(Shared {
            name: "test",
            limits,
            registry: Mutex::new(Registry::default()),
        })
    }

    fn peer(s: &str, port: u16) -> SocketAddr {
        SocketAddr::new(s.parse().unwrap(), port)
    }

    #[test]
    fn caps_count_per_source_and_permits_give_slots_back() {
        let shared = shared(limits(3, 2, &[]));
        let a1 = shared.admit(peer("192.0.2.1", 1)).unwrap();
        let _a2 = shared.admit(peer("192.0.2.1", 2)).unwrap();
        assert_eq!(
            shared.admit(peer("192.0.2.1", 3)).unwrap_err(),
            Refusal::MaxConnectionsPerSource
        );
        let _b1 = shared.admit(peer("192.0.2.2", 1)).unwrap();
        assert_eq!(
            shared.admit(peer("192.0.2.3", 1)).unwrap_err(),
            Refusal::MaxConnections
        );
        drop(a1);
        let _a3 = shared.admit(peer("192.0.2.1", 3)).unwrap();
        assert_eq!(shared.registry().open, 3);
        assert_eq!(shared.registry().streams.len(), 3);
    }

    #[test]
    fn nothing_is_left_behind_when_all_permits_are_dropped() {
        let shared = shared(limits(10, 1, &[]));
        let permits: Vec<_> = (0..5)
            .map(|i| shared.admit(peer(&format!("192.0.2.{i}"), 1)).unwrap())
            .collect();
        // Refusals leave no empty entries either.
        assert!(shared.admit(peer("192.0.2.1", 2)).is_err());
        drop(permits);
        let registry = shared.registry();
        assert_eq!(registry.open, 0);
        assert!(registry.per_source.is_empty() && registry.streams.is_empty());
    }

    #[test]
    fn ipv6_sources_share_their_64_and_trusted_proxies_are_exempt() {
        let shared = shared(limits(10, 1, &["10.0.0.0/8"]));
        let _a = shared.admit(peer("2001:db8:1:2::1", 1)).unwrap();
        assert!(shared.admit(peer("2001:db8:1:2::2", 1)).is_err());
        let _b = shared.admit(peer("2001:db8:1:3::1", 1)).unwrap();
        let _proxied: Vec<_> = (0..5)
            .map(|port| shared.admit(peer("10.0.0.1", port)).unwrap())
            .collect();
        assert_eq!(shared.registry().open, 7);
    }

    #[test]
    fn log_budget_allows_one_line_per_interval_with_the_count() {
        let mut budget = LogBudget::new();
        let start = Instant::now();
        assert_eq!(budget.record(start), Some(1));
        assert_eq!(budget.record(start + Duration::from_secs(1)), None);
        assert_eq!(budget.record(start + Duration::from_secs(2)), None);
        assert_eq!(budget.record(start + LOG_INTERVAL), Some(3));
    }
}
