//! TLS for authd's listeners: rustls (aws-lc-rs provider), reloadable without a restart.
//!
//! [`ReloadingTls`] holds the current `rustls::ServerConfig` built from PEM files (certificate
//! chain, private key, and optionally the CA that client certificates must chain to, which
//! turns on mTLS). Each new connection takes the config current at that moment, so replacing
//! the files changes what *new* connections see while established ones carry on. The files
//! are polled (their contents are compared) every `reload_interval`, and re-read on SIGHUP;
//! a file that does not parse is reported and the previous config stays in force.
//!
//! [`incoming`] turns a [`Listener`] into a stream of TLS connections (handshakes run
//! concurrently, each with a timeout, so a slow client cannot hold up the others); any
//! listener can use it with its own ALPN list (`h2` for gRPC, `http/1.1` for the side port).
//! The listener's caps and deadlines apply from accept, handshake included.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;

use crate::listener::{Connection, Listener};

/// Connections that completed their handshake and wait to be served.
const QUEUED: usize = 256;

/// Where the PEM files are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// When set, clients must present a certificate issued by one of these CAs.
    pub client_ca: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("{path} holds no PEM certificate")]
    NoCertificate { path: PathBuf },
    #[error("{path} holds no usable PEM private key")]
    NoKey { path: PathBuf },
    #[error("invalid TLS configuration: {0}")]
    Config(String),
}

/// The file contents a config was built from, to notice changes.
type Fingerprint = Vec<Vec<u8>>;

/// A rustls server config that can be replaced while serving.
pub struct ReloadingTls {
    files: TlsFiles,
    alpn: Vec<Vec<u8>>,
    current: RwLock<Arc<ServerConfig>>,
    loaded: Mutex<Fingerprint>,
}

impl std::fmt::Debug for ReloadingTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReloadingTls")
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

impl ReloadingTls {
    /// Loads the files once; `alpn` is the protocol list to offer (e.g. `[b"h2"]`).
    ///
    /// # Errors
    /// When a file cannot be read or parsed, or the key does not fit the certificate.
    pub fn load(files: TlsFiles, alpn: Vec<Vec<u8>>) -> Result<Self, TlsError> {
        let fingerprint = read_all(&files)?;
        let config = build_config(&fingerprint, &files, &alpn)?;
        Ok(Self {
            files,
            alpn,
            current: RwLock::new(Arc::new(config)),
            loaded: Mutex::new(fingerprint),
        })
    }

    /// The config new connections use now.
    pub fn config(&self) -> Arc<ServerConfig> {
        let guard = self.current.read().unwrap_or_else(|p| p.into_inner());
        Arc::clone(&guard)
    }

    /// An acceptor with the current config.
    pub fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.config())
    }

    /// Re-reads the files and swaps the config in when their contents changed. Returns
    /// whether it did.
    ///
    /// # Errors
    /// When the new files cannot be read or parsed; the current config stays in force.
    pub fn reload_if_changed(&self) -> Result<bool, TlsError> {
        let fingerprint = read_all(&self.files)?;
        {
            let loaded = self.loaded.lock().unwrap_or_else(|p| p.into_inner());
            if *loaded == fingerprint {
                return Ok(false);
            }
        }
        let config = build_config(&fingerprint, &self.files, &self.alpn)?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(config);
        *self.loaded.lock().unwrap_or_else(|p| p.into_inner()) = fingerprint;
        Ok(true)
    }

    /// Polls the files every `interval` and re-reads them on SIGHUP, until `stop`. The
    /// SIGHUP handler is installed before this returns, so a signal sent once serving has
    /// started never falls through to the default action (terminating the process).
    pub fn watch(
        self: Arc<Self>,
        interval: Duration,
        stop: CancellationToken,
    ) -> impl std::future::Future<Output = ()> + Send + 'static {
        #[cfg(unix)]
        let mut hangup =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
        async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                #[cfg(unix)]
                let sighup = async {
                    match hangup.as_mut() {
                        Some(h) => {
                            h.recv().await;
                        }
                        None => std::future::pending().await,
                    }
                };
                #[cfg(not(unix))]
                let sighup = std::future::pending::<()>();
                tokio::select! {
                    () = stop.cancelled() => return,
                    _ = tick.tick() => {},
                    () = sighup => tracing::info!("SIGHUP: re-reading TLS files"),
                }
                match self.reload_if_changed() {
                    Ok(true) => tracing::info!(cert = %self.files.cert.display(),
                        "TLS certificate reloaded"),
                    Ok(false) => {}
                    Err(e) => tracing::warn!(error = %e,
                        "TLS files changed but cannot be used; keeping the current certificate"),
                }
            }
        }
    }
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })
}

