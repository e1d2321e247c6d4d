//! PostgreSQL connections cut mid-transaction, under load. The server reaches PostgreSQL
//! through the test's TCP proxy (`tests/support/proxy.rs`); at random moments the proxy
//! either closes every relayed connection and leaves new ones unanswered (what a PostgreSQL
//! restart does to its clients: the machine's shared cluster is not restarted, other tests use
//! it) or goes silent (a partition), for 0.3-1 s, then comes back. Calls in between must fail
//! UNAVAILABLE; afterwards service resumes without a restart, and the invariants hold.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tonic::Code;

use crate::harness::{self, Clients, Database, LoadShape, Rng, Tally};
use crate::invariants::{self, Limits};
use crate::proxy::{Link, Proxy};

const CLIENTS: usize = 8;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_connections_cut_mid_transaction_fail_unavailable_and_recover() {
    let _serial = harness::SERIAL.lock().await;
    let Some(db) =
        Database::postgres("postgres_connections_cut_mid_transaction_fail_unavailable_and_recover")
            .await
    else {
        return;
    };
    let cuts = if harness::long() { 30 } else { 3 };
    harness::add_users(db.url(), &[]);
    let options: sqlx::postgres::PgConnectOptions = db.url().parse().unwrap();
    let proxy = Proxy::start(format!("{}:{}", options.get_host(), options.get_port())).await;
    let via_proxy = db.url().replacen(
        &format!(":{}/", options.get_port()),
        &format!(":{}/", proxy.port),
        1,
    );
    assert_ne!(via_proxy, db.url(), "the URL names the port explicitly");
    let server = harness::start_server(&via_proxy, &[]).await;
    let client = harness::connect(&server).await;
    let clients = Arc::new(Mutex::new(Clients::new(CLIENTS)));
    let tally = Arc::new(Tally::default());
    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let (clients, tally, stop) = (Arc::clone(&clients), Arc::clone(&tally), stop.clone());
        let client = client.clone();
        tokio::spawn(async move {
            harness::run_load(client, &clients, &tally, &stop, LoadShape::default(), 0xc07).await;
        })
    };
    let mut rng = Rng::new(0xc07);
    let mut recoveries = Vec::new();
    let mut failed_during = 0;
    for cut in 0..cuts {
        tokio::time::sleep(Duration::from_millis(200 + rng.below(400))).await;
        let how = if cut % 2 == 0 {
            Link::Closed
        } else {
            Link::Silent
        };
        let failed_before = tally.failed_total();
        proxy.set(how);
        tokio::time::sleep(Duration::from_millis(300 + rng.below(700))).await;
        proxy.set(Link::Up);
        let up = Instant::now();
        let recovered = harness::time_to_recover(Duration::from_secs(30), || {
            let client = client.clone();
            async move { harness::probe_login(&client).await.is_ok() }
        })
        .await;
        failed_during += tally.failed_total() - failed_before;
        recoveries.push((how, recovered));
        eprintln!(
            "[faults] cut {cut} ({how:?}): recovered {recovered:?} after the link came back (since up: {:?})",
            up.elapsed()
        );
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::SeqCst);
    load.await.unwrap();
    let unexpected = tally.unexpected(&[Code::Unavailable]);
    assert!(
        unexpected.is_empty(),
        "with the database cut off every failure is UNAVAILABLE: {:?}",
        tally.failed
    );
    let clients = std::mem::take(&mut *clients.lock().unwrap());
    let verdict = invariants::check(&db, &clients, Limits::default()).await;
    let refreshed = harness::last_tokens_refresh(&server, &clients).await;
    drop(server);
    let after = invariants::check(&db, &clients, Limits::default()).await;
    assert_eq!(after.revoked, 0, "{after}");
    let slowest = recoveries.iter().map(|(_, d)| *d).max().unwrap();
    harness::report(
        &format!("PostgreSQL cut x{cuts}"),
        &db,
        &tally,
        &format!(
            "; {failed_during} calls failed during the cuts; slowest recovery {slowest:?}; \
             {refreshed} last tokens refreshed; {verdict}"
        ),
    );
}
