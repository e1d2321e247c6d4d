//! What every scenario shares: the database it runs on (a SQLite file or a fresh PostgreSQL
//! database), the `authd serve` process (the built binary) it starts and kills, and the load:
//! clients that log in and refresh, each keeping the token it last received, and counting what
//! was served and what failed, by status code.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use authd::grpc::AuthServiceClient;
use authd::grpc::pb::{
    PasswordCredential, RefreshTokenRequest, TokenRequest, TokenResponse, token_request,
};
use base64::Engine;
use tonic::Code;
use tonic::transport::{Channel, Endpoint};

use crate::binary::{self, Server};
use crate::pg;

pub const PASSWORD: &str = "correct horse battery staple";
/// The users the clients log in as; client `i` is `USERS[i % 4]`.
pub const USERS: [&str; 4] = ["alice", "bob", "carol", "dave"];
/// Access-token lifetime in every run (the default): `exp - iat` of every token received.
pub const ACCESS_TTL: Duration = Duration::from_secs(15 * 60);
/// A client's deadline for one call.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// `AUTHD_FAULTS_LONG=1` selects the long versions (`scripts/faults.sh`).
pub fn long() -> bool {
    std::env::var("AUTHD_FAULTS_LONG").is_ok_and(|v| v == "1")
}

/// The scenarios run one at a time: each starts servers and measures them, and the machine
/// has few cores.
pub static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Where a scenario's data lives.
pub enum Database {
    Sqlite { dir: tempfile::TempDir, url: String },
    Postgres { db: pg::TestDatabase },
}

impl Database {
    /// A SQLite file in a new directory (under `parent`, when given: a mount the test made).
    pub fn sqlite_in(parent: Option<&std::path::Path>) -> Self {
        let dir = match parent {
            Some(p) => tempfile::tempdir_in(p).unwrap(),
            None => tempfile::tempdir().unwrap(),
        };
        let url = format!("sqlite://{}", dir.path().join("authd.db").display());
        Self::Sqlite { dir, url }
    }

    /// A fresh PostgreSQL database, or `None` (with the reason printed) when none is configured.
    pub async fn postgres(test: &str) -> Option<Self> {
        Some(Self::Postgres {
            db: pg::TestDatabase::create(test).await?,
        })
    }

    pub fn url(&self) -> &str {
        match self {
            Self::Sqlite { url, .. } => url,
            Self::Postgres { db } => &db.url,
        }
    }

    pub fn sqlite_path(&self) -> Option<PathBuf> {
        match self {
            Self::Sqlite { dir, .. } => Some(dir.path().join("authd.db")),
            Self::Postgres { .. } => None,
        }
    }

    pub fn label(&self) -> &'static str {
        match self {
            Self::Sqlite { .. } => "SQLite",
            Self::Postgres { .. } => "PostgreSQL",
        }
    }
}

