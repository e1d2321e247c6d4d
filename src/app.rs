//! Startup as a library: build everything (binding the port first), then serve until a
//! shutdown future completes.
//!
//! One shutdown for everything: when the future completes, the gRPC server stops accepting
//! and drains, and the background tasks (housekeeping, TLS reload) stop with it.
//!
//! ```no_run
//! # async fn run() -> Result<(), authd::app::StartupError> {
//! let config = authd::config::Config::default();
//! let app = authd::app::Application::build(config).await?;
//! println!("listening on {}", app.grpc_addr());
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

use crate::config::Config;
use crate::crypto::password::{HashError, PasswordHasher};
use crate::domain::{Clock, SystemClock};
use crate::grpc::AuthApi;
use crate::service::{TokenService, load_or_create_keys, run_purge_job};
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
    #[error("password hashing: {0}")]
    Hash(#[from] HashError),
    #[error("TLS: {0}")]
    Tls(#[from] TlsError),
    #[error("gRPC server failed: {0}")]
    Serve(#[from] tonic::transport::Error),
}

/// A built, bound, not yet serving authd.
pub struct Application {
    listener: TcpListener,
    grpc_addr: SocketAddr,
    service: Arc<TokenService>,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    tls: Option<Arc<ReloadingTls>>,
    config: Config,
}

impl Application {
    /// Builds with the system clock.
    ///
    /// # Errors
    /// See [`Application::build_with_clock`].
    pub async fn build(config: Config) -> Result<Self, StartupError> {
        Self::build_with_clock(config, Arc::new(SystemClock)).await
    }

    /// Opens and migrates the database, loads (or creates) the signing key, prepares the
    /// hashing pool, loads the TLS files and binds the gRPC port (port 0 picks a free one).
    ///
    /// # Errors
    /// When the database cannot be opened, the port cannot be bound, keys cannot be loaded
    /// or the TLS files are unusable.
    pub async fn build_with_clock(
        config: Config,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, StartupError> {
        let store: Arc<dyn Store> =
            store::open_with(&config.database_url, &config.store_options()).await?;
        let keys = load_or_create_keys(store.as_ref(), config.signing_algorithm, clock.now())
            .await
            .map_err(|e| StartupError::Keys(e.to_string()))?;
        let hasher = Arc::new(PasswordHasher::with_queue(
            config.argon2(),
            config.hash_permits(),
            config.hash_queue(),
        )?);
        let service = Arc::new(TokenService::new(
            Arc::clone(&store),
            hasher,
            keys,
            Arc::clone(&clock),
            config.token_settings(),
        ));
        let tls = config
            .tls()
            .map(|files| ReloadingTls::load(files, vec![b"h2".to_vec()]).map(Arc::new))
            .transpose()?;
        let listener = TcpListener::bind(config.grpc_addr)
            .await
            .map_err(|source| StartupError::Bind {
                addr: config.grpc_addr,
                source,
            })?;
        let grpc_addr = listener.local_addr().map_err(|source| StartupError::Bind {
            addr: config.grpc_addr,
            source,
        })?;
        Ok(Self {
            listener,
            grpc_addr,
            service,
            store,
            clock,
            tls,
            config,
        })
    }

    /// The address the gRPC server is bound to.
    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc_addr
    }

    /// The token service, e.g. for tests that inspect keys.
    pub fn service(&self) -> Arc<TokenService> {
        Arc::clone(&self.service)
    }

    /// The reloadable TLS config, when TLS is on.
    pub fn tls(&self) -> Option<Arc<ReloadingTls>> {
        self.tls.clone()
    }

    /// Serves, and runs the background jobs (purge, housekeeping), until `shutdown` completes;
    /// then stops accepting connections, finishes the requests in flight and stops the jobs.
    ///
    /// # Errors
    /// When the server fails.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), StartupError> {
        let config = self.config;
        let stop = CancellationToken::new();
        let stopper = stop.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = shutdown => stopper.cancel(),
                () = stopper.cancelled() => {},
            }
        });
        // The jobs stop on the same signal as the server, even when the server fails.
        let _stop_jobs = stop.clone().drop_guard();
        let purge = tokio::spawn(run_purge_job(
            self.store,
            self.clock,
            config.purge_interval,
            stop.child_token(),
        ));
        let housekeeping = tokio::spawn(housekeeping(
            Arc::clone(&self.service),
            config.clone(),
            stop.clone(),
        ));
        let server = Server::builder()
            .timeout(config.request_timeout)
            .http2_keepalive_interval(Some(config.http2_keepalive_interval))
            .http2_keepalive_timeout(Some(config.http2_keepalive_timeout))
            .max_concurrent_streams(config.max_concurrent_streams)
            .max_connection_age(config.max_connection_age)
            .add_service(
                AuthApi::new(self.service)
                    .trusting_proxies(config.trusted_proxies.clone())
                    .max_message_bytes(config.max_message_bytes)
                    .into_server(),
            );
        let served = match self.tls {
            Some(tls) => {
                tracing::info!(grpc_addr = %self.grpc_addr,
                    mtls = config.tls_client_ca.is_some(), "authd serving (TLS)");
                let watcher =
                    tokio::spawn(Arc::clone(&tls).watch(config.tls_reload_interval, stop.clone()));
                let incoming = crate::tls::incoming(self.listener, tls, stop.clone());
                let served = server
                    .serve_with_incoming_shutdown(incoming, stop.clone().cancelled_owned())
                    .await;
                stop.cancel();
                let _ = watcher.await;
                served
            }
            None => {
                if !self.grpc_addr.ip().is_loopback() {
                    tracing::warn!(grpc_addr = %self.grpc_addr,
                        "serving without TLS on a non-loopback address: passwords and tokens \
                         cross the network in the clear; set tls_cert and tls_key");
                }
                tracing::info!(grpc_addr = %self.grpc_addr, "authd serving");
                let incoming = TcpIncoming::from(self.listener).with_nodelay(Some(true));
                server
                    .serve_with_incoming_shutdown(incoming, stop.clone().cancelled_owned())
                    .await
            }
        };
        stop.cancel();
        let _ = housekeeping.await;
        if let Err(e) = purge.await {
            tracing::warn!(error = %e, "purge job ended abnormally");
        }
        served?;
        tracing::info!("authd stopped");
        Ok(())
    }
}

/// Every `maintenance_interval`: forget idle per-source buckets, purge forgotten throttle
/// counters and expired audit events (in bounded batches). Stops with the server.
async fn housekeeping(service: Arc<TokenService>, config: Config, stop: CancellationToken) {
    let mut tick = tokio::time::interval(config.maintenance_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {},
        }
        service.limiter().retain_recent();
        match service.purge_expired(config.audit_retention).await {
            Ok(p) if p.login_counters + p.audit_events > 0 => tracing::info!(
                login_counters = p.login_counters,
                audit_events = p.audit_events,
                "purged expired records"
            ),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "housekeeping failed; will retry"),
        }
    }
}
