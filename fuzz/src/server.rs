//! One authd per fuzzing process, in-process: the real `Application` over a temporary SQLite
//! file, its gRPC services (behind the same request layer stack as the server) and its HTTP
//! router, driven without sockets; plus the property every request target checks: a request
//! refused as malformed commits nothing to the database.
//!
//! Two users exist, `fuzz` (role `user`) and `fuzzadmin` (roles `admin`, `introspector`),
//! with [`PASSWORD`],
//! so seeds can reach the paths behind a successful login; their bearer tokens are attached
//! when an input asks. Inputs may delete, disable, lock or re-password them: [`Server::heal`]
//! puts them back when a request with their bearer token is refused.

use std::sync::Arc;

use authd::app::Application;
use authd::config::Config;
use authd::crypto::password::PasswordHasher;
use authd::domain::SystemClock;
use authd::service::{RequestContext, TokenService, UserAdmin};
use http_body_util::BodyExt as _;
use tower::ServiceExt as _;

pub const PASSWORD: &str = "correct horse battery staple";
pub const USER: &str = "fuzz";
pub const ADMIN: &str = "fuzzadmin";
/// Replaced, in a request body, by a live refresh token of `fuzz` (the same length, 54
/// characters, so protobuf framing stays valid), so inputs can reach rotation and reuse.
pub const REFRESH_PLACEHOLDER: &[u8] = b"REFRESH_TOKEN_PLACEHOLDER_____________________________";
/// Replaced, in an HTTP body, by `fuzz`'s access token.
pub const ACCESS_PLACEHOLDER: &[u8] = b"ACCESS_TOKEN_PLACEHOLDER";

/// Which bearer token a request carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bearer {
    None,
    User,
    Admin,
    Garbage,
}

impl Bearer {
    pub fn from_byte(b: u8) -> Self {
        match b % 4 {
            0 => Self::None,
            1 => Self::User,
            2 => Self::Admin,
            _ => Self::Garbage,
        }
    }
}

type GrpcService = tower::util::BoxCloneService<
    http::Request<tonic::body::Body>,
    http::Response<tonic::body::Body>,
    std::convert::Infallible,
>;

pub struct Server {
    pub runtime: tokio::runtime::Runtime,
    grpc: GrpcService,
    http: axum::Router,
    service: Arc<TokenService>,
    users: UserAdmin,
    /// A separate connection to the database file, to see whether anything was committed.
    observer: rusqlite::Connection,
    user_access: String,
    admin_access: String,
    refresh: String,
    _dir: tempfile::TempDir,
}

/// What a request got back.
#[derive(Debug)]
pub struct Answer {
    /// The gRPC status code (0 for OK), or for HTTP the status.
    pub code: u16,
    pub message: String,
    /// Whether the database saw a commit while the request ran.
    pub committed: bool,
}

impl Server {
    pub fn start() -> Self {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let dir = tempfile::tempdir().expect("temp dir");
        let db = dir.path().join("authd.db");
        let config = Config {
            database_url: format!("sqlite://{}", db.display()),
            grpc_addr: "127.0.0.1:0".parse().expect("address"),
            http_addr: "127.0.0.1:0".parse().expect("address"),
            // Cheap hashing: the fuzzer spends its time on parsing and rules, not argon2.
            argon2_memory_kib: 256,
            argon2_iterations: 1,
            argon2_parallelism: 1,
            per_source_rate: 0,
            oauth2_password_grant: true,
            ..Config::default()
        };
        let (handlers, users) = runtime.block_on(async {
            let app = Application::build(config.clone())
                .await
                .expect("authd builds");
            let handlers = app.into_handlers();
            let hasher = PasswordHasher::new(config.argon2(), 1).expect("hasher");
            let users = UserAdmin::new(
                Arc::clone(&handlers.store),
                Arc::new(hasher),
                Arc::new(SystemClock),
                config.password_policy().expect("policy"),
            );
            (handlers, users)
        });
        let max = config.max_message_bytes;
        let routes = tonic::service::Routes::new(
            authd::grpc::AuthApi::new(Arc::clone(&handlers.service))
                .max_message_bytes(max)
                .into_server(),
        )
        .add_service(handlers.admin.into_server(max))
        .add_service(handlers.account.into_server(max));
        let stack = authd::grpc::request_stack(
            handlers.service.source_limiter(),
            config.trusted_proxies.clone(),
        );
        let grpc = GrpcService::new(tower::Layer::layer(&stack, routes));
        let observer =
            rusqlite::Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
                .expect("observer connection");
        let mut server = Self {
            runtime,
            grpc,
            http: handlers.http,
            service: handlers.service,
            users,
            observer,
            user_access: String::new(),
            admin_access: String::new(),
            refresh: String::new(),
            _dir: dir,
        };
        server.heal();
        server
    }

    /// Puts `fuzz` and `fuzzadmin` back as they started (existing, enabled, unlocked, with
    /// their password and role) and logs them in again.
    pub fn heal(&mut self) {
        let (users, service) = (&self.users, &self.service);
        let (user, admin) = self.runtime.block_on(async {
            for (name, roles) in [(USER, &["user"][..]), (ADMIN, &["admin", "introspector"])] {
                let roles: Vec<String> = roles.iter().map(|r| (*r).to_owned()).collect();
                let _ = users.add(name, PASSWORD, &roles).await;
                let _ = users.set_enabled(name, true).await;
                let _ = users.set_password(name, PASSWORD).await;
                let _ = users.change_roles(name, &roles, &[]).await;
                let _ = users.unlock(name).await;
            }
            let ctx = RequestContext::new(None, None);
            let user = service
                .login(USER, PASSWORD, &ctx)
                .await
                .expect("fuzz logs in");
            let admin = service
                .login(ADMIN, PASSWORD, &ctx)
                .await
                .expect("admin logs in");
            (user, admin)
        });
        self.user_access = user.access_token;
        self.admin_access = admin.access_token;
        self.refresh = user.refresh_token.expose();
    }