/// The environment of every `authd` these scenarios run: every rotation audited (the
/// invariants compare events with rows), the longest grace window (a client whose response
/// was lost with a killed server presents its token again after the restart and must get the
/// successor that was committed), no per-source limit (all clients are 127.0.0.1), and no
/// purge during the run.
pub fn base_env() -> Vec<(String, String)> {
    [
        ("AUTHD_AUDIT_REFRESH", "all"),
        ("AUTHD_REFRESH_REUSE_GRACE", "2m"),
        ("AUTHD_PER_SOURCE_RATE", "0"),
        ("AUTHD_PURGE_INTERVAL", "1d"),
        ("RUST_LOG", "warn,authd=info"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// `authd` on `url` with [`base_env`] and `env` on top.
pub fn authd(url: &str, env: &[(String, String)]) -> Command {
    let mut cmd = binary::authd(url);
    cmd.envs(base_env()).envs(env.iter().map(|(k, v)| (k, v)));
    cmd
}

/// Creates the [`USERS`] (which also migrates the database).
pub fn add_users(url: &str, env: &[(String, String)]) {
    for name in USERS {
        let mut cmd = authd(url, env);
        cmd.args(["user", "add", name, "--password-stdin"]);
        let out = binary::run_with_stdin(cmd, &format!("{PASSWORD}\n"));
        assert!(out.status.success(), "authd user add {name}: {out:?}");
    }
}

/// Starts `authd serve` on port 0 (off the runtime: a proxy the server connects through needs
/// the runtime's tasks to run meanwhile).
pub async fn start_server(url: &str, env: &[(String, String)]) -> Server {
    start_command(authd(url, env)).await
}

/// Starts `cmd` (an `authd` command) as `serve` on port 0.
pub async fn start_command(mut cmd: Command) -> Server {
    cmd.args(["serve", "--grpc-addr", "127.0.0.1:0"]);
    tokio::task::spawn_blocking(move || Server::start(cmd))
        .await
        .unwrap()
}

pub async fn connect(server: &Server) -> AuthServiceClient<Channel> {
    let channel = Endpoint::from_shared(format!("http://{}", server.addr))
        .unwrap()
        .connect_timeout(Duration::from_secs(2))
        .connect()
        .await
        .unwrap();
    AuthServiceClient::new(channel)
}

/// What an access token says about itself (read, not verified: the server's own tests verify).
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Claims {
    pub iat: i64,
    pub exp: i64,
    pub sid: Option<String>,
}

pub fn claims(access_token: &str) -> Claims {
    let payload = access_token.split('.').nth(1).unwrap();
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&json).unwrap()
}

/// One session as its client sees it.
#[derive(Debug, Clone)]
pub struct Chain {
    pub user: &'static str,
    /// From the access token's `sid`.
    pub family: String,
    /// The refresh token last received: the one to present next.
    pub token: String,
    /// Every refresh token received in this session, in order.
    pub received: Vec<String>,
    /// Set when a refresh of `token` was refused: the family must then be revoked, for a
    /// reason the database records.
    pub refused: bool,
}

/// What the clients of a run counted.
#[derive(Debug, Default)]
pub struct Tally {
    pub logins: AtomicU64,
    pub refreshes: AtomicU64,
    /// Failed calls by status code.
    pub failed: Mutex<BTreeMap<String, u64>>,
    /// Every `exp - iat` seen, in seconds, when it was not the access-token lifetime (must
    /// stay empty).
    pub bad_lifetimes: Mutex<Vec<i64>>,
    /// The access-token lifetime the server runs with ([`ACCESS_TTL`] when `None`).
    pub access_ttl: Option<Duration>,
}

impl Tally {
    pub fn served(&self) -> u64 {
        self.logins.load(Ordering::Relaxed) + self.refreshes.load(Ordering::Relaxed)
    }

    pub fn failed_total(&self) -> u64 {
        self.failed.lock().unwrap().values().sum()
    }

    fn fail(&self, status: &tonic::Status) {
        let mut failed = self.failed.lock().unwrap();
        *failed.entry(format!("{:?}", status.code())).or_default() += 1;
    }

    /// Failures other than `allowed`, for assertion messages.
    pub fn unexpected(&self, allowed: &[Code]) -> BTreeMap<String, u64> {
        let allowed: Vec<String> = allowed.iter().map(|c| format!("{c:?}")).collect();
        let failed = self.failed.lock().unwrap();
        failed
            .iter()
            .filter(|(code, _)| !allowed.contains(code))
            .map(|(c, n)| (c.clone(), *n))
            .collect()
    }

    fn check_lifetime(&self, response: &TokenResponse) -> Claims {
        let claims = claims(&response.access_token);
        let ttl = self.access_ttl.unwrap_or(ACCESS_TTL);
        if u64::try_from(claims.exp - claims.iat).ok() != Some(ttl.as_secs()) {
            self.bad_lifetimes
                .lock()
                .unwrap()
                .push(claims.exp - claims.iat);
        }
        claims
    }
}

/// Everything the clients hold across runs and restarts: the live chain of each client, and
/// the chains they moved on from (logged in again), which must stay valid too.
#[derive(Debug, Default)]
pub struct Clients {
    pub current: Vec<Option<Chain>>,
    pub abandoned: Vec<Chain>,
}

impl Clients {
    pub fn new(n: usize) -> Self {
        Self {
            current: vec![None; n],
            abandoned: Vec::new(),
        }
    }

    pub fn chains(&self) -> impl Iterator<Item = &Chain> {
        self.current.iter().flatten().chain(&self.abandoned)
    }
}

/// A small deterministic generator (xorshift64*), so a run's choices repeat from its seed.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A value in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// How a run's clients behave.
#[derive(Debug, Clone, Copy)]
pub struct LoadShape {
    /// One call in `login_every` is a new login (the client's old chain is kept as abandoned).
    pub login_every: u64,
}

impl Default for LoadShape {
    fn default() -> Self {
        Self { login_every: 8 }
    }
}

/// Runs the clients against `client` until `stop` is set, then returns. A failed call is
/// counted and retried (with the same token) after a short pause, unless `stop` is set.
pub async fn run_load(
    client: AuthServiceClient<Channel>,
    clients: &Arc<Mutex<Clients>>,
    tally: &Arc<Tally>,
    stop: &Arc<AtomicBool>,
    shape: LoadShape,
    seed: u64,
) {
    let n = clients.lock().unwrap().current.len();
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let client = client.clone();
            let clients = Arc::clone(clients);
            let tally = Arc::clone(tally);
            let stop = Arc::clone(stop);
            tokio::spawn(async move {
                let mut rng = Rng::new(seed ^ ((i as u64 + 1) * 0x9E37_79B9));
                while !stop.load(Ordering::SeqCst) {
                    let chain = clients.lock().unwrap().current[i].clone();
                    let ok = match chain {
                        Some(chain) if chain.refused => {
                            // A refused session is over; start another.
                            login(&client, &clients, &tally, i).await
                        }
                        Some(chain) if rng.below(shape.login_every) != 0 => {
                            refresh(&client, &clients, &tally, i, chain).await
                        }
                        _ => login(&client, &clients, &tally, i).await,
                    };
                    if !ok {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
}

fn with_deadline<T>(message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.set_timeout(CALL_TIMEOUT);
    request
}

async fn login(
    client: &AuthServiceClient<Channel>,
    clients: &Arc<Mutex<Clients>>,
    tally: &Tally,
    i: usize,
) -> bool {
    let user = USERS[i % USERS.len()];
    let request = with_deadline(TokenRequest {
        credential: Some(token_request::Credential::PasswordCredential(
            PasswordCredential {
                username: user.into(),
                password: PASSWORD.into(),
            },
        )),
    });
    match tokio::time::timeout(CALL_TIMEOUT, client.clone().token(request)).await {
        Ok(Ok(response)) => {
            let response = response.into_inner();
            let claims = tally.check_lifetime(&response);
            tally.logins.fetch_add(1, Ordering::Relaxed);
            let chain = Chain {
                user,
                family: claims
                    .sid
                    .expect("a login's access token names its session"),
                token: response.refresh_token.clone(),
                received: vec![response.refresh_token],
                refused: false,
            };
            let mut clients = clients.lock().unwrap();
            if let Some(old) = clients.current[i].replace(chain) {
                clients.abandoned.push(old);
            }
            true
        }
        Ok(Err(status)) => {
            tally.fail(&status);
            false
        }
        Err(_) => {
            tally.fail(&tonic::Status::deadline_exceeded("client deadline"));
            false
        }
    }
}

async fn refresh(
    client: &AuthServiceClient<Channel>,
    clients: &Arc<Mutex<Clients>>,
    tally: &Tally,
    i: usize,
    mut chain: Chain,
) -> bool {
    let request = with_deadline(RefreshTokenRequest {
        refresh_token: chain.token.clone(),
    });
    let outcome = tokio::time::timeout(CALL_TIMEOUT, client.clone().refresh_token(request)).await;
    let ok = match outcome {
        Ok(Ok(response)) => {
            let response = response.into_inner();
            let claims = tally.check_lifetime(&response);
            assert_eq!(claims.sid.as_deref(), Some(chain.family.as_str()));
            tally.refreshes.fetch_add(1, Ordering::Relaxed);
            chain.token = response.refresh_token.clone();
            chain.received.push(response.refresh_token);
            true
        }
        Ok(Err(status)) => {
            tally.fail(&status);
            if status.code() == Code::Unauthenticated {
                chain.refused = true;
            }
            false
        }
        Err(_) => {
            tally.fail(&tonic::Status::deadline_exceeded("client deadline"));
            false
        }
    };
    clients.lock().unwrap().current[i] = Some(chain);
    ok
}

/// Presents the token each chain last received to `server`: it must refresh, unless the
/// chain was refused (then the database must say why; see the invariants). Returns how many
/// refreshed.
pub async fn last_tokens_refresh(server: &Server, clients: &Clients) -> usize {
    let client = connect(server).await;
    let mut refreshed = 0;
    for chain in clients.chains().filter(|c| !c.refused) {
        let response = client
            .clone()
            .refresh_token(with_deadline(RefreshTokenRequest {
                refresh_token: chain.token.clone(),
            }))
            .await;
        match response {
            Ok(_) => refreshed += 1,
            Err(status) => panic!(
                "the token {} {} last received in session {} does not refresh: {status:?}",
                chain.received.len(),
                chain.user,
                chain.family
            ),
        }
    }
    refreshed
}

/// Polls `call` every 50 ms until it succeeds; returns how long that took.
pub async fn time_to_recover<F, Fut>(limit: Duration, mut call: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let started = Instant::now();
    loop {
        if call().await {
            return started.elapsed();
        }
        assert!(started.elapsed() < limit, "not recovered within {limit:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A login of `alice` against `client`, for recovery probes.
pub async fn probe_login(client: &AuthServiceClient<Channel>) -> Result<TokenResponse, Code> {
    let request = with_deadline(TokenRequest {
        credential: Some(token_request::Credential::PasswordCredential(
            PasswordCredential {
                username: USERS[0].into(),
                password: PASSWORD.into(),
            },
        )),
    });
    client
        .clone()
        .token(request)
        .await
        .map(tonic::Response::into_inner)
        .map_err(|s| s.code())
}

/// The figures line every scenario prints, for RELIABILITY.md.
pub fn report(scenario: &str, db: &Database, tally: &Tally, extra: &str) {
    eprintln!(
        "[faults] {scenario} ({}): served {} ({} logins, {} refreshes), failed {} {:?}{extra}",
        db.label(),
        tally.served(),
        tally.logins.load(Ordering::Relaxed),
        tally.refreshes.load(Ordering::Relaxed),
        tally.failed_total(),
        tally.failed.lock().unwrap(),
    );
}
