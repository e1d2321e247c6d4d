//! The load generator behind `authd bench`: drives a running server over gRPC, or over the
//! HTTP/JSON routes of its public HTTP port ([`Protocol`]), and measures it.
//!
//! It owns the workers, the request budget (a count and a deadline, whichever ends first), the
//! per-operation HDR histograms and the optional sampling of the server's RSS. It measures only
//! from the outside, through the same generated client any caller uses; it knows nothing of
//! the server's internals. Printing is left to the CLI ([`Report::to_json`], `Display`).
//!
//! Scenarios:
//! - `noop`: `grpc.health.v1.Health/Check` (HTTP: `GET /healthz`), the transport ceiling of
//!   the same server;
//! - `login`: every request is a password login of the given user;
//! - `refresh`: C independent refresh chains, each started (before the clock starts) by a login
//!   of the given user and always presenting its newest token;
//! - `mixed`: each worker logs in, then refreshes its chain 50 times, and again;
//! - `logout-flood` ([`logout_flood`]): `refresh` alone, then beside 1,000 garbage Logouts/s.

mod http;
mod limit;
pub mod logout_flood;
mod report;
pub mod rss;
mod startup;
pub mod storage;
pub mod sweep;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use secrecy::{ExposeSecret, SecretString};
use tokio::task::JoinSet;
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

use authd::grpc::AuthServiceClient;
use authd::grpc::pb::{self, token_request::Credential};

pub use http::HttpApi;
pub use limit::{LoginLimit, measure_login_limit};
pub use report::Report;
pub use rss::{RssSample, Sampled, read_rss};
pub use startup::{ServerSetup, measure_startup};

/// Refreshes per login in the `mixed` scenario.
pub const MIXED_REFRESHES_PER_LOGIN: u32 = 50;

/// Highest latency the histograms track exactly; slower requests are recorded as this.
const MAX_TRACKED_MICROS: u64 = 60_000_000;

/// What the load consists of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    Noop,
    Login,
    Refresh,
    Mixed,
}

impl Scenario {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Noop => "noop",
            Self::Login => "login",
            Self::Refresh => "refresh",
            Self::Mixed => "mixed",
        }
    }

    /// Whether the scenario logs in, and so needs a user and password.
    pub fn needs_user(self) -> bool {
        !matches!(self, Self::Noop)
    }
}

/// How the generator talks to the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// gRPC over HTTP/2, the generated client.
    Grpc,
    /// The JSON routes over HTTP/1.1.
    Http,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Grpc => "grpc",
            Self::Http => "http",
        }
    }
}

/// One kind of request the generator sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Operation {
    Health,
    Login,
    Refresh,
}

impl Operation {
    const ALL: [Self; 3] = [Self::Health, Self::Login, Self::Refresh];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Health => "health",
            Self::Login => "login",
            Self::Refresh => "refresh",
        }
    }

    fn index(self) -> usize {
        match self {
            Self::Health => 0,
            Self::Login => 1,
            Self::Refresh => 2,
        }
    }
}

/// The users to log in as (all with one password), taken in turn by every login.
pub struct Credentials {
    usernames: Vec<String>,
    password: SecretString,
    next: std::sync::atomic::AtomicUsize,
}

