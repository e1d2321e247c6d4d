//! `kill -9` of the server under mixed login/refresh load, restarted each time on the same
//! database: 5 kills in the short version, 100 in the long one, on SQLite and PostgreSQL.
//! A kill lands at a random moment (from the run's seed) while calls are in flight; the
//! clients keep the token they last received and present it again after the restart.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::harness::{self, Clients, Database, LoadShape, Rng, Tally};
use crate::invariants::{self, Limits};

const CLIENTS: usize = 8;

async fn kill_restart(db: Database, seed: u64) {
    let _serial = harness::SERIAL.lock().await;
    let kills = if harness::long() { 100 } else { 5 };
    let env = Vec::new();
    harness::add_users(db.url(), &env);
    let clients = Arc::new(Mutex::new(Clients::new(CLIENTS)));
    let tally = Arc::new(Tally::default());
    let mut rng = Rng::new(seed);
    let mut restarts = Vec::new();
    let mut in_flight_at_kill = 0;
    let started = Instant::now();
    for round in 0..kills {
        let restart = Instant::now();
        let server = harness::start_server(db.url(), &env).await;
        restarts.push(restart.elapsed());
        let client = harness::connect(&server).await;
        let stop = Arc::new(AtomicBool::new(false));
        let load = {
            let (clients, tally, stop) = (Arc::clone(&clients), Arc::clone(&tally), stop.clone());
            tokio::spawn(async move {
                harness::run_load(client, &clients, &tally, &stop, LoadShape::default(), seed)
                    .await;
            })
        };
        // Serve for 150-650 ms, then kill mid-load.
        tokio::time::sleep(Duration::from_millis(150 + rng.below(500))).await;
        let before = tally.failed_total();
        let mut server = server;
        server.kill();
        stop.store(true, Ordering::SeqCst);
        load.await.unwrap();
        in_flight_at_kill += tally.failed_total() - before;
        let unexpected = tally.unexpected(&[
            tonic::Code::Unavailable,
            tonic::Code::Unknown,
            tonic::Code::Cancelled,
        ]);
        assert!(
            unexpected.is_empty(),
            "round {round}: failures other than the kill's: {unexpected:?}"
        );
    }
    // A last restart: every client's last token still refreshes, and the database holds.
    let server = harness::start_server(db.url(), &env).await;
    let clients = std::mem::take(&mut *clients.lock().unwrap());
    let verdict = invariants::check(&db, &clients, Limits::default()).await;
    let refreshed = harness::last_tokens_refresh(&server, &clients).await;
    drop(server);
    let after = invariants::check(&db, &clients, Limits::default()).await;
    assert_eq!(after.revoked, 0, "no session was revoked: {after}");
    let mean_restart = restarts.iter().sum::<Duration>() / u32::try_from(restarts.len()).unwrap();
    let slowest = restarts.iter().max().unwrap();
    harness::report(
        &format!("kill -9 x{kills}"),
        &db,
        &tally,
        &format!(
            "; calls cut by the kills {in_flight_at_kill}; restart (start to serving) mean \
             {mean_restart:?}, slowest {slowest:?}; {refreshed} last tokens refreshed after \
             the last restart; {verdict}; total {:?}",
            started.elapsed()
        ),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_under_load_loses_nothing_sqlite() {
    kill_restart(Database::sqlite_in(None), 0x6b11).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_under_load_loses_nothing_postgres() {
    let Some(db) = Database::postgres("kill_9_under_load_loses_nothing_postgres").await else {
        return;
    };
    kill_restart(db, 0x6b12).await;
}
