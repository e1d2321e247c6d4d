//! The storage conformance suite: every test body is written once against `Arc<dyn Store>` and
//! runs on SQLite (a fresh file) and on PostgreSQL (a fresh database on the server named by
//! `AUTHD_TEST_POSTGRES_URL`; skipped with a printed reason when it is unset). One file per
//! aggregate, as the store is split; each instantiates its bodies with `conformance!`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../support/postgres.rs"]
mod pg;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use authd::crypto::api_key::ApiKeySecret;
use authd::domain::{
    ApiKey, Charge, FailureCount, FamilyId, NewFamily, NewToken, Origin, RefreshPolicy, Rejection,
    Role, Rotation, SessionOrigin, Successor, ThrottlePolicy, Timestamp, TokenHash, User, UserId,
    Username, is_live,
};
use authd::store::{NewUser, RoleChange, Store, StoreError, StoredKey};

/// A store and whatever keeps its database alive.
struct Backend {
    store: Arc<dyn Store>,
    url: String,
    _sqlite: Option<tempfile::TempDir>,
    _postgres: Option<pg::TestDatabase>,
}

async fn sqlite() -> Backend {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("store.db").display());
    Backend {
        store: authd::store::open(&url).await.unwrap(),
        url,
        _sqlite: Some(dir),
        _postgres: None,
    }
}

/// A connection of the test's own to a PostgreSQL test database (to set or read what the
/// store does not expose).
async fn connect(url: &str) -> sqlx::postgres::PgConnection {
    <sqlx::postgres::PgConnection as sqlx::Connection>::connect(url)
        .await
        .unwrap()
}

async fn postgres(test: &str) -> Option<Backend> {
    let db = pg::TestDatabase::create(test).await?;
    Some(Backend {
        store: authd::store::open(&db.url).await.unwrap(),
        url: db.url.clone(),
        _sqlite: None,
        _postgres: Some(db),
    })
}

/// Instantiates each named test body for both backends.
macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod on_sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(crate::sqlite().await).await;
                }
            )*
        }
        mod on_postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if let Some(backend) = crate::postgres(stringify!($name)).await {
                        super::$name(backend).await;
                    }
                }
            )*
        }
    };
}

mod api_keys;
mod audit;
mod directory_users;
mod listing;
mod migrations;
mod postgres;
mod retention;
mod rotation;
mod sessions;
mod signing_keys;
mod stats;
mod throttle;
mod users;

// --- fixtures

const T0: Timestamp = Timestamp::from_unix_millis(1_700_000_000_000);
const MINUTE: Duration = Duration::from_secs(60);
const DAY: Duration = Duration::from_secs(24 * 3600);

fn at(minutes: u64) -> Timestamp {
    T0.saturating_add(MINUTE * u32::try_from(minutes).unwrap())
}

fn policy(grace: Duration) -> RefreshPolicy {
    RefreshPolicy {
        idle_ttl: DAY,
        max_lifetime: 30 * DAY,
        reuse_grace: grace,
    }
}

fn user(name: &str) -> User {
    User {
        id: UserId::generate(),
        username: Username::parse(name).unwrap(),
        roles: vec![Role::parse("reader").unwrap()],
        enabled: true,
        created_at: T0,
    }
}

fn name(n: &str) -> Username {
    Username::parse(n).unwrap()
}

async fn add_user(store: &dyn Store, n: &str) -> User {
    let user = user(n);
    store
        .create_user(&NewUser {
            user: user.clone(),
            password_hash: "$argon2id$v=19$m=256,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2g".into(),
        })
        .await
        .unwrap();
    user
}

fn random_hash() -> TokenHash {
    let mut hash = [0u8; 32];
    hash[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    hash[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    TokenHash(hash)
}

fn token(now: Timestamp, policy: &RefreshPolicy) -> NewToken {
    NewToken {
        hash: random_hash(),
        issued_at: now,
        expires_at: now.saturating_add(policy.idle_ttl),
    }
}

/// A successor whose "sealed" form is recognisable: the store treats it as opaque bytes.
fn successor(now: Timestamp, policy: &RefreshPolicy) -> Successor {
    let token = token(now, policy);
    Successor {
        sealed: token.hash.0.to_vec(),
        token,
    }
}

/// Starts a family at `now` and returns its id and first token's hash.
async fn login(
    store: &dyn Store,
    user: &User,
    now: Timestamp,
    policy: &RefreshPolicy,
) -> (FamilyId, TokenHash) {
    let family = NewFamily {
        id: FamilyId::generate(),
        user: user.clone(),
        created_at: now,
        expires_at: now.saturating_add(policy.max_lifetime),
        origin: SessionOrigin::new(Some("192.0.2.7".into()), Some("test-agent/1")),
    };
    let first = token(now, policy);
    store.start_family(&family, &first, &[]).await.unwrap();
    (family.id, first.hash)
}

/// Rotates `presented` and returns the successor's hash, asserting it rotated.
async fn rotate(
    store: &dyn Store,
    presented: &TokenHash,
    now: Timestamp,
    policy: &RefreshPolicy,
) -> TokenHash {
    let next = successor(now, policy);
    match store
        .rotate_refresh(presented, &next, now, policy, &Origin::default())
        .await
    {
        Ok(Rotation::Rotated { .. }) => next.token.hash,
        other => panic!("expected a rotation, got {other:?}"),
    }
}

async fn outcome(
    store: &dyn Store,
    presented: &TokenHash,
    now: Timestamp,
    policy: &RefreshPolicy,
) -> Rotation {
    store
        .rotate_refresh(
            presented,
            &successor(now, policy),
            now,
            policy,
            &Origin::default(),
        )
        .await
        .unwrap()
}

fn rejected(r: &Rotation) -> Option<Rejection> {
    match r {
        Rotation::Rejected(why) => Some(*why),
        _ => None,
    }
}

/// Two free failures, then 1 s doubling up to 4 minutes; counters forgotten after an hour;
/// locked at 4 failures.
fn throttle() -> ThrottlePolicy {
    ThrottlePolicy {
        free_failures: 2,
        max_delay: 4 * MINUTE,
        forget_after: 60 * MINUTE,
        max_failures: 4,
    }
}

/// One wrong password at `minutes`: the failures it leaves, or the refusal that kept it from
/// checking a password.
async fn charge(s: &dyn Store, username: &str, minutes: u64) -> Result<FailureCount, Charge> {
    match s
        .charge_login_attempt(&name(username), &throttle(), at(minutes))
        .await
        .unwrap()
    {
        Charge::Charged(_) => Ok(s
            .record_login_failure(&name(username), &throttle(), at(minutes))
            .await
            .unwrap()),
        refused => Err(refused),
    }
}

fn charged(failures: u32, minutes: u64) -> Result<FailureCount, Charge> {
    Ok(FailureCount {
        consecutive_failures: failures,
        last_failure_at: at(minutes),
    })
}
