//! The disk fills up under load. SQLite lives on a 96 MiB tmpfs the test mounts (it must run
//! as root, as it does here and in CI); a file filling the rest of the mount is written while
//! the clients log in and refresh. Calls must then fail UNAVAILABLE (never a success that was
//! not stored, never another status), the server must stay up, the database must pass
//! `PRAGMA integrity_check` and the invariants, and service must resume once the file is
//! deleted. Without root the test tries the other way the issue names, a file-size limit
//! (RLIMIT_FSIZE) lowered on the running server, and skips with a printed reason if neither
//! can be set up. `AUTHD_FAULTS_DISK=fsize` forces the second way.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tonic::Code;

use crate::binary::Server;
use crate::harness::{self, Clients, Database, LoadShape, Tally};
use crate::invariants::{self, Limits};

const CLIENTS: usize = 8;
/// Room for the WAL, which grows up to 64 MiB before SQLite starts it over
/// (`wal_autocheckpoint`): on a smaller mount the WAL alone fills the disk under load.
const MOUNT_SIZE: &str = "96m";

/// A tmpfs mounted for the test, unmounted on drop.
struct Mount {
    dir: tempfile::TempDir,
}

impl Mount {
    fn new() -> Result<Self, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={MOUNT_SIZE}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "mount -t tmpfs failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(Self { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

/// How the test takes the space away and gives it back.
enum Filler {
    /// A file filling the tmpfs.
    File(PathBuf),
    /// The server's RLIMIT_FSIZE, lowered to the size of its largest file.
    SizeLimit(u32),
}

impl Filler {
    /// Takes the space away; returns the bytes written (or the limit set).
    fn fill(&self, db: &Path) -> u64 {
        match self {
            Self::File(path) => {
                let mut file = std::fs::File::create(path).unwrap();
                let chunk = vec![0xA5u8; 64 * 1024];
                let mut written = 0u64;
                // Until the mount is full: ENOSPC.
                while let Ok(n) = file.write(&chunk) {
                    if n == 0 {
                        break;
                    }
                    written += n as u64;
                }
                let _ = file.sync_all();
                written
            }
            Self::SizeLimit(pid) => {
                let largest = ["", "-wal", "-shm"]
                    .iter()
                    .filter_map(|s| std::fs::metadata(format!("{}{s}", db.display())).ok())
                    .map(|m| m.len())
                    .max()
                    .unwrap();
                set_file_size_limit(*pid, largest);
                largest
            }
        }
    }

