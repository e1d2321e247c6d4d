//! Micro-benchmarks of the store's hot path, `rotate_refresh`: `cargo bench --bench store`.
//!
//! - `sqlite::rotate_one_chain`: one rotation at a time on one chain (a durable SQLite file in
//!   WAL mode with `synchronous=FULL`): the latency of one rotation, fsync included.
//! - `sqlite::rotate_concurrently`: N chains each rotated once, all at once; the throughput
//!   (rotations/s) is what a loaded server gets from its store.
//! - `postgres::*`: the same against the database at `AUTHD_TEST_POSTGRES_URL` when it is set
//!   and `authd::store::open` has a PostgreSQL backend (skipped with a printed reason
//!   otherwise). HOOK: nothing else is needed here once the PostgreSQL backend is merged.
//!
//! The database file lives in `AUTHD_BENCH_DIR` when set (to measure a particular disk), else
//! in the system temporary directory.

#![allow(clippy::unwrap_used, clippy::expect_used)] // benchmarks may panic on the unexpected

use std::sync::Arc;
use std::time::Duration;

use authd::crypto::refresh_token::RefreshToken;
use authd::domain::{
    FamilyId, NewFamily, NewToken, Origin, RefreshPolicy, Rotation, SessionOrigin, Successor,
    Timestamp, TokenHash, User, UserId, Username,
};
use authd::store::{NewUser, Store};
use divan::Bencher;
use divan::counter::ItemsCount;
use tokio::runtime::Runtime;

fn main() {
    divan::main();
}

const POLICY: RefreshPolicy = RefreshPolicy {
    idle_ttl: Duration::from_secs(14 * 24 * 3600),
    max_lifetime: Duration::from_secs(30 * 24 * 3600),
    reuse_grace: Duration::from_secs(10),
};

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn now() -> Timestamp {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    Timestamp::from_unix_millis(i64::try_from(ms).unwrap())
}

fn new_token(now: Timestamp) -> (TokenHash, NewToken) {
    let hash = RefreshToken::generate(now).unwrap().hash();
    let token = NewToken {
        hash,
        issued_at: now,
        expires_at: now.saturating_add(POLICY.idle_ttl),
    };
    (hash, token)
}

/// A store with one user and `chains` fresh families; the newest token hash of each.
struct Chains {
    store: Arc<dyn Store>,
    newest: Vec<TokenHash>,
    // Kept so the SQLite file outlives the store.
    _dir: Option<tempfile::TempDir>,
}

impl Chains {
    async fn start(store: Arc<dyn Store>, chains: usize, dir: Option<tempfile::TempDir>) -> Self {
        let now = now();
        let user = User {
            id: UserId::generate(),
            username: Username::parse(&format!("bench-{}", uuid::Uuid::new_v4())).unwrap(),
            roles: vec![],
            enabled: true,
            created_at: now,
        };
        store
            .create_user(&NewUser {
                user: user.clone(),
                password_hash: "$argon2id$unused".into(),
            })
            .await
            .unwrap();
        let mut newest = Vec::with_capacity(chains);
        for _ in 0..chains {
            let (hash, first) = new_token(now);
            let family = NewFamily {
                id: FamilyId::generate(),
                user: user.clone(),
                created_at: now,
                expires_at: now.saturating_add(POLICY.max_lifetime),
                origin: SessionOrigin::default(),
            };
            store.start_family(&family, &first, &[]).await.unwrap();
            newest.push(hash);
        }
        Self {
            store,
            newest,
            _dir: dir,
        }
    }

    /// Rotates every chain once, all at once.
    async fn rotate_all(&mut self) {
        let now = now();
        let mut running = tokio::task::JoinSet::new();
        for (i, presented) in self.newest.iter().enumerate() {
            let store = Arc::clone(&self.store);
            let presented = *presented;
            running.spawn(async move {
                let (hash, token) = new_token(now);
                let successor = Successor {
                    token,
                    sealed: vec![0; 60],
                };
                let rotation = store
                    .rotate_refresh(&presented, &successor, now, &POLICY, &Origin::default())
                    .await
                    .unwrap();
                assert!(matches!(rotation, Rotation::Rotated { .. }), "{rotation:?}");
                (i, hash)
            });
        }
        while let Some(done) = running.join_next().await {
            let (i, hash) = done.unwrap();
            self.newest[i] = hash;
        }
    }
}

fn bench_rotations(bencher: Bencher, open: impl AsyncFnOnce() -> Option<Chains>, chains: usize) {
    let rt = runtime();
    let Some(mut state) = rt.block_on(open()) else {
        return;
    };
    bencher
        .counter(ItemsCount::new(chains))
        .bench_local(|| rt.block_on(state.rotate_all()));
}

mod sqlite {
    use super::*;

    async fn open(chains: usize) -> Option<Chains> {
        let dir = match std::env::var_os("AUTHD_BENCH_DIR") {
            Some(base) => tempfile::tempdir_in(base).unwrap(),
            None => tempfile::tempdir().unwrap(),
        };
        let url = format!("sqlite://{}", dir.path().join("bench.db").display());
        let store = authd::store::open(&url).await.unwrap();
        Some(Chains::start(store, chains, Some(dir)).await)
    }

    /// One rotation at a time: the latency of a durable rotation.
    #[divan::bench(sample_count = 50, sample_size = 4)]
    fn rotate_one_chain(bencher: Bencher) {
        bench_rotations(bencher, || open(1), 1);
    }

    /// N chains rotated at once: rotations/s under concurrency.
    #[divan::bench(args = [8, 64], sample_count = 30, sample_size = 1)]
    fn rotate_concurrently(bencher: Bencher, chains: usize) {
        bench_rotations(bencher, || open(chains), chains);
    }
}

mod postgres {
    use super::*;

    async fn open(chains: usize) -> Option<Chains> {
        let Ok(url) = std::env::var("AUTHD_TEST_POSTGRES_URL") else {
            eprintln!("skipping PostgreSQL: AUTHD_TEST_POSTGRES_URL is not set");
            return None;
        };
        match authd::store::open(&url).await {
            Ok(store) => Some(Chains::start(store, chains, None).await),
            Err(e) => {
                eprintln!("skipping PostgreSQL: {e}");
                None
            }
        }
    }

    #[divan::bench(sample_count = 50, sample_size = 4)]
    fn rotate_one_chain(bencher: Bencher) {
        bench_rotations(bencher, || open(1), 1);
    }

    #[divan::bench(args = [8, 64], sample_count = 30, sample_size = 1)]
    fn rotate_concurrently(bencher: Bencher, chains: usize) {
        bench_rotations(bencher, || open(chains), chains);
    }
}
