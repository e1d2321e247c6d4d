//! A TCP proxy to PostgreSQL that a test can cut: the server going away (every relayed
//! connection closed) or a network partition (nothing forwarded, nothing closed). Shared by the
//! replica tests and the fault-injection tests.
#![allow(dead_code)] // each test crate uses part of it

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// What the proxy between a replica and PostgreSQL does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    /// Relays bytes both ways.
    Up,
    /// The server went away: every relayed connection is closed, new ones are accepted and
    /// left unanswered (and dropped once the link is up again).
    Closed,
    /// A network partition: nothing is forwarded and nothing is closed; bytes already sent
    /// are delivered once the link is up again.
    Silent,
}

/// A TCP proxy to PostgreSQL that the test can cut.
pub struct Proxy {
    pub port: u16,
    link: watch::Sender<Link>,
}

impl Proxy {
    pub async fn start(upstream: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (link, _) = watch::channel(Link::Up);
        let state = link.clone();
        tokio::spawn(async move {
            loop {
                let Ok((inbound, _)) = listener.accept().await else {
                    return;
                };
                let mut link = state.subscribe();
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    // A connection arriving while the link is down waits, unanswered.
                    let at_accept = *link.borrow_and_update();
                    if at_accept != Link::Up {
                        let _ = link.wait_for(|l| *l == Link::Up).await;
                        if at_accept == Link::Closed {
                            return;
                        }
                    }
                    let Ok(outbound) = TcpStream::connect(&upstream).await else {
                        return;
                    };
                    let (in_read, in_write) = inbound.into_split();
                    let (out_read, out_write) = outbound.into_split();
                    tokio::join!(
                        pump(in_read, out_write, link.clone()),
                        pump(out_read, in_write, link),
                    );
                });
            }
        });
        Self { port, link }
    }

    pub fn set(&self, link: Link) {
        self.link.send_replace(link);
    }
}

/// Copies one direction while the link allows it; returns (dropping both halves) when either
/// side closes or the link is `Closed`.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut link: watch::Receiver<Link>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = tokio::select! {
            read = from.read(&mut buf) => match read {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            },
            _ = link.wait_for(|l| *l == Link::Closed) => return,
        };
        match link.wait_for(|l| *l != Link::Silent).await.map(|l| *l) {
            Ok(Link::Up) => {}
            _ => return,
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