    fn data_version(&self) -> i64 {
        self.observer
            .query_row("PRAGMA data_version", [], |row| row.get(0))
            .expect("data_version")
    }

    fn authorization(&self, bearer: Bearer) -> Option<String> {
        match bearer {
            Bearer::None => None,
            Bearer::User => Some(format!("Bearer {}", self.user_access)),
            Bearer::Admin => Some(format!("Bearer {}", self.admin_access)),
            Bearer::Garbage => Some("Bearer eyJhbGciOiJub25lIn0.e30.".to_owned()),
        }
    }

    /// Replaces the placeholders in `body` (the refresh token only when `same_length`).
    fn substitute(&self, body: &[u8], same_length: bool) -> (Vec<u8>, bool) {
        let mut out = replace(body, REFRESH_PLACEHOLDER, self.refresh.as_bytes());
        let used = out != body;
        if !same_length {
            out = replace(&out, ACCESS_PLACEHOLDER, self.user_access.as_bytes());
        }
        (out, used)
    }

    /// One unary gRPC call of `path` with `message` (protobuf bytes, framed here) through the
    /// layer stack and the services, as the server's transport would hand it over.
    pub fn grpc(&mut self, path: &str, bearer: Bearer, message: &[u8]) -> Answer {
        let (message, used_refresh) = self.substitute(message, true);
        let mut framed = Vec::with_capacity(message.len() + 5);
        framed.push(0);
        framed.extend_from_slice(
            &u32::try_from(message.len())
                .unwrap_or(u32::MAX)
                .to_be_bytes(),
        );
        framed.extend_from_slice(&message);
        let mut request = http::Request::builder()
            .method("POST")
            .uri(format!("http://authd{path}"))
            .header("content-type", "application/grpc")
            .header("te", "trailers");
        if let Some(auth) = self.authorization(bearer) {
            request = request.header("authorization", auth);
        }
        let request = request
            .body(tonic::body::Body::new(http_body_util::Full::new(
                bytes::Bytes::from(framed),
            )))
            .expect("request");
        let before = self.data_version();
        let svc = self.grpc.clone();
        let (code, message) = self.runtime.block_on(async move {
            let response = svc.oneshot(request).await.expect("infallible");
            let (parts, body) = response.into_parts();
            let trailers = body
                .collect()
                .await
                .ok()
                .and_then(|c| c.trailers().cloned());
            let field = |name: &str| {
                parts
                    .headers
                    .get(name)
                    .or_else(|| trailers.as_ref().and_then(|t| t.get(name)))
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned)
            };
            let code = field("grpc-status")
                .and_then(|c| c.parse().ok())
                .unwrap_or(u16::MAX);
            (code, field("grpc-message").unwrap_or_default())
        });
        let answer = Answer {
            code,
            message,
            committed: self.data_version() != before,
        };
        // Refused with the token of a user an input changed: put the users back.
        let refused = answer.code == 16 || (answer.code == 7 && bearer == Bearer::Admin);
        self.after(bearer, used_refresh, refused);
        answer
    }

    /// One HTTP request to the side port's router.
    pub fn http(
        &mut self,
        method: &str,
        path: &str,
        content_type: &str,
        bearer: Bearer,
        body: &[u8],
    ) -> Answer {
        let (body, used_refresh) = self.substitute(body, false);
        let mut request = http::Request::builder()
            .method(method)
            .uri(path)
            .header("content-type", content_type);
        if let Some(auth) = self.authorization(bearer) {
            request = request.header("authorization", auth);
        }
        let Ok(request) = request.body(axum::body::Body::from(body)) else {
            return Answer {
                code: 0,
                message: "not a valid HTTP request".into(),
                committed: false,
            };
        };
        let before = self.data_version();
        let router = self.http.clone();
        let (code, message) = self.runtime.block_on(async move {
            let response = router.oneshot(request).await.expect("infallible");
            let code = response.status().as_u16();
            let body = response.into_body().collect().await.map(|c| c.to_bytes());
            (
                code,
                String::from_utf8_lossy(&body.unwrap_or_default()).into_owned(),
            )
        });
        let answer = Answer {
            code,
            message,
            committed: self.data_version() != before,
        };
        self.after(bearer, used_refresh, false);
        answer
    }

    fn after(&mut self, bearer: Bearer, used_refresh: bool, refused: bool) {
        if used_refresh || (refused && matches!(bearer, Bearer::User | Bearer::Admin)) {
            self.heal();
        }
    }
}

fn replace(haystack: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(haystack.len());
    let mut rest = haystack;
    while let Some(i) = rest.windows(from.len()).position(|w| w == from) {
        out.extend_from_slice(&rest[..i]);
        out.extend_from_slice(to);
        rest = &rest[i + from.len()..];
    }
    out.extend_from_slice(rest);
    out
}
