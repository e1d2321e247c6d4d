//! Startup as a library: build everything (binding both ports first), then serve until a
//! shutdown future completes.
//!
//! One process serves gRPC (`grpc_addr`, over TLS when configured) and the HTTP side port
//! (`http_addr`: JWKS, discovery, health, metrics), and runs background jobs: the key job
//! (reload keys from the database every minute, rotate when due), the health probe,
//! housekeeping (ended sessions, throttle counters, audit events, per-source buckets), plus the
//! TLS watcher. One shutdown future stops all of them; in-flight requests finish first.
//!
//! ```no_run
//! # async fn run() -> Result<(), authd::app::StartupError> {
//! let config = authd::config::Config::default();
//! let app = authd::app::Application::build(config).await?;
//! println!("gRPC on {}, HTTP on {}", app.grpc_addr(), app.http_addr());
//! app.run_until_stopped(std::future::pending()).await
//! # }
//! ```

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_stream::StreamExt as _;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::transport::Server;

use crate::config::{Config, ConfigError, KEY_RELOAD_INTERVAL};
use crate::crypto::key_encryption::KeyEncryption;
use crate::crypto::password::{HashError, PasswordHasher};
use crate::domain::{Clock, SystemClock};
use crate::grpc::AuthApi;
use crate::grpc::health;
use crate::http::{ApiSettings, HttpState, router};
use crate::listener::capacity::{self, FileLimit};
use crate::listener::{ConnectionLimits, Listener, Timeouts};
use crate::service::{KeyManager, TokenService, housekeeping};
use crate::store::{self, Store, StoreError};
use crate::tls::{ReloadingTls, TlsError};

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("cannot open the database: {0}")]
    Store(#[from] StoreError),
    #[error("cannot bind {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("signing keys: {0}")]
    Keys(String),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("password hashing: {0}")]
    Hash(#[from] HashError),
    #[error("TLS: {0}")]
    Tls(#[from] TlsError),
    #[error("gRPC server failed: {0}")]
    Serve(#[from] tonic::transport::Error),
    #[error("gRPC reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
}

/// A built, bound, not yet serving authd.
pub struct Application {
    grpc_listener: Listener,
    grpc_addr: SocketAddr,
    http_listener: Listener,
    http_addr: SocketAddr,
    service: Arc<TokenService>,
    admin: crate::grpc::admin::AdminApi,
    account: crate::grpc::account::AccountApi,
    http_state: HttpState,
    store: Arc<dyn Store>,
    /// TLS for the gRPC port (ALPN h2), when configured.
    tls: Option<Arc<ReloadingTls>>,
    /// TLS for the HTTP side port (ALPN http/1.1): the same files, loaded separately.
    http_tls: Option<Arc<ReloadingTls>>,
    config: Config,
}

async fn bind(
    addr: SocketAddr,
    name: &'static str,
    limits: ConnectionLimits,
) -> Result<(Listener, SocketAddr), StartupError> {
    let bind_error = |source| StartupError::Bind { addr, source };
    let listener = TcpListener::bind(addr).await.map_err(bind_error)?;
    let bound = listener.local_addr().map_err(bind_error)?;
    Ok((Listener::new(listener, name, limits), bound))
}

/// The caps of each listener: the configured ones, or ones sized from the open-file limit
/// (raised to the hard limit first), keeping descriptors back for the database and logs.
/// Logs the outcome, and warns when the limit stays low or the caps do not fit in it.
fn connection_limits(config: &Config) -> ConnectionLimits {
    let file_limit = capacity::raise_file_limit();
    let reserved = capacity::reserved_descriptors(config.database_max_connections);
    let max_connections = config.max_connections.unwrap_or_else(|| {
        // Unknown limit (not a Unix system): assume the common 1,024.
        let soft = file_limit.map_or(1024, |l| l.soft);
        capacity::default_max_connections(soft, reserved)
    });
    let max_per_source = config
        .max_connections_per_source
        .unwrap_or_else(|| capacity::default_max_per_source(max_connections));
    match file_limit {
        Some(FileLimit { before, soft, hard }) => {
            tracing::info!(
                before,
                soft,
                hard,
                reserved,
                max_connections,
                max_per_source,
                "open-file limit raised to the hard limit; connection caps per listener"
            );
            if soft < capacity::LOW_FILE_LIMIT {
                tracing::warn!(
                    soft,
                    max_connections,
                    "the open-file limit is low and caps how many clients can connect; raise \
                     it (systemd: LimitNOFILE=65536; shell: ulimit -n)"
                );
            }
            if !capacity::fits(soft, reserved, max_connections) {
                tracing::warn!(
                    soft,
                    reserved,
                    max_connections,
                    "max_connections on both listeners plus the descriptors kept for the \
                     database exceed the open-file limit; accepts may fail with EMFILE"
                );
            }
        }
        None => tracing::warn!(max_connections, "cannot read the open-file limit"),
    }
    ConnectionLimits {
        max_connections,
        max_per_source,
        trusted_proxies: config.trusted_proxies.clone(),
        timeouts: Timeouts {
            first_byte: config.header_read_timeout,
            idle: None,
        },
    }
}

/// The key encryption key from the configuration, ready to use.
///
/// # Errors
/// When the configured value is not 32 bytes of base64.
pub fn key_encryption(config: &Config) -> Result<Option<KeyEncryption>, StartupError> {
    config
        .key_encryption_key
        .as_ref()
        .map(|k| {
            let bytes = k.bytes()?;
            KeyEncryption::new(&bytes).map_err(|e| StartupError::Keys(e.to_string()))
        })
        .transpose()
}

impl Application {
    /// Builds with the system clock.
    ///
    /// # Errors
    /// See [`Application::build_with_clock`].
    pub async fn build(config: Config) -> Result<Self, StartupError> {
        Self::build_with_clock(config, Arc::new(SystemClock)).await
    }

    /// Opens and migrates the database, loads (or creates) the signing keys, prepares the
    /// hashing pool and the metrics recorder, loads the TLS files, and binds both ports (port 0
    /// picks a free one).
    ///
    /// # Errors
    /// When the database cannot be opened, a port cannot be bound, keys cannot be loaded or
    /// the TLS files are unusable.
    pub async fn build_with_clock(
        config: Config,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, StartupError> {
        let metrics = crate::metrics::install();
        let store: Arc<dyn Store> =
            store::open_with(&config.database_url, &config.store_options()).await?;
        let keys = KeyManager::start(
            Arc::clone(&store),
            Arc::clone(&clock),
            config.key_policy(),
            config.signing_algorithm,
            key_encryption(&config)?,
        )
        .await
        .map_err(|e| StartupError::Keys(e.to_string()))?;
        let hasher = Arc::new(PasswordHasher::with_queue(
            config.argon2(),
            config.hash_permits(),
            config.hash_queue(),
        )?);
        let keys = Arc::new(keys);
        let service = Arc::new(TokenService::new(
            Arc::clone(&store),
            Arc::clone(&hasher),
            Arc::clone(&keys),
            Arc::clone(&clock),
            config.token_settings(),
        ));
        let (admin, account) = admin_apis(&config, &service, &store, hasher, keys, clock)?;
        let tls = config
            .tls()
            .map(|files| ReloadingTls::load(files, vec![b"h2".to_vec()]).map(Arc::new))
            .transpose()?;
        let http_tls = config
            .tls()
            .map(|files| ReloadingTls::load(files, vec![b"http/1.1".to_vec()]).map(Arc::new))
            .transpose()?;
        let http_limits = connection_limits(&config);
        // gRPC requests are tracked per connection, so an idle connection can be closed; the
        // HTTP/1 side port waits for each request under the header-read timeout instead.
        let mut grpc_limits = http_limits.clone();
        grpc_limits.timeouts.idle = Some(config.idle_connection_timeout);
        let (grpc_listener, grpc_addr) = bind(config.grpc_addr, "grpc", grpc_limits).await?;
        let (http_listener, http_addr) = bind(config.http_addr, "http", http_limits).await?;
        let http_state = HttpState::new(
            Arc::clone(&service),
            metrics,
            config.jwks_max_age,
            config.jwks_uri(),
        )
        .api(ApiSettings {
            password_grant: config.oauth2_password_grant,
            max_body_bytes: config.max_message_bytes,
            trusted_proxies: config.trusted_proxies.clone(),
            cors_allowed_origins: config.cors_allowed_origins.clone(),
        });
        Ok(Self {
            grpc_listener,
            grpc_addr,
            http_listener,
            http_addr,
            service,
            admin,
            account,
            http_state,
            store,
            tls,
            http_tls,
            config,
        })
    }

    /// The address the gRPC server is bound to.
    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc_addr
    }

    /// The address the HTTP side port is bound to.
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// The token service, e.g. for tests that inspect keys.
    pub fn service(&self) -> Arc<TokenService> {
        Arc::clone(&self.service)
    }

    /// The reloadable TLS config, when TLS is on.
    pub fn tls(&self) -> Option<Arc<ReloadingTls>> {
        self.tls.clone()
    }

    /// Serves gRPC and HTTP and runs the background jobs (key job, health probe,
    /// housekeeping, TLS watcher) until `shutdown` completes, then stops accepting
    /// connections, finishes the requests in flight and stops the jobs.
    ///
    /// # Errors
    /// When a server fails.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), StartupError> {
        let config = self.config;
        let stop = CancellationToken::new();
        // The jobs stop on the same signal as the servers, even when a server fails.
        let _stop_jobs = stop.clone().drop_guard();

        let (reporter, health_server) = health::health_service();
        health::probe_once(&self.service, &reporter).await;
        let (reflection_v1, reflection_v1alpha) = health::reflection_services()?;
        let probe = tokio::spawn(health::run_probe(
            Arc::clone(&self.service),
            reporter,
            stop.clone(),
        ));
        let key_job = tokio::spawn(run_key_job(Arc::clone(&self.service), stop.clone()));
        let store = Arc::clone(&self.store);
        let housekeeping = tokio::spawn(housekeeping::run(
            Arc::clone(&self.service),
            housekeeping::Schedule {
                purge_interval: config.purge_interval,
                maintenance_interval: config.maintenance_interval,
                audit_retention: config.audit_retention,
            },
            stop.clone(),
        ));
        let tls_watchers: Vec<_> = [&self.tls, &self.http_tls]
            .into_iter()
            .flatten()
            .map(|tls| {
                tokio::spawn(Arc::clone(tls).watch(config.tls_reload_interval, stop.clone()))
            })
            .collect();

        let grpc_server = Server::builder()
            .layer(self.grpc_listener.track_streams())
            .timeout(config.request_timeout)
            .http2_keepalive_interval(Some(config.http2_keepalive_interval))
            .http2_keepalive_timeout(Some(config.http2_keepalive_timeout))
            .max_concurrent_streams(config.max_concurrent_streams)
            .max_connection_age(config.max_connection_age)
            // gRPC-Web (browsers, HTTP/1.1), translated to gRPC before the stack, with CORS
            // for the configured origins only.
            .accept_http1(true)
            .layer(tower::util::option_layer(crate::http::cors::layer(
                &config.cors_allowed_origins,
            )))
            .layer(tonic_web::GrpcWebLayer::new())
            // Every RPC through one stack: metrics, request context, logs, per-source limit.
            .layer(crate::grpc::request_stack(
                self.service.source_limiter(),
                config.trusted_proxies.clone(),
            ))
            .add_service(
                AuthApi::new(Arc::clone(&self.service))
                    .max_message_bytes(config.max_message_bytes)
                    .into_server(),
            )
            .add_service(self.admin.into_server(config.max_message_bytes))
            .add_service(self.account.into_server(config.max_message_bytes))
            .add_service(health_server)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha);
        match &self.tls {
            Some(_) => tracing::info!(grpc_addr = %self.grpc_addr, http_addr = %self.http_addr,
                mtls = config.tls_client_ca.is_some(), "authd serving (TLS on both ports)"),
            None => {
                if !self.grpc_addr.ip().is_loopback() {
                    tracing::warn!(grpc_addr = %self.grpc_addr,
                        "serving without TLS on a non-loopback address: passwords and tokens \
                         cross the network in the clear; set tls_cert and tls_key");
                }
                tracing::info!(grpc_addr = %self.grpc_addr, http_addr = %self.http_addr,
                    "authd serving");
            }
        }
        let grpc_listener = self.grpc_listener;
        let grpc_stop = stop.clone();
        let handshake_timeout = config.tls_handshake_timeout;
        let grpc = async move {
            match self.tls {
                Some(tls) => {
                    let incoming = crate::tls::incoming(
                        grpc_listener,
                        tls,
                        handshake_timeout,
                        grpc_stop.clone(),
                    );
                    grpc_server
                        .serve_with_incoming_shutdown(incoming, grpc_stop.cancelled_owned())
                        .await
                }
                None => {
                    let incoming = grpc_listener.incoming(grpc_stop.clone());
                    grpc_server
                        .serve_with_incoming_shutdown(incoming, grpc_stop.cancelled_owned())
                        .await
                }
            }
            .map_err(StartupError::from)
        };
        let http_listener = self.http_listener;
        let http_tls = self.http_tls;
        // The API routes' layer stack reads the peer from axum's connect info, which
        // `serve_http` adds to every request of a connection.
        let http_router = router(self.http_state);
        let http_stop = stop.clone();
        let header_read_timeout = config.header_read_timeout;
        let http = async move {
            match http_tls {
                Some(tls) => {
                    let incoming = crate::tls::incoming(
                        http_listener,
                        tls,
                        handshake_timeout,
                        http_stop.clone(),
                    );
                    serve_http(incoming, http_router, header_read_timeout, http_stop).await;
                }
                None => {
                    let incoming = http_listener.incoming(http_stop.clone());
                    serve_http(incoming, http_router, header_read_timeout, http_stop).await;
                }
            }
            Ok(())
        };
        let trigger = async {
            shutdown.await;
            stop.cancel();
        };
        // Either server failing stops the other one too.
        let stop_on_error = |r: Result<(), StartupError>| {
            if r.is_err() {
                stop.cancel();
            }
            r
        };
        let ((), grpc, http) = tokio::join!(
            async {
                tokio::select! {
                    () = trigger => {}
                    () = stop.cancelled() => {}
                }
            },
            async { stop_on_error(grpc.await) },
            async { stop_on_error(http.await) },
        );
        stop.cancel();
        let _ = probe.await;
        let _ = key_job.await;
        if let Err(e) = housekeeping.await {
            tracing::warn!(error = %e, "housekeeping ended abnormally");
        }
        for watcher in tls_watchers {
            let _ = watcher.await;
        }
        store.close().await;
        grpc?;
        http?;
        tracing::info!("authd stopped");
        Ok(())
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

/// `auth.v1.AdminService` and `auth.v1.AccountService`, over the same store, hasher, keys and
/// clock as the token service.
fn admin_apis(
    config: &Config,
    service: &Arc<TokenService>,
    store: &Arc<dyn Store>,
    hasher: Arc<PasswordHasher>,
    keys: Arc<KeyManager>,
    clock: Arc<dyn Clock>,
) -> Result<
    (
        crate::grpc::admin::AdminApi,
        crate::grpc::account::AccountApi,
    ),
    StartupError,
> {
    let access = crate::service::AdminAccess::new(
        Arc::clone(service),
        Arc::clone(store),
        config.admin_role()?,
        config.admin_client_subjects.clone(),
    );
    let deps = crate::grpc::admin::AdminDeps {
        store: Arc::clone(store),
        hasher,
        clock,
        password_policy: config.password_policy()?,
        keys,
        locked_at: config.throttle_max_failures,
    };
    let access = Arc::new(access);
    let account = crate::grpc::account::AccountApi::new(
        Arc::clone(&access),
        Arc::clone(service),
        deps.clone(),
    );
    Ok((crate::grpc::admin::AdminApi::new(access, deps), account))
}

/// Reloads keys every [`KEY_RELOAD_INTERVAL`] (so keys created by another replica or by
/// `authd keys rotate` are picked up) and rotates when the schedule says so.
async fn run_key_job(service: Arc<TokenService>, stop: CancellationToken) {
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(KEY_RELOAD_INTERVAL) => {}
        }
        if let Err(e) = service.key_manager().maintain().await {
            crate::metrics::database_error();
            tracing::warn!(error = %e, "key maintenance failed; keeping the loaded keys");
        }
    }
}

/// What answers requests, without the listeners and the background jobs: for driving the
/// handlers in-process from the fuzz targets (`fuzz/`), which feed them bytes no client
/// would send. Not a way to serve: use [`Application::run_until_stopped`].
#[doc(hidden)]
pub struct Handlers {
    pub service: Arc<TokenService>,
    pub admin: crate::grpc::admin::AdminApi,
    pub account: crate::grpc::account::AccountApi,
    /// The HTTP side port's router, as `run_until_stopped` serves it (without connect info).
    pub http: axum::Router,
    pub store: Arc<dyn Store>,
}

impl Application {
    /// Gives up the listeners and returns the handlers (see [`Handlers`]).
    #[doc(hidden)]
    pub fn into_handlers(self) -> Handlers {
        Handlers {
            service: self.service,
            admin: self.admin,
            account: self.account,
            http: router(self.http_state),
            store: self.store,
        }
    }
}
