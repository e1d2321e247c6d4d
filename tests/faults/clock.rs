//! The wall clock jumps forwards and backwards by minutes between requests. The server runs
//! under libfaketime (`apt-get install faketime`), whose offset the test rewrites in a file
//! (`FAKETIME_TIMESTAMP_FILE`, read on every call with `FAKETIME_NO_CACHE`); the monotonic
//! clock is left alone (`FAKETIME_DONT_FAKE_MONOTONIC`), as an NTP step would leave it. Short
//! limits make minutes matter: access tokens 1 min, refresh tokens 3 min idle, sessions 6 min.
//!
//! After each jump a login must carry the jumped time (`iat`), or the fault did not happen.
//! Every access token received must have `exp - iat` of exactly 1 min; the database must show
//! every token living 3 min and every session 6 min from their own issue time, and no token
//! rotated at or after its own or its session's end by the server's clock. Refusals (the
//! clock jumped past an end) must be explained by an end the server's clock reached.
//! Skipped with a printed reason when libfaketime is not installed.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tonic::Code;

use crate::harness::{self, Clients, Database, LoadShape, Rng, Tally};
use crate::invariants::{self, Limits};

const CLIENTS: usize = 8;
const ACCESS_TTL: Duration = Duration::from_secs(60);
const REFRESH_TTL: Duration = Duration::from_secs(180);
const MAX_LIFETIME: Duration = Duration::from_secs(360);
/// Where Debian's libfaketime package puts the library (the multi-threaded variant).
const LIBFAKETIME: [&str; 2] = [
    "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1",
    "/usr/lib/aarch64-linux-gnu/faketime/libfaketimeMT.so.1",
];

fn real_now_ms() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

fn set_offset(file: &Path, seconds: i64) {
    // libfaketime's relative form: "+300" or "-180" seconds from the real time.
    std::fs::write(file, format!("{seconds:+}\n")).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clock_jumps_mint_no_token_beyond_its_limits() {
    let _serial = harness::SERIAL.lock().await;
    let Some(library) = LIBFAKETIME.iter().find(|p| Path::new(p).exists()) else {
        eprintln!("skipping clock jumps: libfaketime is not installed (apt-get install faketime)");
        return;
    };
    let db = Database::sqlite_in(None);
    let Database::Sqlite { dir, .. } = &db else {
        unreachable!()
    };
    let offset_file = dir.path().join("faketime");
    set_offset(&offset_file, 0);
    let env: Vec<(String, String)> = [
        ("AUTHD_ACCESS_TOKEN_TTL", "1m"),
        ("AUTHD_REFRESH_TOKEN_TTL", "3m"),
        ("AUTHD_REFRESH_TOKEN_MAX_LIFETIME", "6m"),
        ("LD_PRELOAD", library),
        ("FAKETIME_TIMESTAMP_FILE", offset_file.to_str().unwrap()),
        ("FAKETIME_NO_CACHE", "1"),
        ("FAKETIME_DONT_FAKE_MONOTONIC", "1"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    harness::add_users(db.url(), &env);
    let server = harness::start_server(db.url(), &env).await;
    let client = harness::connect(&server).await;

    let jumps: Vec<i64> = if harness::long() {
        let mut rng = Rng::new(0xc10c);
        (0..40)
            .map(|_| i64::try_from(rng.below(1201)).unwrap() - 600)
            .collect()
    } else {
        // Minutes: past the idle end, back before it, past the session's end, far back.
        vec![300, -180, 120, -240, 600, -600, 0]
    };
    let clients = Arc::new(Mutex::new(Clients::new(CLIENTS)));
    let tally = Arc::new(Tally {
        access_ttl: Some(ACCESS_TTL),
        ..Tally::default()
    });
    let mut latest_server_ms = real_now_ms();
    let mut max_skew = 0i64;
    let mut refused_after = Vec::new();
    for (n, &offset) in jumps.iter().enumerate() {
        let refused_before = tally.failed.lock().unwrap().get("Unauthenticated").copied();
        set_offset(&offset_file, offset);
        // The server follows: a login's `iat` is the jumped time (within 3 s).
        let response = harness::probe_login(&client).await.unwrap();
        let claims = harness::claims(&response.access_token);
        let expected = real_now_ms() / 1000 + offset;
        let skew = (claims.iat - expected).abs();
        assert!(
            skew <= 3,
            "jump {n} to {offset:+} s: iat {} but the faked clock says {expected}",
            claims.iat
        );
        max_skew = max_skew.max(skew);
        let stop = Arc::new(AtomicBool::new(false));
        let load = {
            let (clients, tally, stop) = (Arc::clone(&clients), Arc::clone(&tally), stop.clone());
            let client = client.clone();
            tokio::spawn(async move {
                let shape = LoadShape::default();
                harness::run_load(client, &clients, &tally, &stop, shape, 0xc10c + n as u64).await;
            })
        };
        tokio::time::sleep(Duration::from_millis(400)).await;
        stop.store(true, Ordering::SeqCst);
        load.await.unwrap();
        latest_server_ms = latest_server_ms.max(real_now_ms() + offset * 1000);
        let refused = tally.failed.lock().unwrap().get("Unauthenticated").copied();
        refused_after.push((offset, refused.unwrap_or(0) - refused_before.unwrap_or(0)));
    }
    let unexpected = tally.unexpected(&[Code::Unauthenticated]);
    assert!(unexpected.is_empty(), "{:?}", tally.failed);
    assert!(
        tally.bad_lifetimes.lock().unwrap().is_empty(),
        "access tokens with exp - iat other than {ACCESS_TTL:?}: {:?}",
        tally.bad_lifetimes
    );
    let limits = Limits {
        refresh_ttl: REFRESH_TTL,
        max_lifetime: MAX_LIFETIME,
        ended_by: Some(latest_server_ms + 1000),
    };
    let clients = std::mem::take(&mut *clients.lock().unwrap());
    let verdict = invariants::check(&db, &clients, limits).await;
    drop(server);
    harness::report(
        &format!("clock jumps x{}", jumps.len()),
        &db,
        &tally,
        &format!(
            "; iat followed each jump within {max_skew} s; refresh refusals (token or session \
             ended by the jumped clock) after each jump (offset s, refused): {refused_after:?}; \
             every access token exp - iat = 60 s; {verdict}"
        ),
    );
}
