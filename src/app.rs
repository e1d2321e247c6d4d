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

use tokio::net::TcpListener;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;

use crate::config::Config;
use crate::crypto::password::{HashError, PasswordHasher};
use crate::domain::{Clock, SystemClock};
use crate::grpc::AuthApi;
use crate::service::{TokenService, load_or_create_keys};
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
        let store: Arc<dyn Store> = store::open(&config.database_url).await?;
        let keys = load_or_create_keys(store.as_ref(), config.signing_algorithm, clock.now())
            .await
            .map_err(|e| StartupError::Keys(e.to_string()))?;
        let hasher = Arc::new(PasswordHasher::new(config.argon2(), config.hash_permits())?);
        let service = Arc::new(TokenService::new(
            store,
            hasher,
            keys,
            clock,
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

    /// Serves until `shutdown` completes, then stops accepting connections and finishes the
    /// requests in flight.
    ///
    /// # Errors
    /// When the server fails.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), StartupError> {
        tracing::info!(grpc_addr = %self.grpc_addr, "authd serving");
        let incoming = TcpIncoming::from(self.listener).with_nodelay(Some(true));
        // TEMPORARY (issue 6): a minimal grpc.health.v1.Health so `authd bench noop` has a
        // transport ceiling to measure; issue 3 adds the real health service, which replaces this.
        let (health_reporter, health_service) = tonic_health::server::health_reporter();
        health_reporter
            .set_serving::<crate::grpc::AuthServiceServer<AuthApi>>()
            .await;
        Server::builder()
            .add_service(health_service)
            .add_service(AuthApi::new(self.service).into_server())
            .serve_with_incoming_shutdown(incoming, shutdown)
            .await?;
        tracing::info!("authd stopped");
        Ok(())
    }
}