impl Credentials {
    /// `usernames` must not be empty.
    pub fn new(usernames: Vec<String>, password: SecretString) -> Self {
        assert!(!usernames.is_empty(), "at least one user to log in as");
        Self {
            usernames,
            password,
            next: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    /// The next user, round-robin over all of them.
    fn next_username(&self) -> &str {
        let i = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        &self.usernames[i % self.usernames.len()]
    }
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("usernames", &self.usernames.len())
            .finish_non_exhaustive()
    }
}

/// How to load the server.
#[derive(Debug)]
pub struct BenchConfig {
    pub scenario: Scenario,
    pub protocol: Protocol,
    /// `HOST:PORT` or a URL (`http://HOST:PORT`): the gRPC port, or the HTTP port for
    /// [`Protocol::Http`].
    pub addr: String,
    /// Requests in flight at once (one worker each).
    pub concurrency: usize,
    /// HTTP/2 connections the workers share, round-robin (gRPC; over HTTP/1.1 each request
    /// in flight has its own).
    pub connections: usize,
    /// Stop sending after this long.
    pub duration: Duration,
    /// Stop sending after this many requests (errors included), if given.
    pub requests: Option<u64>,
    pub credentials: Option<Credentials>,
    /// The server's process id, to sample its resident memory.
    pub server_pid: Option<u32>,
}

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("invalid server address {0:?}")]
    Address(String),
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        addr: String,
        source: tonic::transport::Error,
    },
    #[error("the {0} scenario needs --user and --password-stdin")]
    MissingUser(&'static str),
    #[error("concurrency and connections must be at least 1")]
    NoWorkers,
    #[error("setup login failed: {0:?}: {1}")]
    SetupLogin(tonic::Code, String),
    #[error("a worker failed: {0}")]
    Worker(#[from] tokio::task::JoinError),
    #[error("cannot start the server: {0}")]
    Spawn(#[source] std::io::Error),
    #[error("the server did not answer within {0:?}")]
    NeverReady(Duration),
}

/// The URL for `addr`, adding `http://` when no scheme is given.
fn url_for(addr: &str) -> String {
    if addr.contains("://") {
        addr.to_owned()
    } else {
        format!("http://{addr}")
    }
}

async fn connect(addr: &str) -> Result<Channel, BenchError> {
    let url = url_for(addr);
    Endpoint::from_shared(url.clone())
        .map_err(|_| BenchError::Address(addr.to_owned()))?
        .tcp_nodelay(true)
        .connect()
        .await
        .map_err(|source| BenchError::Connect { addr: url, source })
}

/// Runs the load described by `config` and measures it.
///
/// # Errors
/// When the server cannot be reached, the scenario lacks a user, or a setup login (before the
/// clock starts) is refused. Errors of measured requests are counted, not returned.
pub async fn run(config: BenchConfig) -> Result<Report, BenchError> {
    if config.concurrency == 0 || config.connections == 0 {
        return Err(BenchError::NoWorkers);
    }
    if config.scenario.needs_user() && config.credentials.is_none() {
        return Err(BenchError::MissingUser(config.scenario.as_str()));
    }
    let (connections, transports) = match config.protocol {
        Protocol::Grpc => {
            let connections = config.connections.min(config.concurrency);
            let mut channels = Vec::with_capacity(connections);
            for _ in 0..connections {
                channels.push(Transport::grpc(connect(&config.addr).await?));
            }
            (connections, channels)
        }
        Protocol::Http => {
            let api = HttpApi::new(url_for(&config.addr), config.concurrency);
            (config.concurrency, vec![Transport::Http(api)])
        }
    };
    let credentials = config.credentials.map(Arc::new);

    // Setup, outside the measurement: refresh chains start from a login each. One login at a
    // time: simultaneous logins of one account contend on its throttle counter (each in-flight
    // attempt is charged until it succeeds), which would measure the throttle, not authd.
    let one_login_at_a_time = Arc::new(tokio::sync::Semaphore::new(1));
    let mut setup = JoinSet::new();
    for i in 0..config.concurrency {
        let mut worker = Worker::new(
            config.scenario,
            transports[i % transports.len()].clone(),
            credentials.clone(),
        );
        let one_login_at_a_time = Arc::clone(&one_login_at_a_time);
        setup.spawn(async move {
            if worker.scenario == Scenario::Refresh {
                let _turn = one_login_at_a_time.acquire_owned().await;
                worker.chain = Some(
                    worker
                        .login()
                        .await
                        .map_err(|s| BenchError::SetupLogin(s.code(), s.message().to_owned()))?,
                );
            }
            Ok::<_, BenchError>(worker)
        });
    }
    let mut workers = Vec::with_capacity(config.concurrency);
    while let Some(worker) = setup.join_next().await {
        workers.push(worker??);
    }

    let rss_before = match config.server_pid {
        Some(pid) => read_rss(pid).await,
        None => None,
    };
    // Ten points over the run, so a server whose memory does not level off shows it.
    let timeline_every = config.duration / 10;
    let sampler = config
        .server_pid
        .map(|pid| rss::Sampler::start(pid, timeline_every));

    let started = Instant::now();
    let budget = Arc::new(Budget {
        deadline: started + config.duration,
        remaining: config.requests.map(AtomicU64::new),
    });
    let mut running = JoinSet::new();
    for worker in workers {
        let budget = Arc::clone(&budget);
        running.spawn(worker.run(budget));
    }
    let mut totals = Tally::new();
    while let Some(tally) = running.join_next().await {
        totals.merge(&tally?);
    }
    let elapsed = started.elapsed();

    let sampled = match sampler {
        Some(s) => s.stop().await,
        None => Sampled::default(),
    };
    let rss_after = match config.server_pid {
        Some(pid) => read_rss(pid).await,
        None => None,
    };
    let mut report = Report::new(
        config.scenario,
        config.concurrency,
        connections,
        elapsed,
        &totals,
        report::ServerMemory {
            before: rss_before,
            max_sampled: sampled.max,
            timeline: sampled.timeline,
            trace: sampled.trace,
            after: rss_after,
        },
    );
    report.protocol = config.protocol;
    Ok(report)
}

/// The shared stop condition: a deadline, and optionally a request count.
struct Budget {
    deadline: Instant,
    remaining: Option<AtomicU64>,
}

impl Budget {
    /// Takes one request from the budget; `false` when the run is over.
    fn take(&self) -> bool {
        if Instant::now() >= self.deadline {
            return false;
        }
        match &self.remaining {
            None => true,
            Some(left) => left
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                .is_ok(),
        }
    }
}

/// Latencies and outcomes, per operation, of one worker or of the whole run.
pub(crate) struct Tally {
    latencies: [Histogram<u64>; 3],
    errors: [BTreeMap<String, u64>; 3],
}

impl Tally {
    fn new() -> Self {
        let histogram = || {
            // Bounds are constants that hdrhistogram accepts (1 µs to 60 s, 3 digits).
            #[allow(clippy::expect_used)]
            Histogram::new_with_bounds(1, MAX_TRACKED_MICROS, 3).expect("valid histogram bounds")
        };
        Self {
            latencies: [histogram(), histogram(), histogram()],
            errors: Default::default(),
        }
    }

    fn record(&mut self, op: Operation, latency: Duration, outcome: Result<(), tonic::Code>) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.latencies[op.index()].saturating_record(micros.clamp(1, MAX_TRACKED_MICROS));
        if let Err(code) = outcome {
            *self.errors[op.index()]
                .entry(format!("{code:?}"))
                .or_default() += 1;
        }
    }

    fn merge(&mut self, other: &Self) {
        for op in Operation::ALL {
            let i = op.index();
            // Same bounds on both sides, so adding cannot fail.
            let _ = self.latencies[i].add(&other.latencies[i]);
            for (code, n) in &other.errors[i] {
                *self.errors[i].entry(code.clone()).or_default() += n;
            }
        }
    }

    pub(crate) fn histogram(&self, op: Operation) -> &Histogram<u64> {
        &self.latencies[op.index()]
    }

    pub(crate) fn errors(&self, op: Operation) -> &BTreeMap<String, u64> {
        &self.errors[op.index()]
    }
}

/// What a worker sends its requests over.
#[derive(Clone)]
enum Transport {
    /// A shared HTTP/2 connection.
    Grpc {
        auth: AuthServiceClient<Channel>,
        health: HealthClient<Channel>,
    },
    /// The shared pool of HTTP/1.1 connections.
    Http(HttpApi),
}

impl Transport {
    fn grpc(channel: Channel) -> Self {
        Self::Grpc {
            auth: AuthServiceClient::new(channel.clone()),
            health: HealthClient::new(channel),
        }
    }
}

/// One request in flight at a time, over a shared connection.
struct Worker {
    scenario: Scenario,
    transport: Transport,
    credentials: Option<Arc<Credentials>>,
    /// The newest refresh token of this worker's chain.
    chain: Option<String>,
    refreshes_since_login: u32,
}

impl Worker {
    fn new(
        scenario: Scenario,
        transport: Transport,
        credentials: Option<Arc<Credentials>>,
    ) -> Self {
        Self {
            scenario,
            transport,
            credentials,
            chain: None,
            refreshes_since_login: 0,
        }
    }

    fn next_operation(&self) -> Operation {
        match self.scenario {
            Scenario::Noop => Operation::Health,
            Scenario::Login => Operation::Login,
            Scenario::Refresh if self.chain.is_some() => Operation::Refresh,
            Scenario::Mixed
                if self.chain.is_some()
                    && self.refreshes_since_login < MIXED_REFRESHES_PER_LOGIN =>
            {
                Operation::Refresh
            }
            // A broken chain (after an error) starts again from a login.
            Scenario::Refresh | Scenario::Mixed => Operation::Login,
        }
    }

    async fn run(mut self, budget: Arc<Budget>) -> Tally {
        let mut tally = Tally::new();
        while budget.take() {
            let op = self.next_operation();
            let sent = Instant::now();
            let outcome = match op {
                Operation::Health => self.health_check().await,
                Operation::Login => self.login().await.map(|token| {
                    self.chain = Some(token);
                    self.refreshes_since_login = 0;
                }),
                Operation::Refresh => self.refresh().await,
            };
            tally.record(op, sent.elapsed(), outcome.map_err(|s| s.code()));
        }
        tally
    }

    async fn health_check(&mut self) -> Result<(), tonic::Status> {
        match &mut self.transport {
            Transport::Grpc { health, .. } => health
                .check(HealthCheckRequest {
                    service: String::new(),
                })
                .await
                .map(drop),
            Transport::Http(api) => api.health().await,
        }
    }

    /// Logs in; returns the new chain's refresh token.
    async fn login(&mut self) -> Result<String, tonic::Status> {
        let credentials = self
            .credentials
            .as_ref()
            .ok_or_else(|| tonic::Status::failed_precondition("no user given"))?;
        let username = credentials.next_username();
        let password = credentials.password.expose_secret();
        match &mut self.transport {
            Transport::Grpc { auth, .. } => {
                let request = pb::TokenRequest {
                    credential: Some(Credential::PasswordCredential(pb::PasswordCredential {
                        username: username.to_owned(),
                        password: password.to_owned(),
                    })),
                };
                Ok(auth.token(request).await?.into_inner().refresh_token)
            }
            Transport::Http(api) => api.login(username, password).await,
        }
    }

    async fn refresh(&mut self) -> Result<(), tonic::Status> {
        let refresh_token = self.chain.take().unwrap_or_default();
        let successor = match &mut self.transport {
            Transport::Grpc { auth, .. } => {
                auth.refresh_token(pb::RefreshTokenRequest { refresh_token })
                    .await?
                    .into_inner()
                    .refresh_token
            }
            Transport::Http(api) => api.refresh(refresh_token).await?,
        };
        // On error the chain stays broken (taken); the next operation logs in again.
        self.chain = Some(successor);
        self.refreshes_since_login += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_stops_at_the_request_count() {
        let budget = Budget {
            deadline: Instant::now() + Duration::from_secs(3600),
            remaining: Some(AtomicU64::new(3)),
        };
        assert_eq!((0..10).filter(|_| budget.take()).count(), 3);
    }

    #[test]
    fn budget_stops_at_the_deadline() {
        let budget = Budget {
            deadline: Instant::now(),
            remaining: None,
        };
        assert!(!budget.take());
    }

    #[test]
    fn addresses_without_a_scheme_get_http() {
        assert_eq!(url_for("127.0.0.1:50051"), "http://127.0.0.1:50051");
        assert_eq!(url_for("https://a:1"), "https://a:1");
    }

    #[test]
    fn tallies_merge_counts_and_errors() {
        let mut a = Tally::new();
        a.record(Operation::Refresh, Duration::from_millis(2), Ok(()));
        let mut b = Tally::new();
        b.record(
            Operation::Refresh,
            Duration::from_millis(4),
            Err(tonic::Code::Unavailable),
        );
        a.merge(&b);
        assert_eq!(a.histogram(Operation::Refresh).len(), 2);
        assert_eq!(a.errors(Operation::Refresh).get("Unavailable"), Some(&1));
        assert_eq!(a.histogram(Operation::Login).len(), 0);
    }
}
