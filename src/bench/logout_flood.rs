//! The `logout-flood` scenario (issue 16): does a stream of garbage Logouts from one source
//! slow down other clients' refreshes? It runs the `refresh` load twice, back to back and for
//! the same duration: alone, then beside a stream of Logouts of tokens that exist nowhere,
//! paced at a target rate (1,000/s by default) over a connection of its own. Half of them are
//! refresh tokens of the real shape (freshly random, so never stored), half malformed strings.
//! It reports both refresh rates and the rate the flood reached, with its answers by code.
//!
//! Run the server with `per_source_rate = 0` for the worst case: with the per-source limit on
//! (the default), a flood from one address is refused by the limiter before any handler runs.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::{Mutex, Semaphore};
use tokio_util::sync::CancellationToken;

use super::{BenchConfig, BenchError, Operation, Report, connect};
use authd::crypto::refresh_token::RefreshToken;
use authd::domain::{Clock, SystemClock};
use authd::grpc::AuthServiceClient;
use authd::grpc::pb;

/// Garbage Logouts per second when `--garbage-rate` is not given.
pub const DEFAULT_GARBAGE_RATE: u32 = 1000;
/// The flood sends a tick's worth of Logouts at once, every tick.
const TICK: Duration = Duration::from_millis(10);
/// Logouts of the flood in flight at most; a tick finding no room skips its requests (counted).
const MAX_IN_FLIGHT: usize = 512;

/// What the flood did.
#[derive(Debug, Clone)]
pub struct FloodStats {
    pub target_rate: u32,
    /// Logouts sent (answered, whatever the answer).
    pub sent: u64,
    /// Logouts not sent because `MAX_IN_FLIGHT` were still unanswered: the server fell behind.
    pub skipped: u64,
    pub elapsed: Duration,
    /// Answers by gRPC code (`Ok`, `InvalidArgument`, …).
    pub by_code: BTreeMap<String, u64>,
}

impl FloodStats {
    /// Logouts answered per second.
    pub fn rate(&self) -> f64 {
        per_second(self.sent, self.elapsed)
    }
}

/// Both runs and the flood.
#[derive(Debug)]
pub struct FloodReport {
    pub alone: Report,
    pub flooded: Report,
    pub flood: FloodStats,
}

impl FloodReport {
    /// Refreshes per second: alone, then beside the flood.
    pub fn refresh_rates(&self) -> (f64, f64) {
        let rate = |r: &Report| r.operations.get(&Operation::Refresh).map_or(0.0, |s| s.rps);
        (rate(&self.alone), rate(&self.flooded))
    }

    /// The refresh rate's change under the flood, in percent (negative: slower).
    pub fn refresh_change_percent(&self) -> f64 {
        let (alone, flooded) = self.refresh_rates();
        if alone > 0.0 {
            (flooded - alone) / alone * 100.0
        } else {
            0.0
        }
    }

    pub fn to_json(&self) -> Value {
        let (alone, flooded) = self.refresh_rates();
        json!({
            "scenario": "logout-flood",
            "refresh_rps_alone": alone,
            "refresh_rps_flooded": flooded,
            "refresh_change_percent": self.refresh_change_percent(),
            "garbage_logouts": {
                "target_rps": self.flood.target_rate,
                "rps": self.flood.rate(),
                "sent": self.flood.sent,
                "skipped": self.flood.skipped,
                "by_code": self.flood.by_code,
            },
            "alone": self.alone.to_json(),
            "flooded": self.flooded.to_json(),
        })
    }
}

impl std::fmt::Display for FloodReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "== refresh alone")?;
        write!(f, "{}", self.alone)?;
        writeln!(f, "== refresh beside the garbage-Logout flood")?;
        write!(f, "{}", self.flooded)?;
        let (alone, flooded) = self.refresh_rates();
        writeln!(
            f,
            "garbage Logouts: {:.0}/s answered (target {}/s; {} sent, {} skipped: server behind), answers {:?}",
            self.flood.rate(),
            self.flood.target_rate,
            self.flood.sent,
            self.flood.skipped,
            self.flood.by_code
        )?;
        writeln!(
            f,
            "refresh: {alone:.0}/s alone, {flooded:.0}/s beside the flood ({:+.1}%)",
            self.refresh_change_percent()
        )
    }
}

fn per_second(n: u64, elapsed: Duration) -> f64 {
    let secs = elapsed.as_secs_f64();
    if secs > 0.0 { n as f64 / secs } else { 0.0 }
}

/// Runs `alone` (a `refresh` load), then `flooded` (the same load) beside a garbage-Logout
/// flood at `rate` per second, which starts with the second run's setup and stops with it.
///
/// # Errors
/// As [`super::run`]; and when the flood's connection cannot be made.
pub async fn run_logout_flood(
    alone: BenchConfig,
    flooded: BenchConfig,
    rate: u32,
) -> Result<FloodReport, BenchError> {
    let alone = super::run(alone).await?;
    let channel = connect(&flooded.addr).await?;
    let stop = CancellationToken::new();
    let flood = tokio::spawn(flood(AuthServiceClient::new(channel), rate, stop.clone()));
    let flooded = super::run(flooded).await;
    stop.cancel();
    let flood = flood.await?;
    Ok(FloodReport {
        alone,
        flooded: flooded?,
        flood,
    })
}

/// Sends `rate` garbage Logouts per second until `stop`, then waits for the answers.
async fn flood(
    client: AuthServiceClient<tonic::transport::Channel>,
    rate: u32,
    stop: CancellationToken,
) -> FloodStats {
    let per_tick = (f64::from(rate) * TICK.as_secs_f64()).round().max(1.0) as u64;
    let in_flight = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let sent = Arc::new(AtomicU64::new(0));
    let by_code = Arc::new(Mutex::new(BTreeMap::<String, u64>::new()));
    let mut skipped = 0;
    let mut n: u64 = 0;
    let started = Instant::now();
    let mut ticks = tokio::time::interval(TICK);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            _ = ticks.tick() => {}
        }
        for _ in 0..per_tick {
            let Ok(permit) = Arc::clone(&in_flight).try_acquire_owned() else {
                skipped += 1;
                continue;
            };
            n += 1;
            let request = garbage(n);
            let (mut client, sent, by_code) =
                (client.clone(), Arc::clone(&sent), Arc::clone(&by_code));
            tokio::spawn(async move {
                let code = match client.logout(request).await {
                    Ok(_) => tonic::Code::Ok,
                    Err(status) => status.code(),
                };
                sent.fetch_add(1, Ordering::Relaxed);
                *by_code.lock().await.entry(format!("{code:?}")).or_default() += 1;
                drop(permit);
            });
        }
    }
    // Wait for the answers still on their way.
    let _ = in_flight.acquire_many(MAX_IN_FLIGHT as u32).await;
    let by_code = by_code.lock().await.clone();
    FloodStats {
        target_rate: rate,
        sent: sent.load(Ordering::Relaxed),
        skipped,
        elapsed: started.elapsed(),
        by_code,
    }
}

/// The `n`th garbage Logout: a never-issued refresh token of the real shape, or a malformed one.
fn garbage(n: u64) -> pb::LogoutRequest {
    let refresh_token = if n.is_multiple_of(2) {
        RefreshToken::generate(SystemClock.now())
            .map(|t| t.expose())
            .unwrap_or_default()
    } else {
        format!("garbage-{n}")
    };
    pb::LogoutRequest {
        refresh_token,
        access_token: String::new(),
    }
}
