//! Time from process start to the first answered request: starts `authd serve` as a child
//! process, polls its health check until it answers, and stops it; repeated, on the same
//! (by then existing) database.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tonic::transport::Endpoint;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

use super::BenchError;

/// A server that has not answered by then counts as failed to start.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// Pause between connection attempts while the server starts.
const POLL_EVERY: Duration = Duration::from_millis(1);

/// Startup times of several runs, in milliseconds, sorted.
#[derive(Debug, Clone, PartialEq)]
pub struct StartupReport {
    pub runs_ms: Vec<f64>,
}

impl StartupReport {
    pub fn min_ms(&self) -> f64 {
        self.runs_ms.first().copied().unwrap_or(0.0)
    }

    pub fn median_ms(&self) -> f64 {
        self.runs_ms
            .get(self.runs_ms.len() / 2)
            .copied()
            .unwrap_or(0.0)
    }

    pub fn max_ms(&self) -> f64 {
        self.runs_ms.last().copied().unwrap_or(0.0)
    }
}

/// Kills the child when dropped, so an error never leaves a server behind.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What a server started by `bench startup` is given besides `serve` and its addresses: the
/// global options as arguments, and settings that may be secret (the database URL) in its
/// environment, since any user of the machine can read a process's command line.
#[derive(Default)]
pub struct ServerSetup {
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
}

impl std::fmt::Debug for ServerSetup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.env.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("ServerSetup")
            .field("args", &self.args)
            .field("env", &names)
            .finish()
    }
}

/// Starts `exe serve --grpc-addr 127.0.0.1:PORT <setup.args>` (with `setup.env`) `runs + 1` times (the first run
/// creates the database and is not counted) and measures, each time, from just before the
/// process is spawned to the first successful `grpc.health.v1.Health/Check`.
///
/// # Errors
/// When the server cannot be spawned or does not answer within 30 s.
pub async fn measure_startup(
    exe: &Path,
    setup: &ServerSetup,
    runs: usize,
) -> Result<StartupReport, BenchError> {
    let mut runs_ms = Vec::with_capacity(runs);
    for run in 0..=runs {
        // Reserve a free port, release it, and hand it to the server.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(BenchError::Spawn)?
            .port();
        let addr = format!("127.0.0.1:{port}");
        let started = Instant::now();
        let server = Server(
            Command::new(exe)
                .arg("serve")
                .args(["--grpc-addr", &addr, "--http-addr", "127.0.0.1:0"])
                .args(["--management-addr", "off"])
                .args(&setup.args)
                .envs(setup.env.iter().map(|(k, v)| (k, v)))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(BenchError::Spawn)?,
        );
        wait_until_serving(&addr, started).await?;
        let elapsed = started.elapsed();
        drop(server);
        if run > 0 {
            runs_ms.push(elapsed.as_secs_f64() * 1000.0);
        }
    }
    runs_ms.sort_by(f64::total_cmp);
    Ok(StartupReport { runs_ms })
}

async fn wait_until_serving(addr: &str, started: Instant) -> Result<(), BenchError> {
    let endpoint = Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|_| BenchError::Address(addr.to_owned()))?
        .tcp_nodelay(true);
    while started.elapsed() < READY_TIMEOUT {
        if let Ok(channel) = endpoint.connect().await {
            let answered = HealthClient::new(channel)
                .check(HealthCheckRequest {
                    service: String::new(),
                })
                .await;
            if answered.is_ok() {
                return Ok(());
            }
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
    Err(BenchError::NeverReady(READY_TIMEOUT))
}