    fn free(&self) {
        match self {
            Self::File(path) => std::fs::remove_file(path).unwrap(),
            Self::SizeLimit(pid) => set_file_size_limit(*pid, rlimit::INFINITY),
        }
    }
}

/// Sets the soft RLIMIT_FSIZE of process `pid` (the hard limit stays).
fn set_file_size_limit(pid: u32, soft: u64) {
    let pid = i32::try_from(pid).unwrap();
    let (mut old_soft, mut hard) = (0, 0);
    rlimit::prlimit(
        pid,
        rlimit::Resource::FSIZE,
        None,
        Some((&mut old_soft, &mut hard)),
    )
    .unwrap();
    rlimit::prlimit(pid, rlimit::Resource::FSIZE, Some((soft, hard)), None).unwrap();
}

/// The server, for the file-size way: through `sh`, which ignores SIGXFSZ (the signal a write
/// past the limit sends, which would kill the server; ignored, the write fails with EFBIG) and
/// keeps the process id with `exec`.
fn server_command(url: &str) -> Command {
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c")
        .arg("trap '' XFSZ; exec \"$0\" \"$@\"")
        .arg(env!("CARGO_BIN_EXE_authd"));
    let template = harness::authd(url, &[]);
    cmd.env_clear();
    for (k, v) in template.get_envs() {
        if let Some(v) = v {
            cmd.env(k, v);
        }
    }
    cmd
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disk_full_fails_unavailable_corrupts_nothing_and_recovers() {
    let _serial = harness::SERIAL.lock().await;
    let forced = std::env::var("AUTHD_FAULTS_DISK").is_ok_and(|v| v == "fsize");
    let mount = if forced {
        Err("AUTHD_FAULTS_DISK=fsize".to_owned())
    } else {
        Mount::new()
    };
    let (db, way) = match &mount {
        Ok(mount) => (Database::sqlite_in(Some(mount.path())), "tmpfs of 96 MiB"),
        Err(why) => {
            eprintln!("disk full: no tmpfs ({why}); using RLIMIT_FSIZE on the server");
            (Database::sqlite_in(None), "RLIMIT_FSIZE")
        }
    };
    let path = db.sqlite_path().unwrap();
    harness::add_users(db.url(), &[]);
    let server = match &mount {
        Ok(_) => harness::start_server(db.url(), &[]).await,
        Err(_) => harness::start_command(server_command(db.url())).await,
    };
    let filler = match &mount {
        Ok(mount) => Filler::File(mount.path().join("filler")),
        Err(_) => {
            let probe = rlimit::prlimit(
                i32::try_from(server.pid()).unwrap(),
                rlimit::Resource::FSIZE,
                None,
                Some((&mut 0, &mut 0)),
            );
            if let Err(e) = probe {
                eprintln!("skipping disk_full: neither a tmpfs nor RLIMIT_FSIZE ({e})");
                return;
            }
            Filler::SizeLimit(server.pid())
        }
    };
    let rounds = if harness::long() { 5 } else { 1 };
    let clients = Arc::new(Mutex::new(Clients::new(CLIENTS)));
    let full_tally = Arc::new(Tally::default());
    let mut figures = Vec::new();
    for round in 0..rounds {
        let tally = Arc::new(Tally::default());
        let client = harness::connect(&server).await;
        let stop = Arc::new(AtomicBool::new(false));
        let load = spawn_load(client.clone(), &clients, &tally, &stop, round);
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(tally.failed_total(), 0, "{:?}", tally.failed);
        let served_before = tally.served();

        // Full: wait (up to 60 s) for the first failure, then keep the load on for a second.
        let filled = filler.fill(&path);
        let full_at = Instant::now();
        while tally.failed_total() == 0 {
            assert!(
                full_at.elapsed() < Duration::from_secs(60),
                "no call failed within 60 s of the disk filling up ({} served)",
                tally.served()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let first_failure = full_at.elapsed();
        tokio::time::sleep(Duration::from_secs(1)).await;
        stop.store(true, Ordering::SeqCst);
        load.await.unwrap();
        let served_full = tally.served() - served_before;
        let failed_full = tally.failed_total();
        let unexpected = tally.unexpected(&[Code::Unavailable]);
        assert!(
            unexpected.is_empty(),
            "with the disk full every failure is UNAVAILABLE: {:?}",
            tally.failed
        );
        // Space returns: the next call succeeds without a restart.
        filler.free();
        let recovered = harness::time_to_recover(Duration::from_secs(30), || {
            let client = client.clone();
            async move { harness::probe_login(&client).await.is_ok() }
        })
        .await;
        let tally_after = Arc::new(Tally::default());
        let stop = Arc::new(AtomicBool::new(false));
        let load = spawn_load(client.clone(), &clients, &tally_after, &stop, round + 100);
        tokio::time::sleep(Duration::from_millis(500)).await;
        stop.store(true, Ordering::SeqCst);
        load.await.unwrap();
        assert_eq!(
            tally_after.failed_total(),
            0,
            "after recovery: {:?}",
            tally_after.failed
        );
        let line = format!(
            "round {round}: {filled} bytes of filler; first failure {first_failure:?} after \
             filling; while full {served_full} served, {failed_full} failed (all UNAVAILABLE); \
             recovered {recovered:?} after the space returned; {} served after",
            tally_after.served()
        );
        eprintln!("[faults] disk full {line}");
        figures.push(line);
        merge(&full_tally, &tally);
        merge(&full_tally, &tally_after);
    }
    let clients = std::mem::take(&mut *clients.lock().unwrap());
    let verdict = invariants::check(&db, &clients, Limits::default()).await;
    drop(server);
    let server: Server = harness::start_server(db.url(), &[]).await;
    let refreshed = harness::last_tokens_refresh(&server, &clients).await;
    drop(server);
    let after = invariants::check(&db, &clients, Limits::default()).await;
    assert_eq!(after.revoked, 0, "{after}");
    harness::report(
        &format!("disk full ({way}) x{rounds}"),
        &db,
        &full_tally,
        &format!(
            "; integrity_check ok; {refreshed} last tokens refreshed after a restart; {verdict}"
        ),
    );
    drop(db);
    drop(mount);
}

fn spawn_load(
    client: authd::grpc::AuthServiceClient<tonic::transport::Channel>,
    clients: &Arc<Mutex<Clients>>,
    tally: &Arc<Tally>,
    stop: &Arc<AtomicBool>,
    seed: u64,
) -> tokio::task::JoinHandle<()> {
    let (clients, tally, stop) = (Arc::clone(clients), Arc::clone(tally), Arc::clone(stop));
    tokio::spawn(async move {
        harness::run_load(client, &clients, &tally, &stop, LoadShape::default(), seed).await;
    })
}

fn merge(into: &Tally, from: &Tally) {
    into.logins
        .fetch_add(from.logins.load(Ordering::Relaxed), Ordering::Relaxed);
    into.refreshes
        .fetch_add(from.refreshes.load(Ordering::Relaxed), Ordering::Relaxed);
    let mut failed = into.failed.lock().unwrap();
    for (code, n) in from.failed.lock().unwrap().iter() {
        *failed.entry(code.clone()).or_default() += n;
    }
}
