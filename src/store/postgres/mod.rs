//! The PostgreSQL backend: one database shared by any number of authd replicas. One file per
//! aggregate (`users`, `sessions`, `api_keys`, `signing_keys`, `throttle`, `audit`,
//! `retention`), and `rotations`, the rotation batcher.
//!
//! Everything a replica needs (users, families, tokens, signing keys) lives in the database, so
//! any replica serves any request. Concurrency rests on row locks, not on the process:
//!
//! - Every change to a refresh family (rotation, reuse revocation) first locks the family row
//!   (`SELECT … FOR UPDATE`), then reads the state afresh and applies
//!   [`crate::domain::decide`]. Of any number of concurrent rotations of one token, on any
//!   replicas, exactly one sees it unused.
//!   Rotations go through the replica's batcher ([`rotations`]), which does this for all the
//!   rotations that arrived together in one transaction.
//! - Transactions that fail with a serialization failure or a deadlock (SQLSTATE 40001, 40P01)
//!   are retried a bounded number of times, then reported as unavailable.
//! - Every operation, retries included, has a deadline ([`OPERATION_TIMEOUT`]); a database that
//!   does not answer becomes [`StoreError::Unavailable`], never a hang.
//!
//! Migrations run under sqlx's PostgreSQL advisory lock (`pg_advisory_lock` keyed by the
//! database name), so replicas starting together apply them once. The SQL sticks to what
//! CockroachDB also accepts (`FOR UPDATE`, `$n` parameters, `LIMIT` in subqueries), though
//! CockroachDB itself is not tested.
//!
//! Adding a method: write `x_once`, one transaction doing the work once, and call it from the
//! trait impl through `retrying!` (single statements that need no retry: `within_deadline`).
//!
//! This module does not know the rotation rules (see `crate::domain::refresh`) and is the only
//! code that knows it talks to PostgreSQL.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{Postgres, Transaction};

use self::api_keys::lock_api_key;
use self::audit::insert_audit;
use self::sessions::{lock_families_of, revoke_families_of, revoke_family_in};
use self::signing_keys::lock_signing_keys;
use self::users::lock_user;
use super::procedures::shared_transactions;
use super::rows::impl_columns;
use super::{RotationQueue, Store, StoreError, StoreOptions, unavailable};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// The longest any store operation may take, retries included, before it fails as unavailable.
/// Callers turn that into UNAVAILABLE well within 2 s.
pub const OPERATION_TIMEOUT: Duration = Duration::from_millis(1500);
/// How long to wait for a pooled connection, or to open a new one.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(1);
/// Attempts of a transaction that fails with a serialization failure or deadlock.
const MAX_ATTEMPTS: u32 = 5;
/// Migrations may wait for another replica's migration lock: a longer deadline at start.
const MIGRATION_TIMEOUT: Duration = Duration::from_secs(120);

/// Runs `$op` (an expression producing a fresh future on each evaluation) until it succeeds,
/// fails for a reason other than a transient conflict, or runs out of attempts; the whole
/// loop runs under [`OPERATION_TIMEOUT`].
macro_rules! retrying {
    ($op:expr) => {
        $crate::store::postgres::within_deadline(async {
            let mut attempt = 1;
            loop {
                match $op.await {
                    Err(e)
                        if attempt < $crate::store::postgres::MAX_ATTEMPTS
                            && $crate::store::postgres::is_transient(&e) =>
                    {
                        tracing::debug!(attempt, error = %e, "transaction conflict; retrying");
                        tokio::time::sleep(std::time::Duration::from_millis(5 << attempt)).await;
                        attempt += 1;
                    }
                    other => break other,
                }
            }
        })
        .await
    };
}

// After `retrying!`, which they use.
mod api_keys;
mod audit;
mod retention;
mod rotations;
mod sessions;
mod signing_keys;
mod stats;
mod throttle;
mod users;

#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
    rotations: RotationQueue,
}

impl PostgresStore {
    /// Connects to `url` (`postgres://` or `postgresql://`; `sslmode=require` and stricter use
    /// rustls) and applies pending migrations under the migration lock.
    ///
    /// # Errors
    /// When the URL does not parse, the server cannot be reached or a migration fails.
    pub async fn open(url: &str, options: &StoreOptions) -> Result<Self, StoreError> {
        let connect = PgConnectOptions::from_str(url)
            .map_err(unavailable)?
            .application_name("authd");
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .acquire_timeout(ACQUIRE_TIMEOUT)
            // Connections are opened on demand: a replica starts (and recovers) without
            // holding connections it does not use.
            .min_connections(0)
            .idle_timeout(Duration::from_secs(300))
            .connect_lazy_with(connect);
        let rotations = rotations::spawn(pool.clone());
        let store = Self { pool, rotations };
        store.migrate().await?;
        Ok(store)
    }

    /// Applies pending migrations. sqlx's PostgreSQL migrator holds a session-level advisory
    /// lock for the whole run, so concurrent callers wait for each other and each migration is
    /// applied once.
    ///
    /// The connection is handed back to the pool before this returns, so the start-up reads
    /// that follow (the signing keys) reuse it: a dropped pool connection goes back from a
    /// task of its own, too late for them, and a second connection costs a PostgreSQL backend
    /// and a TLS handshake (about half of start-up; BENCHMARKS.md).
    async fn migrate(&self) -> Result<(), StoreError> {
        // The lock wait has no deadline of its own: a replica waits here while another one
        // migrates, up to MIGRATION_TIMEOUT.
        tokio::time::timeout(MIGRATION_TIMEOUT, async {
            let mut conn = self.pool.acquire().await.map_err(unavailable)?;
            let migrated = MIGRATOR.run(&mut *conn).await.map_err(unavailable);
            conn.return_to_pool().await;
            migrated
        })
        .await
        .map_err(|_| StoreError::Unavailable("migrations timed out".into()))?
    }

    async fn begin(&self) -> Result<Transaction<'static, Postgres>, StoreError> {
        self.pool.begin().await.map_err(unavailable)
    }
}

// The transactions both backends run alike, over this backend's locks.
impl PostgresStore {
    shared_transactions!();
}

/// Runs `op` under [`OPERATION_TIMEOUT`].
async fn within_deadline<T>(
    op: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    tokio::time::timeout(OPERATION_TIMEOUT, op)
        .await
        .map_err(|_| StoreError::Unavailable("database did not answer in time".into()))?
}

/// Whether a failed transaction may succeed if simply run again.
fn is_transient(e: &StoreError) -> bool {
    let StoreError::Unavailable(source) = e else {
        return false;
    };
    match source.downcast_ref::<sqlx::Error>() {
        Some(sqlx::Error::Database(db)) => {
            matches!(db.code().as_deref(), Some("40001" | "40P01"))
        }
        _ => false,
    }
}

impl_columns!(sqlx::postgres::PgRow, sqlx::Row::try_get);

#[async_trait]
impl Store for PostgresStore {
    async fn close(&self) {
        self.rotations.close().await;
        self.pool.close().await;
    }

    fn rotation_writer_running(&self) -> bool {
        self.rotations.is_running()
    }

    async fn stop_rotation_writer_for_tests(&self) {
        self.rotations.close().await;
        self.rotations.stopped().await;
    }

    async fn ping(&self) -> Result<(), StoreError> {
        if !self.rotations.is_running() {
            return Err(StoreError::Unavailable(
                "the rotation batcher has stopped".into(),
            ));
        }
        within_deadline(async {
            sqlx::query("SELECT 1")
                .execute(&self.pool)
                .await
                .map_err(unavailable)?;
            Ok(())
        })
        .await
    }
}
