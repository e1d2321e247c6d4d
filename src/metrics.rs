//! Prometheus metrics: the recorder (installed once per process, rendered on the HTTP side
//! port's `/metrics`, no listener of its own) with its upkeep thread, the names of every metric
//! authd records, and the helpers that record them (gRPC requests are counted per method and
//! status code by the request layer stack, `middleware::observe`).
//!
//! Code elsewhere records through the `metrics` facade with the helpers below, so the names
//! and label values live in one place. Label values come from fixed sets only (never from
//! client input), so the number of series stays bounded.

use std::sync::OnceLock;
use std::time::Duration;

use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

pub const GRPC_REQUESTS: &str = "authd_grpc_requests_total";
pub const GRPC_DURATION: &str = "authd_grpc_request_duration_seconds";
pub const LOGINS: &str = "authd_logins_total";
pub const REFRESHES: &str = "authd_refreshes_total";
pub const REUSE_DETECTED: &str = "authd_refresh_reuse_detected_total";
pub const FAMILIES_REVOKED: &str = "authd_refresh_families_revoked_total";
pub const ARGON2_QUEUE_DEPTH: &str = "authd_argon2_queue_depth";
pub const ARGON2_IN_FLIGHT: &str = "authd_argon2_in_flight";
pub const ARGON2_WAIT: &str = "authd_argon2_wait_seconds";
pub const ARGON2_DURATION: &str = "authd_argon2_duration_seconds";
pub const DATABASE_ERRORS: &str = "authd_database_errors_total";
pub const SIGNING_KEY_AGE: &str = "authd_signing_key_age_seconds";
pub const SIGNING_KEYS_PUBLISHED: &str = "authd_signing_keys_published";
pub const ROTATION_BATCH_SIZE: &str = "authd_sqlite_rotation_batch_size";
pub const ROTATION_BATCH_WRITE: &str = "authd_sqlite_rotation_batch_write_seconds";
pub const ROTATION_BATCH_COMMIT: &str = "authd_sqlite_rotation_batch_commit_seconds";
pub const PG_ROTATION_BATCH_SIZE: &str = "authd_postgres_rotation_batch_size";
pub const PG_ROTATION_BATCH: &str = "authd_postgres_rotation_batch_seconds";
pub const CONNECTIONS_OPEN: &str = "authd_connections_open";
pub const CONNECTIONS_REFUSED: &str = "authd_connections_refused_total";
pub const ACCEPT_ERRORS: &str = "authd_accept_errors_total";
/// Rotations handed to the store's rotation writer and not yet answered (queued, waiting to
/// queue, or in the batch being written).
pub const ROTATIONS_WAITING: &str = "authd_rotations_waiting";

/// Login outcomes. `throttled` is recorded by login rate limiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginOutcome {
    Success,
    InvalidCredentials,
    Throttled,
    /// Refused: the username is locked after too many consecutive failures.
    Locked,
    /// A request missing its username or password.
    InvalidRequest,
    Error,
}

impl LoginOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::InvalidCredentials => "invalid_credentials",
            Self::Throttled => "throttled",
            Self::Locked => "locked",
            Self::InvalidRequest => "invalid_request",
            Self::Error => "error",
        }
    }
}

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// How often the recorder's upkeep runs: every histogram sample is buffered until upkeep
/// drains it into its buckets, so this bounds the buffer to a few seconds of samples. Five
/// seconds is the exporter's own default.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// The name of the thread that runs the recorder's upkeep.
pub const UPKEEP_THREAD: &str = "authd-metrics";

const BATCH_SIZE_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Installs the Prometheus recorder as the process-wide `metrics` recorder, once; later calls
/// return the same handle. `None` when another recorder was installed first (metrics then go
/// there, and `/metrics` says so).
pub fn install() -> Option<PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
                .ok()?
                .set_buckets_for_metric(
                    Matcher::Suffix("_rotation_batch_size".into()),
                    BATCH_SIZE_BUCKETS,
                )
                .ok()?;
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            match metrics::set_global_recorder(recorder) {
                Ok(()) => {
                    spawn_upkeep(handle.clone());
                    describe();
                    // Gauges an operator alerts on are shown from the start, at zero, not only
                    // once something first moved them.
                    gauge!(ARGON2_QUEUE_DEPTH).set(0.0);
                    gauge!(ARGON2_IN_FLIGHT).set(0.0);
                    Some(handle)
                }
                Err(_) => {
                    tracing::warn!("a metrics recorder was already installed; /metrics is empty");
                    None
                }
            }
        })
        .clone()
}

