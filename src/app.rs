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

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;

use crate::config::{Config, ConfigError, KEY_RELOAD_INTERVAL};
use crate::crypto::key_encryption::KeyEncryption;
use crate::crypto::password::{HashError, PasswordHasher};
use crate::domain::{Clock, SystemClock};
use crate::grpc::AuthApi;
use crate::grpc::health;
use crate::http::{HttpState, router};
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
    #[error("HTTP server failed: {0}")]
    Http(std::io::Error),
    #[error("gRPC reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
}

/// A built, bound, not yet serving authd.
pub struct Application {
    grpc_listener: TcpListener,
    grpc_addr: SocketAddr,
    http_listener: TcpListener,
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

async fn bind(addr: SocketAddr) -> Result<(TcpListener, SocketAddr), StartupError> {
    let bind_error = |source| StartupError::Bind { addr, source };
    let listener = TcpListener::bind(addr).await.map_err(bind_error)?;
    let bound = listener.local_addr().map_err(bind_error)?;
    Ok((listener, bound))
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
        let (grpc_listener, grpc_addr) = bind(config.grpc_addr).await?;
        let (http_listener, http_addr) = bind(config.http_addr).await?;
        let http_state = HttpState::new(
            Arc::clone(&service),
            metrics,
            config.jwks_max_age,
            config.jwks_uri(),
        );
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
            .timeout(config.request_timeout)
            .http2_keepalive_interval(Some(config.http2_keepalive_interval))
            .http2_keepalive_timeout(Some(config.http2_keepalive_timeout))
            .max_concurrent_streams(config.max_concurrent_streams)
            .max_connection_age(config.max_connection_age)
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
        let grpc = async move {
            match self.tls {
                Some(tls) => {
                    let incoming = crate::tls::incoming(grpc_listener, tls, grpc_stop.clone());
                    grpc_server
                        .serve_with_incoming_shutdown(incoming, grpc_stop.cancelled_owned())
                        .await
                }
                None => {
                    let incoming = TcpIncoming::from(grpc_listener).with_nodelay(Some(true));
                    grpc_server
                        .serve_with_incoming_shutdown(incoming, grpc_stop.cancelled_owned())
                        .await
                }
            }
            .map_err(StartupError::from)
        };
        let http_listener = self.http_listener;
        let http_tls = self.http_tls;
        let http_router = router(self.http_state);
        let http_stop = stop.clone();
        let http = async move {
            match http_tls {
                Some(tls) => {
                    let listener =
                        crate::tls::TlsListener::new(http_listener, tls, http_stop.clone())
                            .map_err(StartupError::Http)?;
                    axum::serve(listener, http_router)
                        .with_graceful_shutdown(http_stop.cancelled_owned())
                        .await
                }
                None => {
                    axum::serve(http_listener, http_router)
                        .with_graceful_shutdown(http_stop.cancelled_owned())
                        .await
                }
            }
            .map_err(StartupError::Http)
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
