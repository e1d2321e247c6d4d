//! Rotation throughput and latency of each storage backend, printed (not asserted).
//!
//! `cargo bench --bench store_rotation` (add `AUTHD_TEST_POSTGRES_URL=…` for PostgreSQL).
//! Measures `Store::rotate_refresh` directly: one chain rotated sequentially, then 16 chains
//! rotated concurrently.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/support/postgres.rs"]
mod pg;

use std::sync::Arc;
use std::time::{Duration, Instant};

use authd::domain::{
    FamilyId, NewFamily, NewToken, Origin, RefreshPolicy, Role, Rotation, Successor, Timestamp,
    TokenHash, User, UserId, Username,
};
use authd::store::{NewUser, Store};

const SEQUENTIAL: usize = 500;
const CHAINS: usize = 16;
const PER_CHAIN: usize = 100;

/// The key a token issued at `at` is stored under, as the service derives it.
fn hash(at: Timestamp) -> TokenHash {
    authd::crypto::refresh_token::RefreshToken::generate(at)
        .unwrap()
        .hash()
}

fn policy() -> RefreshPolicy {
    RefreshPolicy {
        idle_ttl: Duration::from_secs(3600),
        max_lifetime: Duration::from_secs(86400),
        reuse_grace: Duration::from_secs(10),
    }
}

fn now() -> Timestamp {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    Timestamp::from_unix_millis(i64::try_from(ms).unwrap())
}

fn new_token(at: Timestamp) -> NewToken {
    NewToken {
        hash: hash(at),
        issued_at: at,
        expires_at: at.saturating_add(policy().idle_ttl),
    }
}

async fn chain(store: &dyn Store, user: &User) -> TokenHash {
    let at = now();
    let family = NewFamily {
        id: FamilyId::generate(),
        user: user.clone(),
        created_at: at,
        expires_at: at.saturating_add(policy().max_lifetime),
        origin: authd::domain::SessionOrigin::default(),
    };
    let first = new_token(at);
    store.start_family(&family, &first, &[]).await.unwrap();
    first.hash
}

async fn rotate(store: &dyn Store, current: TokenHash) -> (TokenHash, Duration) {
    let at = now();
    let next = new_token(at);
    let successor = Successor {
        sealed: vec![0; 60],
        token: next.clone(),
    };
    let started = Instant::now();
    let r = store
        .rotate_refresh(&current, &successor, at, &policy(), &Origin::default())
        .await
        .unwrap();
    assert!(matches!(r, Rotation::Rotated { .. }), "{r:?}");
    (next.hash, started.elapsed())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

async fn bench(name: &str, store: Arc<dyn Store>) {
    let user = User {
        id: UserId::generate(),
        username: Username::parse("bench").unwrap(),
        roles: vec![Role::parse("reader").unwrap()],
        enabled: true,
        created_at: now(),
    };
    store
        .create_user(&NewUser {
            user: user.clone(),
            password_hash: "x".into(),
        })
        .await
        .unwrap();

    let mut current = chain(store.as_ref(), &user).await;
    let started = Instant::now();
    let mut latencies = Vec::with_capacity(SEQUENTIAL);
    for _ in 0..SEQUENTIAL {
        let (next, took) = rotate(store.as_ref(), current).await;
        current = next;
        latencies.push(took);
    }
    report(name, "sequential", SEQUENTIAL, started.elapsed(), latencies);

    let mut starts = Vec::new();
    for _ in 0..CHAINS {
        starts.push(chain(store.as_ref(), &user).await);
    }
    let started = Instant::now();
    let tasks = starts.into_iter().map(|mut current| {
        let store = Arc::clone(&store);
        tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(PER_CHAIN);
            for _ in 0..PER_CHAIN {
                let (next, took) = rotate(store.as_ref(), current).await;
                current = next;
                latencies.push(took);
            }
            latencies
        })
    });
    let latencies: Vec<Duration> = futures::future::join_all(tasks)
        .await
        .into_iter()
        .flat_map(Result::unwrap)
        .collect();
    report(
        name,
        &format!("{CHAINS} concurrent chains"),
        CHAINS * PER_CHAIN,
        started.elapsed(),
        latencies,
    );
}

fn report(backend: &str, mode: &str, n: usize, total: Duration, mut latencies: Vec<Duration>) {
    latencies.sort();
    println!(
        "{backend:>10} {mode:<22} {n:>5} rotations  {:>8.0}/s  p50 {:>7.2?}  p99 {:>7.2?}",
        n as f64 / total.as_secs_f64(),
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
    );
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("bench.db").display());
    bench("sqlite", authd::store::open(&url).await.unwrap()).await;
    if let Some(db) = pg::TestDatabase::create("store_rotation benchmark").await {
        bench("postgres", authd::store::open(&db.url).await.unwrap()).await;
    }
}
