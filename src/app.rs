//! Startup as a library: build everything (binding both ports first), then serve until a
//! shutdown future completes.
//!
//! One process serves gRPC (`grpc_addr`, over TLS when configured), the public HTTP port
//! (`http_addr`: the JSON and OAuth 2.0 API, JWKS, discovery, health) and, unless switched
//! off, the management listener (`management_addr`: metrics and health), and runs background
//! jobs: the key job (reload keys from the database every minute, rotate when due), the
//! health probe, housekeeping (ended sessions, throttle counters, audit events, per-source
//! buckets), plus the TLS watcher. One shutdown future stops all of them; in-flight requests finish first.
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

mod handlers;
mod serve_http;

#[doc(hidden)]
pub use handlers::Handlers;
use serve_http::serve_listener;

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
    #[error("the store's rotation writer stopped; exiting so the process is restarted")]
    WriterDied,
}

/// A built, bound, not yet serving authd.
pub struct Application {
    grpc_listener: Listener,
    grpc_addr: SocketAddr,
    http_listener: Listener,
    http_addr: SocketAddr,
    /// The management listener (metrics, health), unless `management_addr = off`.
    management: Option<(Listener, SocketAddr)>,
    service: Arc<TokenService>,
    /// Shared with the HTTP port's JSON routes.
    admin: Arc<crate::grpc::admin::AdminApi>,
    account: Arc<crate::grpc::account::AccountApi>,
    /// The one shutdown signal (also ends `FollowAudit` streams, which hold their handler).
    stop: CancellationToken,
    /// The admin web console, unless `console_enabled` is off.
    console: Option<crate::console::ConsoleState>,
    http_state: HttpState,
    store: Arc<dyn Store>,
    /// TLS for the gRPC port (ALPN h2, and http/1.1 for gRPC-Web), when configured.
    tls: Option<Arc<ReloadingTls>>,
    /// TLS for the HTTP side port and the management listener (ALPN http/1.1): the same
    /// files, loaded separately.
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
    // The management listener's few connections come out of the reserve too.
    let management = config
        .management_addr
        .map_or(0, |_| crate::http::management::MAX_CONNECTIONS as u64);
    let reserved = capacity::reserved_descriptors(config.database_max_connections) + management;
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
        let service = Arc::new(
            TokenService::new(
                Arc::clone(&store),
                Arc::clone(&hasher),
                Arc::clone(&keys),
                Arc::clone(&clock),
                config.token_settings(),
            )
            .with_identity_sources(
                crate::service::IdentitySources::new(&config.identity_sources, &config.ldap)
                    .map_err(ConfigError::Invalid)?,
            ),
        );
        let stop = CancellationToken::new();
        let (admin, account, console) = admin_apis(
            &config,
            &service,
            &store,
            (hasher, keys, clock),
            stop.clone(),
        )?;
        let (admin, account) = (Arc::new(admin), Arc::new(account));
        let tls = config
            .tls()
            // HTTP/1.1 too: gRPC-Web clients (browsers) speak it.
            .map(|files| {
                ReloadingTls::load(files, vec![b"h2".to_vec(), b"http/1.1".to_vec()]).map(Arc::new)
            })
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
        let management_limits = ConnectionLimits {
            max_connections: crate::http::management::MAX_CONNECTIONS,
            max_per_source: crate::http::management::MAX_CONNECTIONS,
            ..http_limits.clone()
        };
        let (http_listener, http_addr) = bind(config.http_addr, "http", http_limits).await?;
        let management = match config.management_addr {
            Some(addr) => Some(bind(addr, "management", management_limits).await?),
            None => None,
        };
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
        })
        .admin_api(crate::http::admin_json::AdminJsonApi::new(
            Arc::clone(&admin),
            Arc::clone(&account),
            config.max_message_bytes,
        ));
        Ok(Self {
            grpc_listener,
            grpc_addr,
            http_listener,
            http_addr,
            management,
            service,
            admin,
            account,
            stop,
            console,
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

    /// The address the management listener is bound to; `None` when it is off.
    pub fn management_addr(&self) -> Option<SocketAddr> {
        self.management.as_ref().map(|(_, addr)| *addr)
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
    /// When a server fails, or [`StartupError::WriterDied`] when the store's rotation writer
    /// died (the health probe found it and stopped the server): exit and be restarted.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), StartupError> {
        let config = self.config;
        let stop = self.stop.clone();
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
                audit_retention: config.audit_retention_policy(),
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
        let management_addr = self
            .management
            .as_ref()
            .map_or_else(|| "off".to_owned(), |(_, addr)| addr.to_string());
        match &self.tls {
            Some(_) => tracing::info!(grpc_addr = %self.grpc_addr, http_addr = %self.http_addr,
                %management_addr, mtls = config.tls_client_ca.is_some(),
                "authd serving (TLS on every listener)"),
            None => {
                if !self.grpc_addr.ip().is_loopback() {
                    tracing::warn!(grpc_addr = %self.grpc_addr,
                        "serving without TLS on a non-loopback address: passwords and tokens \
                         cross the network in the clear; set tls_cert and tls_key");
                }
                tracing::info!(grpc_addr = %self.grpc_addr, http_addr = %self.http_addr,
                    %management_addr, "authd serving");
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
        let http_tls = self.http_tls;
        // The API routes' layer stack reads the peer from axum's connect info, which
        // `serve_http` adds to every request of a connection.
        let http_router = router(self.http_state.clone());
        let http_router = match self.console {
            Some(console) => http_router.merge(crate::console::router(
                console,
                config.trusted_proxies.clone(),
            )),
            None => http_router,
        };
        let http = serve_listener(
            self.http_listener,
            http_tls.clone(),
            http_router,
            config.header_read_timeout,
            handshake_timeout,
            stop.clone(),
        );
        let management = self.management.map(|(listener, _)| {
            serve_listener(
                listener,
                http_tls,
                crate::http::management::router(self.http_state),
                config.header_read_timeout,
                handshake_timeout,
                stop.clone(),
            )
        });
        let management = async move {
            if let Some(serving) = management {
                serving.await;
            }
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
        let ((), grpc, (), ()) = tokio::join!(
            async {
                tokio::select! {
                    () = trigger => {}
                    () = stop.cancelled() => {}
                }
            },
            async { stop_on_error(grpc.await) },
            http,
            management,
        );
        stop.cancel();
        let probe_end = probe.await;
        let _ = key_job.await;
        if let Err(e) = housekeeping.await {
            tracing::warn!(error = %e, "housekeeping ended abnormally");
        }
        for watcher in tls_watchers {
            let _ = watcher.await;
        }
        store.close().await;
        grpc?;
        if matches!(probe_end, Ok(health::ProbeEnd::WriterDied)) {
            return Err(StartupError::WriterDied);
        }
        tracing::info!("authd stopped");
        Ok(())
    }
}

/// `auth.v1.AdminService` and `auth.v1.AccountService`, over the same store, hasher, keys and
/// clock as the token service, and the web console over the same again (when enabled).
fn admin_apis(
    config: &Config,
    service: &Arc<TokenService>,
    store: &Arc<dyn Store>,
    (hasher, keys, clock): (Arc<PasswordHasher>, Arc<KeyManager>, Arc<dyn Clock>),
    stop: CancellationToken,
) -> Result<
    (
        crate::grpc::admin::AdminApi,
        crate::grpc::account::AccountApi,
        Option<crate::console::ConsoleState>,
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
        stop,
    };
    let access = Arc::new(access);
    let account = crate::grpc::account::AccountApi::new(
        Arc::clone(&access),
        Arc::clone(service),
        deps.clone(),
    );
    // Cookies are `Secure` except where the browser reaches the console over plain HTTP on
    // loopback (a browser would not send them back there otherwise).
    let secure_cookies = config.tls().is_some() || !config.http_addr.ip().is_loopback();
    let console = config.console_enabled.then(|| {
        crate::console::ConsoleState::new(
            Arc::clone(service),
            Arc::clone(&access),
            deps.clone(),
            secure_cookies,
        )
    });
    Ok((
        crate::grpc::admin::AdminApi::new(access, deps),
        account,
        console,
    ))
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
