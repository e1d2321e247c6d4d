//! Startup as a library: build everything (binding the port first), then serve until a
//! shutdown future completes.
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
use std::time::Duration;

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
    purge_interval: Duration,
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
    /// hashing pool and binds the gRPC port (port 0 picks a free one).
    ///
    /// # Errors
    /// When the database cannot be opened, the port cannot be bound or keys cannot be loaded.
    pub async fn build_with_clock(
        config: Config,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, StartupError> {
        let store: Arc<dyn Store> =
            store::open_with(&config.database_url, &config.store_options()).await?;
        let keys = load_or_create_keys(store.as_ref(), config.signing_algorithm, clock.now())
            .await
            .map_err(|e| StartupError::Keys(e.to_string()))?;
        let hasher = Arc::new(PasswordHasher::new(config.argon2(), config.hash_permits())?);
        let service = Arc::new(TokenService::new(
            Arc::clone(&store),
            hasher,
            keys,
            Arc::clone(&clock),
            config.token_settings(),
        ));
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
            purge_interval: config.purge_interval,
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

    /// Serves, and runs the background jobs (the purge job), until `shutdown` completes; then
    /// stops accepting connections, finishes the requests in flight and stops the jobs.
    ///
    /// # Errors
    /// When the server fails.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), StartupError> {
        tracing::info!(grpc_addr = %self.grpc_addr, "authd serving");
        let stop = CancellationToken::new();
        let purge = tokio::spawn(run_purge_job(
            self.store,
            self.clock,
            self.purge_interval,
            stop.child_token(),
        ));
        // The jobs stop on the same signal as the server, even when the server fails.
        let _stop_jobs = stop.clone().drop_guard();
        let incoming = TcpIncoming::from(self.listener).with_nodelay(Some(true));
        let served = Server::builder()
            .add_service(AuthApi::new(self.service).into_server())
            .serve_with_incoming_shutdown(incoming, async {
                shutdown.await;
                stop.cancel();
            })
            .await;
        stop.cancel();
        if let Err(e) = purge.await {
            tracing::warn!(error = %e, "purge job ended abnormally");
        }
        served?;
        tracing::info!("authd stopped");
        Ok(())
    }
}
