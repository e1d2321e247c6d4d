//! The figures of one `authd bench` run: totals, per-operation latency percentiles, errors by
//! status code and the server's memory, as a text table or one JSON object.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde_json::{Value, json};

use super::{LoginLimit, Operation, Protocol, RssSample, Scenario, Tally};

/// Latency and outcome figures of one operation (or of all operations together).
#[derive(Debug, Clone, PartialEq)]
pub struct OpStats {
    pub requests: u64,
    pub errors: u64,
    pub rps: f64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl OpStats {
    fn new(latencies: &Histogram<u64>, errors: u64, elapsed: Duration) -> Self {
        let ms = |micros: u64| micros as f64 / 1000.0;
        let requests = latencies.len();
        let secs = elapsed.as_secs_f64();
        Self {
            requests,
            errors,
            rps: if secs > 0.0 {
                requests as f64 / secs
            } else {
                0.0
            },
            mean_ms: latencies.mean() / 1000.0,
            p50_ms: ms(latencies.value_at_quantile(0.50)),
            p90_ms: ms(latencies.value_at_quantile(0.90)),
            p99_ms: ms(latencies.value_at_quantile(0.99)),
            max_ms: ms(latencies.max()),
        }
    }

    fn json(&self) -> Value {
        json!({
            "requests": self.requests,
            "errors": self.errors,
            "rps": round(self.rps),
            "mean_ms": round(self.mean_ms),
            "p50_ms": round(self.p50_ms),
            "p90_ms": round(self.p90_ms),
            "p99_ms": round(self.p99_ms),
            "max_ms": round(self.max_ms),
        })
    }
}

/// Three decimals are plenty for milliseconds and requests per second.
fn round(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// The server's resident memory around the run, when its pid was given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerMemory {
    /// After setup, before the measured requests.
    pub before: Option<RssSample>,
    /// The highest RSS sampled during the run.
    pub max_sampled: Option<RssSample>,
    /// RSS at the start of the run and every tenth of it: time since the start, and RSS.
    pub timeline: Vec<(Duration, RssSample)>,
    /// The same, denser ([`super::rss::TRACE_POINTS`] over the run), for `--memory-svg`.
    pub trace: Vec<(Duration, RssSample)>,
    /// After the last request.
    pub after: Option<RssSample>,
}

/// The figures of one run.
#[derive(Debug, Clone)]
pub struct Report {
    pub scenario: Scenario,
    /// What the requests were sent over.
    pub protocol: Protocol,
    pub concurrency: usize,
    pub connections: usize,
    pub elapsed: Duration,
    /// All operations together.
    pub total: OpStats,
    /// Each operation that was sent at least once.
    pub operations: BTreeMap<Operation, OpStats>,
    /// Failed requests by gRPC status code name, all operations together.
    pub errors_by_code: BTreeMap<String, u64>,
    pub server_memory: ServerMemory,
    /// The argon2id limit measured before a login run, to compare logins/s with.
    pub login_limit: Option<LoginLimit>,
}

impl Report {
    pub(super) fn new(
        scenario: Scenario,
        concurrency: usize,
        connections: usize,
        elapsed: Duration,
        tally: &Tally,
        server_memory: ServerMemory,
    ) -> Self {
        let mut combined = Histogram::clone(tally.histogram(Operation::Health));
        let mut errors_by_code = BTreeMap::new();
        let mut operations = BTreeMap::new();
        for op in Operation::ALL {
            let latencies = tally.histogram(op);
            let errors = tally.errors(op);
            if op != Operation::Health {
                // Same bounds, so adding cannot fail.
                let _ = combined.add(latencies);
            }
            for (code, n) in errors {
                *errors_by_code.entry(code.clone()).or_default() += n;
            }
            if !latencies.is_empty() {
                operations.insert(op, OpStats::new(latencies, errors.values().sum(), elapsed));
            }
        }
        let total = OpStats::new(&combined, errors_by_code.values().sum(), elapsed);
        Self {
            scenario,
            protocol: Protocol::Grpc,
            concurrency,
            connections,
            elapsed,
            total,
            operations,
            errors_by_code,
            server_memory,
            login_limit: None,
        }
    }