fn read_all(files: &TlsFiles) -> Result<Fingerprint, TlsError> {
    let mut out = vec![read(&files.cert)?, read(&files.key)?];
    if let Some(ca) = &files.client_ca {
        out.push(read(ca)?);
    }
    Ok(out)
}

fn certificates(pem: &[u8], path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs: Vec<_> = CertificateDer::pem_slice_iter(pem)
        .filter_map(Result::ok)
        .collect();
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_owned(),
        });
    }
    Ok(certs)
}

fn build_config(
    contents: &Fingerprint,
    files: &TlsFiles,
    alpn: &[Vec<u8>],
) -> Result<ServerConfig, TlsError> {
    let config_error = |e: rustls::Error| TlsError::Config(e.to_string());
    let (cert_pem, key_pem) = match contents.as_slice() {
        [cert, key, ..] => (cert, key),
        _ => return Err(TlsError::Config("missing files".into())),
    };
    let chain = certificates(cert_pem, &files.cert)?;
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|_| TlsError::NoKey {
        path: files.key.clone(),
    })?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(config_error)?;
    let builder = match (&files.client_ca, contents.get(2)) {
        (Some(path), Some(ca_pem)) => {
            let mut roots = rustls::RootCertStore::empty();
            for ca in certificates(ca_pem, path)? {
                roots.add(ca).map_err(config_error)?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| TlsError::Config(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
        _ => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(chain, key).map_err(config_error)?;
    config.alpn_protocols = alpn.to_vec();
    Ok(config)
}

/// A TLS connection over an admitted [`Connection`].
pub type TlsConnection = TlsStream<Connection<TcpStream>>;

/// Takes connections from `listener` (so its caps and deadlines apply) and yields those that
/// complete a TLS handshake within `handshake_timeout`, with the config current when they
/// connected, until `stop`.
pub fn incoming(
    mut listener: Listener,
    tls: Arc<ReloadingTls>,
    handshake_timeout: Duration,
    stop: CancellationToken,
) -> ReceiverStream<io::Result<TlsConnection>> {
    // Handshakes in progress are bounded by the listener's caps (each holds its connection's
    // permit), not by a count of their own: waiting for a handshake slot would stop the
    // accept loop, and with it the refusing of connections over the caps.
    let (tx, rx) = mpsc::channel(QUEUED);
    tokio::spawn(async move {
        loop {
            let connection = tokio::select! {
                () = stop.cancelled() => return,
                connection = listener.accept() => connection,
            };
            let acceptor = tls.acceptor();
            let tx = tx.clone();
            tokio::spawn(async move {
                let peer = connection.get_ref().peer_addr().ok();
                match tokio::time::timeout(handshake_timeout, acceptor.accept(connection)).await {
                    Ok(Ok(stream)) => {
                        let _ = tx.send(Ok(stream)).await;
                    }
                    Ok(Err(e)) => {
                        tracing::debug!(?peer, error = %e, "TLS handshake failed");
                    }
                    Err(_) => tracing::debug!(?peer, "TLS handshake timed out"),
                }
            });
        }
    });
    ReceiverStream::new(rx)
}
