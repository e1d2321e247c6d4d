//! An admitted connection: the socket, its [`ConnectionPermit`], and the deadlines that close
//! it when the client is slow or idle.
//!
//! - **First byte.** A client must send something within `first_byte` of being accepted (the
//!   `header_read_timeout`): a connection that sends nothing is closed then, on every
//!   listener and before any TLS or HTTP/2 handshake.
//! - **Idle.** With `idle` set, a connection that has had no request in flight for that long
//!   is closed. Requests are counted by [`super::TrackStreams`] (the gRPC server's layer);
//!   HTTP/2 keep-alive pings do not count, so a client that only answers pings is idle.
//!
//! A deadline is checked when the server waits to read (HTTP/2 servers always do); once it
//! passes, the read fails with `TimedOut` and the server drops the connection.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use super::ConnectionPermit;
use super::streams::StreamCount;

/// How long a connection may wait for its client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// From accept to the client's first byte.
    pub first_byte: Duration,
    /// With no request in flight; `None` where requests are not tracked (HTTP/1, whose wait
    /// between requests is bounded by the header-read timeout instead).
    pub idle: Option<Duration>,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            first_byte: Duration::from_secs(10),
            idle: None,
        }
    }
}

/// A connection admitted by [`super::Listener::accept`]; closing it (dropping it) frees its
/// place under the caps.
pub struct Connection<IO> {
    io: IO,
    permit: ConnectionPermit,
    timeouts: Timeouts,
    accepted: Instant,
    /// Whether the client has sent anything yet.
    heard: bool,
    /// Fires at the deadline; `None` once none applies.
    timer: Option<Pin<Box<Sleep>>>,
}

impl<IO> std::fmt::Debug for Connection<IO> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("permit", &self.permit)
            .finish_non_exhaustive()
    }
}

impl<IO> Connection<IO> {
    pub(super) fn new(io: IO, permit: ConnectionPermit, timeouts: Timeouts) -> Self {
        let accepted = Instant::now();
        Self {
            io,
            permit,
            timeouts,
            accepted,
            heard: false,
            timer: Some(Box::pin(tokio::time::sleep_until(
                accepted + timeouts.first_byte,
            ))),
        }
    }

    /// The socket.
    pub fn get_ref(&self) -> &IO {
        &self.io
    }

    fn streams(&self) -> &Arc<StreamCount> {
        &self.permit.streams
    }

    /// When the connection is to be closed if nothing changes; `None` while requests are in
    /// flight or when no deadline applies any more.
    fn deadline(&self) -> Option<Instant> {
        if !self.heard {
            return Some(self.accepted + self.timeouts.first_byte);
        }
        let idle = self.timeouts.idle?;
        self.streams().idle_since().map(|since| since + idle)
    }

    /// Whether the deadline has passed; otherwise arranges to be woken when it may have.
    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        loop {
            let Some(timer) = self.timer.as_mut() else {
                return false;
            };
            if timer.as_mut().poll(cx).is_pending() {
                return false;
            }
            if self.rearm() {
                return true;
            }
        }
    }

    /// Sets the timer for the deadline that applies now; `true` when it has passed.
    fn rearm(&mut self) -> bool {
        let now = Instant::now();
        let next = match (self.deadline(), self.timeouts.idle) {
            (Some(deadline), _) if deadline <= now => return true,
            (Some(deadline), _) => deadline,
            // Requests in flight: look again one idle period from now.
            (None, Some(idle)) => now + idle,
            (None, None) => {
                self.timer = None;
                return false;
            }
        };
        if let Some(timer) = self.timer.as_mut() {
            timer.as_mut().reset(next);
        }
        false
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Connection<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let before = buf.filled().len();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if !this.heard && buf.filled().len() > before {
                    // From the first-byte deadline to the idle one, which may be sooner.
                    this.heard = true;
                    this.rearm();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending if this.expired(cx) => {
                let why = if this.heard {
                    "connection idle for idle_connection_timeout"
                } else {
                    "client sent nothing within header_read_timeout"
                };
                tracing::debug!(peer = %this.permit.peer, why, "closing connection");
                Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, why)))
            }
            other => other,
        }
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Connection<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// tonic reads the peer's address from the socket, so requests see the same connect info
/// as on a bare `TcpStream`.
impl<IO: tonic::transport::server::Connected> tonic::transport::server::Connected
    for Connection<IO>
{
    type ConnectInfo = IO::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.io.connect_info()
    }
}