    /// Logins/s of this run divided by the argon2id limit, when both are known.
    pub fn login_ratio_to_limit(&self) -> Option<f64> {
        self.login_ratio(self.login_limit?.logins_per_s())
    }

    /// Logins/s of this run divided by what all cores verified together, when both are known.
    pub fn login_ratio_to_all_cores(&self) -> Option<f64> {
        self.login_ratio(self.login_limit?.all_cores_per_s)
    }

    fn login_ratio(&self, limit: f64) -> Option<f64> {
        let logins = self.operations.get(&Operation::Login)?;
        (limit > 0.0).then(|| logins.rps / limit)
    }

    /// One JSON object: `scenario`, `requests`, `errors`, `rps`, `p50_ms`, `p90_ms`, `p99_ms`,
    /// `max_ms` for all operations together, then the details. Scripts depend on these keys.
    pub fn to_json(&self) -> Value {
        let mut object = json!({
            "scenario": self.scenario.as_str(),
            "protocol": self.protocol.as_str(),
            "concurrency": self.concurrency,
            "connections": self.connections,
            "elapsed_s": round(self.elapsed.as_secs_f64()),
            "errors_by_code": self.errors_by_code,
            "operations": self
                .operations
                .iter()
                .map(|(op, stats)| (op.as_str().to_owned(), stats.json()))
                .collect::<serde_json::Map<_, _>>(),
        });
        if let (Value::Object(object), Value::Object(total)) = (&mut object, self.total.json()) {
            object.extend(total);
            let memory = [
                ("server_rss_before_kib", self.server_memory.before),
                ("server_rss_max_kib", self.server_memory.max_sampled),
                ("server_rss_after_kib", self.server_memory.after),
            ];
            for (key, sample) in memory {
                if let Some(sample) = sample {
                    object.insert(key.into(), sample.rss_kib.into());
                }
            }
            if let Some(hwm) = self.server_memory.after.and_then(|s| s.peak_kib) {
                object.insert("server_rss_peak_kib".into(), hwm.into());
            }
            // The split of the highest sample: the server's own memory, and mapped files.
            if let Some(max) = self.server_memory.max_sampled {
                for (key, kib) in [
                    ("server_rss_max_anon_kib", max.anon_kib),
                    ("server_rss_max_file_kib", max.file_kib),
                ] {
                    if let Some(kib) = kib {
                        object.insert(key.into(), kib.into());
                    }
                }
            }
            if !self.server_memory.timeline.is_empty() {
                let timeline: Vec<Value> = self
                    .server_memory
                    .timeline
                    .iter()
                    .map(|(at, sample)| {
                        json!({
                            "t_s": round(at.as_secs_f64()),
                            "rss_kib": sample.rss_kib,
                            "anon_kib": sample.anon_kib,
                        })
                    })
                    .collect();
                object.insert("server_rss_timeline".into(), timeline.into());
            }
            if let Some(limit) = self.login_limit {
                object.insert(
                    "argon2_single_core_per_s".into(),
                    round(limit.single_core_per_s).into(),
                );
                object.insert("cores".into(), limit.cores.into());
                object.insert("login_limit_rps".into(), round(limit.logins_per_s()).into());
                if let Some(ratio) = self.login_ratio_to_limit() {
                    object.insert("login_ratio_to_limit".into(), round(ratio).into());
                }
                object.insert(
                    "argon2_all_cores_per_s".into(),
                    round(limit.all_cores_per_s).into(),
                );
                if let Some(ratio) = self.login_ratio_to_all_cores() {
                    object.insert("login_ratio_to_all_cores".into(), round(ratio).into());
                }
            }
        }
        object
    }
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} over {}: {} requests in {:.2} s = {:.1} requests/s, {} errors \
             (concurrency {}, {} connections)",
            self.scenario.as_str(),
            self.protocol.as_str(),
            self.total.requests,
            self.elapsed.as_secs_f64(),
            self.total.rps,
            self.total.errors,
            self.concurrency,
            self.connections,
        )?;
        writeln!(
            f,
            "  {:<9} {:>9} {:>11} {:>8} {:>8} {:>8} {:>8} {:>8}",
            "operation",
            "requests",
            "requests/s",
            "mean ms",
            "p50 ms",
            "p90 ms",
            "p99 ms",
            "max ms"
        )?;
        for (op, s) in &self.operations {
            writeln!(
                f,
                "  {:<9} {:>9} {:>11.1} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>8.2}",
                op.as_str(),
                s.requests,
                s.rps,
                s.mean_ms,
                s.p50_ms,
                s.p90_ms,
                s.p99_ms,
                s.max_ms
            )?;
        }
        if !self.errors_by_code.is_empty() {
            let errors: Vec<String> = self
                .errors_by_code
                .iter()
                .map(|(code, n)| format!("{code} {n}"))
                .collect();
            writeln!(f, "  errors: {}", errors.join(", "))?;
        }
        let m = &self.server_memory;
        if let Some(after) = m.after {
            write!(f, "  server RSS: ")?;
            if let Some(before) = m.before {
                write!(f, "{:.1} MiB before, ", mib(before.rss_kib))?;
            }
            if let Some(max) = m.max_sampled {
                write!(f, "{:.1} MiB max sampled", mib(max.rss_kib))?;
                if let (Some(anon), Some(file)) = (max.anon_kib, max.file_kib) {
                    write!(f, " ({:.1} own + {:.1} files)", mib(anon), mib(file))?;
                }
                write!(f, ", ")?;
            }
            write!(f, "{:.1} MiB after", mib(after.rss_kib))?;
            if let Some(peak) = after.peak_kib {
                write!(f, " (peak since start {:.1} MiB)", mib(peak))?;
            }
            writeln!(f)?;
        }
        if !m.timeline.is_empty() {
            // The server's own memory where the kernel reports it (mapped files do not grow
            // with load), else the whole RSS.
            let points: Vec<String> = m
                .timeline
                .iter()
                .map(|(at, s)| {
                    format!(
                        "{:.0}s {:.1}",
                        at.as_secs_f64(),
                        mib(s.anon_kib.unwrap_or(s.rss_kib))
                    )
                })
                .collect();
            let what = if m.timeline.iter().all(|(_, s)| s.anon_kib.is_some()) {
                "own memory"
            } else {
                "RSS"
            };
            writeln!(f, "  server {what} over time (MiB): {}", points.join(", "))?;
        }
        if let Some(limit) = self.login_limit {
            write!(
                f,
                "  argon2id limit: {:.1} verifications/s on one core (m={} KiB, t={}, p={}) \
                 x {} cores = {:.1} logins/s",
                limit.single_core_per_s,
                limit.params.memory_kib,
                limit.params.iterations,
                limit.params.parallelism,
                limit.cores,
                limit.logins_per_s()
            )?;
            if let Some(ratio) = self.login_ratio_to_limit() {
                write!(f, "; this run reached {:.1}% of it", ratio * 100.0)?;
            }
            writeln!(f)?;
            write!(
                f,
                "  all {} cores verifying at once: {:.1} verifications/s",
                limit.cores, limit.all_cores_per_s
            )?;
            if let Some(ratio) = self.login_ratio_to_all_cores() {
                write!(f, "; this run reached {:.1}% of it", ratio * 100.0)?;
            }
            writeln!(f)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_carries_the_documented_keys() {
        let mut tally = Tally::new();
        tally.record(Operation::Login, Duration::from_millis(30), Ok(()));
        tally.record(Operation::Refresh, Duration::from_millis(1), Ok(()));
        tally.record(
            Operation::Refresh,
            Duration::from_millis(2),
            Err(tonic::Code::Unauthenticated),
        );
        let report = Report::new(
            Scenario::Mixed,
            2,
            1,
            Duration::from_secs(1),
            &tally,
            ServerMemory::default(),
        );
        let json = report.to_json();
        for key in [
            "scenario", "requests", "errors", "rps", "p50_ms", "p90_ms", "p99_ms", "max_ms",
        ] {
            assert!(json.get(key).is_some(), "missing {key}");
        }
        assert_eq!(json["scenario"], "mixed");
        assert_eq!(json["requests"], 3);
        assert_eq!(json["errors"], 1);
        assert_eq!(json["errors_by_code"]["Unauthenticated"], 1);
        assert_eq!(json["operations"]["refresh"]["requests"], 2);
        assert_eq!(json["operations"]["login"]["errors"], 0);
        assert!(json["max_ms"].as_f64().unwrap() >= 30.0);
    }
}