/// Runs the recorder's upkeep on its own schedule, for the life of the process (the recorder
/// lives as long). Rendering `/metrics` also runs it, but a server nobody scrapes must not keep
/// every histogram sample it ever recorded: that grew by about 25 bytes per refresh.
fn spawn_upkeep(handle: PrometheusHandle) {
    let spawned = std::thread::Builder::new()
        .name(UPKEEP_THREAD.into())
        .spawn(move || {
            loop {
                std::thread::sleep(UPKEEP_INTERVAL);
                handle.run_upkeep();
            }
        });
    if let Err(error) = spawned {
        // Only on a machine out of threads; /metrics scrapes still drain the samples.
        tracing::warn!(%error, "could not start the metrics upkeep thread");
    }
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!(GRPC_REQUESTS, "gRPC requests by method and status code");
    describe_histogram!(
        GRPC_DURATION,
        metrics::Unit::Seconds,
        "gRPC request latency"
    );
    describe_counter!(LOGINS, "login attempts by outcome");
    describe_counter!(REFRESHES, "refresh attempts by outcome");
    describe_counter!(
        REUSE_DETECTED,
        "refresh tokens presented again after rotation"
    );
    describe_counter!(FAMILIES_REVOKED, "refresh families revoked, by reason");
    describe_gauge!(ARGON2_QUEUE_DEPTH, "password hashes waiting for a permit");
    describe_gauge!(ARGON2_IN_FLIGHT, "password hashes running");
    describe_gauge!(
        ROTATIONS_WAITING,
        "rotations handed to the rotation writer and not yet answered"
    );
    describe_histogram!(
        ARGON2_WAIT,
        metrics::Unit::Seconds,
        "time waiting for a hashing permit"
    );
    describe_histogram!(
        ARGON2_DURATION,
        metrics::Unit::Seconds,
        "time spent hashing"
    );
    describe_counter!(
        DATABASE_ERRORS,
        "operations that failed because the database did"
    );
    describe_gauge!(
        SIGNING_KEY_AGE,
        metrics::Unit::Seconds,
        "how long the signing key has signed"
    );
    describe_gauge!(SIGNING_KEYS_PUBLISHED, "keys in the JWKS");
    describe_histogram!(
        ROTATION_BATCH_SIZE,
        "rotations group-committed in one SQLite transaction"
    );
    describe_histogram!(
        ROTATION_BATCH_WRITE,
        metrics::Unit::Seconds,
        "time from BEGIN to the end of a rotation batch's writes (SQLite)"
    );
    describe_histogram!(
        ROTATION_BATCH_COMMIT,
        metrics::Unit::Seconds,
        "time a rotation batch's COMMIT took, fsync included (SQLite)"
    );
    describe_histogram!(
        PG_ROTATION_BATCH_SIZE,
        "rotations applied in one PostgreSQL transaction by this replica"
    );
    describe_histogram!(
        PG_ROTATION_BATCH,
        metrics::Unit::Seconds,
        "time from BEGIN to the end of COMMIT of a rotation batch (PostgreSQL)"
    );
    describe_gauge!(CONNECTIONS_OPEN, "client connections held, by listener");
    describe_counter!(
        CONNECTIONS_REFUSED,
        "connections closed at accept because a cap was reached, by listener and reason"
    );
    describe_counter!(
        ACCEPT_ERRORS,
        "failed accepts (such as EMFILE, out of file descriptors), by listener"
    );
}

/// A listener starts: its gauge is shown from the start, at zero. `listener` is one of a
/// fixed set (`grpc`, `http`).
pub fn connections_listener(listener: &'static str) {
    gauge!(CONNECTIONS_OPEN, "listener" => listener).increment(0.0);
}

pub fn connection_opened(listener: &'static str) {
    gauge!(CONNECTIONS_OPEN, "listener" => listener).increment(1.0);
}

pub fn connection_closed(listener: &'static str) {
    gauge!(CONNECTIONS_OPEN, "listener" => listener).decrement(1.0);
}

/// `reason` is `max_connections` or `max_connections_per_source`.
pub fn connection_refused(listener: &'static str, reason: &'static str) {
    counter!(CONNECTIONS_REFUSED, "listener" => listener, "reason" => reason).increment(1);
}

pub fn accept_error(listener: &'static str) {
    counter!(ACCEPT_ERRORS, "listener" => listener).increment(1);
}

pub fn login(outcome: LoginOutcome) {
    counter!(LOGINS, "outcome" => outcome.as_str()).increment(1);
}

/// `outcome` is one of a fixed set: rotated, grace_retry, reuse_detected, rejected,
/// malformed, error.
pub fn refresh(outcome: &'static str) {
    counter!(REFRESHES, "outcome" => outcome).increment(1);
}

pub fn reuse_detected() {
    counter!(REUSE_DETECTED).increment(1);
    counter!(FAMILIES_REVOKED, "reason" => "reuse").increment(1);
}

