//! Spawning the real server on port 0 with a fresh SQLite file, and a gRPC client for it.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use authd::app::Application;
use authd::config::Config;
use authd::crypto::access_token::Claims;
use authd::crypto::password::PasswordHasher;
use authd::domain::SystemClock;
use authd::grpc::AuthServiceClient;
use authd::grpc::pb::{
    ApiKeyCredential, IntrospectRequest, IntrospectResponse, LogoutRequest, PasswordCredential,
    RefreshTokenRequest, TokenRequest, TokenResponse,
};
use authd::service::{ApiKeyAdmin, SessionAdmin, TokenService, UserAdmin};
use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::{Channel, Endpoint};

pub const PASSWORD: &str = "correct horse battery staple";

/// A running authd on its own database.
pub struct TestApp {
    pub config: Config,
    /// The bound gRPC address.
    pub addr: std::net::SocketAddr,
    pub tls: Option<Arc<authd::tls::ReloadingTls>>,
    pub client: AuthServiceClient<Channel>,
    pub service: Arc<TokenService>,
    /// Base URL of the HTTP side port, e.g. `http://127.0.0.1:41234`.
    pub http: String,
    pub grpc_addr: std::net::SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<()>>,
    /// `authorization` of a caller allowed to introspect, made on first use.
    introspector: tokio::sync::OnceCell<String>,
    // Last, so the directory outlives the server using it.
    pub dir: Arc<TempDir>,
}

/// Cheap hashing parameters so tests spend their time on behaviour, not on argon2.
pub fn test_config(dir: &TempDir) -> Config {
    Config {
        database_url: format!("sqlite://{}", dir.path().join("authd.db").display()),
        grpc_addr: "127.0.0.1:0".parse().unwrap(),
        http_addr: "127.0.0.1:0".parse().unwrap(),
        argon2_memory_kib: 256,
        argon2_iterations: 1,
        argon2_parallelism: 1,
        // Tests fire many requests from one address; the per-source limit has its own test.
        per_source_rate: 0,
        ..Config::default()
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub async fn spawn_app_with(tweak: impl FnOnce(&mut Config)) -> TestApp {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let mut config = test_config(&dir);
    tweak(&mut config);
    spawn_on(dir, config).await
}

/// Starts a server on an existing directory and configuration (e.g. after a restart).
pub async fn spawn_on(dir: Arc<TempDir>, config: Config) -> TestApp {
    spawn_on_with_clock(dir, config, Arc::new(SystemClock)).await
}

/// Starts a server whose notion of "now" comes from `clock`.
pub async fn spawn_on_with_clock(
    dir: Arc<TempDir>,
    config: Config,
    clock: Arc<dyn authd::domain::Clock>,
) -> TestApp {
    let app = Application::build_with_clock(config.clone(), clock)
        .await
        .expect("server builds");
    let addr = app.grpc_addr();
    let http = format!("http://{}", app.http_addr());
    let service = app.service();
    let tls = app.tls();
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        app.run_until_stopped(async {
            let _ = stopped.await;
        })
        .await
        .expect("server runs");
    });
    // Lazy, so a TLS server (which a plaintext client cannot talk to) starts just the same.
    let client = AuthServiceClient::new(
        Endpoint::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect_lazy(),
    );
    TestApp {
        config,
        addr,
        tls,
        client,
        service,
        http,
        grpc_addr: addr,
        stop: Some(stop),
        server: Some(server),
        introspector: tokio::sync::OnceCell::new(),
        dir,
    }
}

impl TestApp {
    pub fn db_path(&self) -> PathBuf {
        self.dir.path().join("authd.db")
    }

    /// The CLI's user administration on this server's database.
    pub async fn admin(&self) -> UserAdmin {
        let store = authd::store::open(&self.config.database_url).await.unwrap();
        let hasher = PasswordHasher::new(self.config.argon2(), 1).unwrap();
        UserAdmin::new(
            store,
            Arc::new(hasher),
            Arc::new(SystemClock),
            self.config.password_policy().unwrap(),
        )
    }

    /// The CLI's API-key administration on this server's database.
    pub async fn api_keys(&self) -> ApiKeyAdmin {
        let store = authd::store::open(&self.config.database_url).await.unwrap();
        ApiKeyAdmin::new(store, Arc::new(SystemClock))
    }

    /// The CLI's session administration on this server's database.
    pub async fn sessions(&self) -> SessionAdmin {
        let store = authd::store::open(&self.config.database_url).await.unwrap();
        SessionAdmin::new(store, Arc::new(SystemClock))
    }

    /// Creates an API key and returns `(id, key)`.
    pub async fn create_api_key(
        &self,
        username: &str,
        roles: &[&str],
        expires_in: Option<Duration>,
    ) -> (String, String) {
        let roles: Vec<String> = roles.iter().map(|r| (*r).to_owned()).collect();
        let created = self
            .api_keys()
            .await
            .create(username, "test key", &roles, expires_in)
            .await
            .unwrap();
        (created.key.id.to_string(), created.secret.expose())
    }

    pub async fn api_key_login(&self, api_key: &str) -> Result<TokenResponse, tonic::Status> {
        let request = TokenRequest {
            credential: Some(
                authd::grpc::pb::token_request::Credential::ApiKeyCredential(ApiKeyCredential {
                    api_key: api_key.into(),
                }),
            ),
        };
        self.client
            .clone()
            .token(request)
            .await
            .map(tonic::Response::into_inner)
    }

