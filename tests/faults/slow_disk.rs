//! A slow disk: the server's writes (and so its fsyncs: SQLite commits with
//! `synchronous=FULL`) throttled to a few operations a second by a blkio cgroup
//! (`blkio.throttle.write_iops_device` on cgroup v1, `io.max` on v2) on the device holding the
//! database. Under a closed loop of 128 callers (who log in on the fast disk, then mostly
//! refresh on the slow one), the
//! hashing queue (`authd_argon2_queue_depth`, bounded by `hash_queue_max`) and the rotations
//! waiting for the writer (`authd_rotations_waiting`) must stay bounded, and so must the
//! server's resident memory, while the calls that cannot be served in time fail with a
//! clear status. Needs root and a blkio/io cgroup controller; skipped with a printed reason
//! otherwise.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tonic::Code;

use crate::harness::{self, Clients, Database, LoadShape, Tally};
use crate::invariants::{self, Limits};

const CALLERS: usize = 128;
/// Write operations per second the cgroup allows on the database's device.
const WRITE_IOPS: u32 = 20;
/// `hash_queue_max` in this run.
const HASH_QUEUE_MAX: f64 = 16.0;

/// A cgroup whose writes to one device are throttled; removed on drop (after its processes
/// have gone).
struct Throttle {
    dir: PathBuf,
    v2: bool,
}