pub fn database_error() {
    counter!(DATABASE_ERRORS).increment(1);
}

pub fn argon2_queued(delta: f64) {
    gauge!(ARGON2_QUEUE_DEPTH).increment(delta);
}

/// A rotation was handed to the rotation writer (`1.0`) or answered or abandoned (`-1.0`).
pub fn rotations_waiting(delta: f64) {
    gauge!(ROTATIONS_WAITING).increment(delta);
}

pub fn argon2_started(waited: Duration) {
    histogram!(ARGON2_WAIT).record(waited.as_secs_f64());
    gauge!(ARGON2_IN_FLIGHT).increment(1.0);
}

pub fn argon2_finished(took: Duration) {
    histogram!(ARGON2_DURATION).record(took.as_secs_f64());
    gauge!(ARGON2_IN_FLIGHT).decrement(1.0);
}

/// One group-committed SQLite rotation batch: its size, and how long its writes and its
/// commit took.
pub fn rotation_batch(rotations: usize, writes: Duration, commit: Duration) {
    #[allow(clippy::cast_precision_loss)] // at most a few hundred
    histogram!(ROTATION_BATCH_SIZE).record(rotations as f64);
    histogram!(ROTATION_BATCH_WRITE).record(writes.as_secs_f64());
    histogram!(ROTATION_BATCH_COMMIT).record(commit.as_secs_f64());
}

/// One PostgreSQL rotation batch of this replica: its size, and how long its transaction took
/// (retries included).
pub fn postgres_rotation_batch(rotations: usize, took: Duration) {
    #[allow(clippy::cast_precision_loss)] // at most a few hundred
    histogram!(PG_ROTATION_BATCH_SIZE).record(rotations as f64);
    histogram!(PG_ROTATION_BATCH).record(took.as_secs_f64());
}

pub fn signing_keys(age: Option<Duration>, published: usize) {
    gauge!(SIGNING_KEY_AGE).set(age.map_or(0.0, |a| a.as_secs_f64()));
    #[allow(clippy::cast_precision_loss)] // a handful of keys
    gauge!(SIGNING_KEYS_PUBLISHED).set(published as f64);
}

/// The methods counted by name; anything else is counted as `other`, so clients cannot
/// create series at will.
const KNOWN_METHODS: &[&str] = &[
    "/auth.v1.AuthService/Token",
    "/auth.v1.AuthService/RefreshToken",
    "/auth.v1.AuthService/Logout",
    "/auth.v1.AuthService/Introspect",
    "/grpc.health.v1.Health/Check",
    "/grpc.health.v1.Health/Watch",
    "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
];

/// The method of a request path, from the fixed set (else `other`): safe as a label and in logs.
pub fn method_label(path: &str) -> &'static str {
    KNOWN_METHODS
        .iter()
        .find(|m| **m == path)
        .copied()
        .unwrap_or("other")
}

/// The gRPC status code of a response, by name.
pub fn code_label<B>(response: &http::Response<B>) -> &'static str {
    // Errors from unary handlers are "trailers-only" responses: the status is in the headers.
    // A response without `grpc-status` in its headers carries it in trailers, which for our
    // unary handlers means success.
    let code = response
        .headers()
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i32>().ok())
        .map_or(tonic::Code::Ok, tonic::Code::from_i32);
    match code {
        tonic::Code::Ok => "OK",
        tonic::Code::Cancelled => "CANCELLED",
        tonic::Code::Unknown => "UNKNOWN",
        tonic::Code::InvalidArgument => "INVALID_ARGUMENT",
        tonic::Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        tonic::Code::NotFound => "NOT_FOUND",
        tonic::Code::AlreadyExists => "ALREADY_EXISTS",
        tonic::Code::PermissionDenied => "PERMISSION_DENIED",
        tonic::Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        tonic::Code::FailedPrecondition => "FAILED_PRECONDITION",
        tonic::Code::Aborted => "ABORTED",
        tonic::Code::OutOfRange => "OUT_OF_RANGE",
        tonic::Code::Unimplemented => "UNIMPLEMENTED",
        tonic::Code::Internal => "INTERNAL",
        tonic::Code::Unavailable => "UNAVAILABLE",
        tonic::Code::DataLoss => "DATA_LOSS",
        tonic::Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// One finished request: counted and timed (until its response headers) per method and
/// status code. Recorded by `middleware::observe` for every RPC.
pub fn grpc_request(method: &'static str, code: &'static str, took: Duration) {
    counter!(GRPC_REQUESTS, "method" => method, "code" => code).increment(1);
    histogram!(GRPC_DURATION, "method" => method, "code" => code).record(took.as_secs_f64());
}