    pub async fn logout(
        &self,
        refresh_token: &str,
        access_token: &str,
    ) -> Result<(), tonic::Status> {
        let request = LogoutRequest {
            refresh_token: refresh_token.into(),
            access_token: access_token.into(),
        };
        self.client.clone().logout(request).await.map(|_| ())
    }

    /// Introspect as a caller allowed to (Introspect requires a credential by default).
    pub async fn introspect(&self, token: &str) -> Result<IntrospectResponse, tonic::Status> {
        let authorization = self.introspector_authorization().await;
        self.introspect_as(token, Some(authorization)).await
    }

    /// `authorization: Bearer <API key>` of a user holding the default `introspect_role`
    /// (`introspector`), created on first use.
    pub async fn introspector_authorization(&self) -> &str {
        self.introspector
            .get_or_init(|| async {
                self.add_user("introspection-client", &["introspector"])
                    .await;
                let (_, key) = self
                    .create_api_key("introspection-client", &["introspector"], None)
                    .await;
                format!("Bearer {key}")
            })
            .await
    }

    /// Introspect with `authorization: <authorization>` when given.
    pub async fn introspect_as(
        &self,
        token: &str,
        authorization: Option<&str>,
    ) -> Result<IntrospectResponse, tonic::Status> {
        let mut request = tonic::Request::new(IntrospectRequest {
            token: token.into(),
            token_type_hint: String::new(),
        });
        if let Some(value) = authorization {
            request
                .metadata_mut()
                .insert("authorization", value.parse().unwrap());
        }
        self.client
            .clone()
            .introspect(request)
            .await
            .map(tonic::Response::into_inner)
    }

    /// Whether Introspect reports `token` active; an inactive answer must carry nothing else.
    pub async fn is_active(&self, token: &str) -> bool {
        let answer = self.introspect(token).await.unwrap();
        if !answer.active {
            assert_eq!(
                answer,
                IntrospectResponse::default(),
                "inactive says nothing more"
            );
        }
        answer.active
    }

    /// Runs the built `authd` binary on this server's database; returns (exit ok, stdout,
    /// stderr). It blocks the calling thread: use it from a multi-threaded test runtime, so the
    /// server keeps answering meanwhile.
    pub fn cli(&self, args: &[&str]) -> (bool, String, String) {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_authd"))
            .args(args)
            .current_dir(self.dir.path())
            .env_clear()
            .env("AUTHD_DATABASE_URL", &self.config.database_url)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    }

    pub async fn add_user(&self, username: &str, roles: &[&str]) {
        let roles: Vec<String> = roles.iter().map(|r| (*r).to_owned()).collect();
        self.admin()
            .await
            .add(username, PASSWORD, &roles)
            .await
            .unwrap();
    }

    pub async fn login(
        &self,
        username: &str,
        password: &str,
    ) -> Result<TokenResponse, tonic::Status> {
        let request = TokenRequest {
            credential: Some(
                authd::grpc::pb::token_request::Credential::PasswordCredential(
                    PasswordCredential {
                        username: username.into(),
                        password: password.into(),
                    },
                ),
            ),
        };
        self.client
            .clone()
            .token(request)
            .await
            .map(tonic::Response::into_inner)
    }

    /// GET on the HTTP side port: status, headers and body.
    pub async fn get(&self, path: &str) -> (u16, reqwest::header::HeaderMap, String) {
        let response = reqwest::get(format!("{}{path}", self.http)).await.unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        (status, headers, response.text().await.unwrap())
    }

    pub async fn get_json(&self, path: &str) -> serde_json::Value {
        let (status, _, body) = self.get(path).await;
        assert_eq!(status, 200, "{path}: {body}");
        serde_json::from_str(&body).unwrap()
    }

    pub async fn refresh(&self, token: &str) -> Result<TokenResponse, tonic::Status> {
        let request = RefreshTokenRequest {
            refresh_token: token.into(),
        };
        self.client
            .clone()
            .refresh_token(request)
            .await
            .map(tonic::Response::into_inner)
    }

    /// Verifies an access token's signature with the server's own key ring and returns its
    /// header and claims.
    pub fn verify(&self, token: &str) -> (jsonwebtoken::Header, Claims) {
        let header = jsonwebtoken::decode_header(token).unwrap();
        let kid = header.kid.clone().expect("kid");
        let keys = self.service.keys();
        let key = keys.find(&kid).expect("kid is one of ours");
        let mut validation = jsonwebtoken::Validation::new(key.algorithm.jwt_algorithm());
        validation.set_audience(&self.config.audience);
        validation.set_issuer(&[&self.config.issuer]);
        validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub", "jti"]);
        let data =
            jsonwebtoken::decode::<Claims>(token, &key.public.decoding_key().unwrap(), &validation)
                .expect("valid signature and claims");
        (header, data.claims)
    }

    /// Stops the server gracefully and waits for it.
    pub async fn stop(mut self) -> (Arc<TempDir>, Config) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            tokio::time::timeout(Duration::from_secs(10), server)
                .await
                .unwrap()
                .unwrap();
        }
        (Arc::clone(&self.dir), self.config.clone())
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

pub fn assert_unauthenticated(result: Result<TokenResponse, tonic::Status>, message: &str) {
    let status = result.expect_err("must be refused");
    assert_eq!(status.code(), tonic::Code::Unauthenticated, "{status:?}");
    assert_eq!(status.message(), message);
}