impl Throttle {
    fn new(device: &Path) -> Result<Self, String> {
        let dev = std::fs::metadata(device).map_err(|e| e.to_string())?.dev();
        // Linux's encoding of dev_t.
        let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
        let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
        let name = format!("authd-faults-{}", std::process::id());
        let (dir, v2) = if Path::new("/sys/fs/cgroup/blkio").is_dir() {
            (Path::new("/sys/fs/cgroup/blkio").join(&name), false)
        } else if std::fs::read_to_string("/sys/fs/cgroup/cgroup.controllers")
            .is_ok_and(|c| c.split_whitespace().any(|c| c == "io"))
        {
            (Path::new("/sys/fs/cgroup").join(&name), true)
        } else {
            return Err("no blkio (v1) or io (v2) cgroup controller".into());
        };
        std::fs::create_dir(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let throttle = Self { dir, v2 };
        let (file, rule) = if v2 {
            ("io.max", format!("{major}:{minor} wiops={WRITE_IOPS}"))
        } else {
            (
                "blkio.throttle.write_iops_device",
                format!("{major}:{minor} {WRITE_IOPS}"),
            )
        };
        std::fs::write(throttle.dir.join(file), rule)
            .map_err(|e| format!("cannot throttle device {major}:{minor}: {e}"))?;
        Ok(throttle)
    }

    fn add(&self, pid: u32) {
        std::fs::write(self.dir.join("cgroup.procs"), pid.to_string()).unwrap();
    }

    /// Lifts the limit (the processes stay in the group).
    fn lift(&self) {
        let file = if self.v2 {
            "io.max"
        } else {
            "blkio.throttle.write_iops_device"
        };
        let rule = std::fs::read_to_string(self.dir.join(file)).unwrap_or_default();
        for line in rule.lines() {
            if let Some(device) = line.split_whitespace().next() {
                let lifted = if self.v2 {
                    format!("{device} wiops=max")
                } else {
                    format!("{device} 0")
                };
                let _ = std::fs::write(self.dir.join(file), lifted);
            }
        }
    }
}

impl Drop for Throttle {
    fn drop(&mut self) {
        self.lift();
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// One sample of the server's queues and memory.
#[derive(Debug, Default, Clone, Copy)]
struct Sample {
    hash_queue: f64,
    rotations_waiting: f64,
    rss_kib: u64,
}

async fn sample(http: &str, pid: u32) -> Sample {
    let metrics = reqwest::get(format!("http://{http}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let gauge = |name: &str| {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let rss_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    Sample {
        hash_queue: gauge("authd_argon2_queue_depth"),
        rotations_waiting: gauge("authd_rotations_waiting"),
        rss_kib,
    }
}

/// Runs the load for `length` over four connections (as clients behind a pool would; one
/// connection runs at most 64 calls at once), sampling every 200 ms; returns the samples.
async fn phase(
    server: &crate::binary::Server,
    shards: &[Arc<Mutex<Clients>>],
    tally: &Arc<Tally>,
    shape: LoadShape,
    length: Duration,
    seed: u64,
) -> Vec<Sample> {
    let stop = Arc::new(AtomicBool::new(false));
    let mut loads = Vec::new();
    for (n, shard) in shards.iter().enumerate() {
        let client = harness::connect(server).await;
        let (shard, tally, stop) = (Arc::clone(shard), Arc::clone(tally), stop.clone());
        loads.push(tokio::spawn(async move {
            harness::run_load(client, &shard, &tally, &stop, shape, seed + n as u64).await;
        }));
    }
    let mut samples = Vec::new();
    let started = Instant::now();
    while started.elapsed() < length {
        tokio::time::sleep(Duration::from_millis(200)).await;
        samples.push(sample(&server.http_addr, server.pid()).await);
    }
    stop.store(true, Ordering::SeqCst);
    for load in loads {
        load.await.unwrap();
    }
    samples
}

fn summary(samples: &[Sample]) -> (f64, f64, u64, u64) {
    let max = |f: fn(&Sample) -> f64| samples.iter().map(f).fold(0.0, f64::max);
    let rss_first = samples.first().map_or(0, |s| s.rss_kib);
    let rss_max = samples.iter().map(|s| s.rss_kib).max().unwrap_or(0);
    (
        max(|s| s.hash_queue),
        max(|s| s.rotations_waiting),
        rss_first,
        rss_max,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_disk_keeps_the_hashing_and_rotation_queues_bounded() {
    let _serial = harness::SERIAL.lock().await;
    let db = Database::sqlite_in(None);
    let path = db.sqlite_path().unwrap();
    let throttle = match Throttle::new(path.parent().unwrap()) {
        Ok(t) => t,
        Err(why) => {
            eprintln!("skipping slow disk: {why}");
            return;
        }
    };
    let env: Vec<(String, String)> = [("AUTHD_HASH_QUEUE_MAX", "16")]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    harness::add_users(db.url(), &env);
    let server = harness::start_server(db.url(), &env).await;
    let length = if harness::long() {
        Duration::from_secs(30)
    } else {
        Duration::from_secs(4)
    };
    let shards: Vec<_> = (0..4)
        .map(|_| Arc::new(Mutex::new(Clients::new(CALLERS / 4))))
        .collect();
    // Sessions start on the fast disk; on the slow one the callers mostly refresh.
    let logins = LoadShape { login_every: 2 };
    let refreshes = LoadShape { login_every: 50 };
    let fast = Arc::new(Tally::default());
    let fast_samples = phase(&server, &shards, &fast, logins, Duration::from_secs(2), 1).await;
    throttle.add(server.pid());
    let slow = Arc::new(Tally::default());
    let slow_samples = phase(&server, &shards, &slow, refreshes, length, 2).await;
    throttle.lift();
    let after = Arc::new(Tally::default());
    let after_samples = phase(
        &server,
        &shards,
        &after,
        refreshes,
        Duration::from_secs(2),
        3,
    )
    .await;
    let mut clients = Clients::new(0);
    for shard in &shards {
        let mut shard = shard.lock().unwrap();
        clients.abandoned.extend(shard.current.drain(..).flatten());
        clients.abandoned.append(&mut shard.abandoned);
    }

    for (what, samples) in [
        ("fast", &fast_samples),
        ("slow", &slow_samples),
        ("after", &after_samples),
    ] {
        let (hash, rotations, rss_first, rss_max) = summary(samples);
        assert!(hash <= HASH_QUEUE_MAX, "{what}: hashing queue {hash}");
        assert!(
            rotations <= CALLERS as f64,
            "{what}: {rotations} rotations waiting for {CALLERS} callers"
        );
        eprintln!(
            "[faults] slow disk, {what}: max hashing queue {hash} (bound {HASH_QUEUE_MAX}), max \
             rotations waiting {rotations}, RSS {rss_first} -> max {rss_max} KiB"
        );
    }
    // Calls the slow disk could not serve in time fail, and say so.
    let allowed = [
        Code::ResourceExhausted,
        Code::Unavailable,
        Code::DeadlineExceeded,
        Code::Cancelled,
    ];
    for (what, tally) in [("fast", &fast), ("slow", &slow), ("after", &after)] {
        let unexpected = tally.unexpected(&allowed);
        assert!(unexpected.is_empty(), "{what}: {:?}", tally.failed);
        harness::report(&format!("slow disk, {what}"), &db, tally, "");
    }
    drop(server);
    drop(throttle);
    let verdict = invariants::check(&db, &clients, Limits::default()).await;
    eprintln!("[faults] slow disk: {verdict}");
}
