//! The SQLite backend: the embedded default. One file per aggregate (`users`, `sessions`,
//! `api_keys`, `signing_keys`, `throttle`, `audit`, `retention`), and `writer`, the rotation
//! writer.
//!
//! WAL mode with `synchronous=FULL`, so a rotation acknowledged to a client is on disk, and a
//! busy timeout so the CLI can write while `serve` runs. Every read-modify-write runs in a
//! `BEGIN IMMEDIATE` transaction: the write lock is taken up front, so concurrent rotations of
//! one token serialise instead of failing on a lock upgrade.
//!
//! Rotations are *group-committed*: one writer thread takes every rotation waiting at that moment
//! and applies them, one after the other and each decided by [`crate::domain::decide`] on the
//! state the previous ones left, inside one `BEGIN IMMEDIATE … COMMIT`; then it answers each
//! caller. So many rotations share one fsync, nobody is answered before the batch is durable,
//! and two presentations of one token in one batch still have exactly one winner (the second
//! sees the first's write, as if it had run in a later transaction).

mod api_keys;
mod audit;
mod pool;
mod retention;
mod sessions;
mod signing_keys;
mod stats;
mod throttle;
mod users;
mod writer;

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqliteSynchronous};
use sqlx::{Sqlite, Transaction};

use self::api_keys::lock_api_key;
use self::audit::insert_audit;
use self::sessions::{lock_families_of, revoke_families_of, revoke_family_in};
use self::signing_keys::lock_signing_keys;
use self::users::lock_user;
use super::procedures::shared_transactions;
use super::rows::impl_columns;
use super::{RotationQueue, Store, StoreError, unavailable};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// Most rotations committed in one transaction. Under load a batch is whatever arrived while
/// the previous one was being written, so this only bounds the worst case.
const MAX_ROTATION_BATCH: usize = 256;
/// The rotation writer's SQLite page cache, in KiB (negative: a size, not a page count).
const WRITER_CACHE_SIZE: i32 = -16 * 1024;
/// Rotations that may wait for the writer before callers wait to hand theirs over.
const ROTATION_QUEUE: usize = 4096;
/// WAL size (pages, 64 MiB) past which a commit checkpoints, on every connection. The rotation
/// writer's checkpointer does most of that work off the request path (see `writer`); this is
/// what bounds the WAL under constant load, and when nothing but the pool writes. SQLite's
/// default, 1,000, would make logins and rotations do the checkpointer's work.
const WAL_AUTOCHECKPOINT_PAGES: u32 = 16 * 1024;
/// How long a statement waits for another connection's write lock (the CLI's, say).
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// The retention job's page cache, in KiB: its deletes walk an index once per batch, so a
/// small cache does (see `retention`).
const RETENTION_CACHE_SIZE: i32 = -256;

#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    rotations: RotationQueue,
    /// The retention job's one connection, kept open (see `retention`).
    retention: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if missing) and migrates the database at `url`
    /// (`sqlite://relative/path` or `sqlite:///absolute/path`).
    ///
    /// # Errors
    /// When the file cannot be opened or created, or a migration fails.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url).map_err(unavailable)?;
        keep_private(options.get_filename());
        let options = options
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT)
            .pragma("wal_autocheckpoint", WAL_AUTOCHECKPOINT_PAGES.to_string());
        let pool = pool::options()
            .connect_with(options.clone())
            .await
            .map_err(unavailable)?;
        MIGRATOR.run(&pool).await.map_err(unavailable)?;
        let retention = retention::pool(&options, RETENTION_CACHE_SIZE).await?;
        let rotations = writer::spawn(options.get_filename().to_path_buf())?;
        Ok(Self {
            pool,
            rotations,
            retention,
        })
    }

    /// A write transaction: `BEGIN IMMEDIATE` takes the database's write lock up front.
    async fn begin(&self) -> Result<Transaction<'static, Sqlite>, StoreError> {
        self.pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(unavailable)
    }
}

// The transactions both backends run alike, over this backend's locks.
impl SqliteStore {
    shared_transactions!();
}

/// The database holds password hashes and, without a key encryption key, the private signing
/// keys (SECURITY-REFERENCES: readable only by the service). A missing file is created empty
/// (a valid SQLite database) with mode 0600, and SQLite gives its `-wal` and `-shm` files the
/// same mode. An existing file is left as it is, with a warning if others may read it.
#[cfg(unix)]
fn keep_private(path: &std::path::Path) {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    // In-memory databases (sqlx names them `file:sqlx-in-memory-N`) have no file.
    let in_memory = path
        .to_str()
        .is_some_and(|p| p.starts_with("file:") || p == ":memory:");
    if path.as_os_str().is_empty() || in_memory {
        return;
    }
    let created = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path);
    // Any other failure (a missing directory, no permission) is reported by the open that
    // follows, in its own words.
    if created.is_err()
        && let Ok(metadata) = std::fs::metadata(path)
        && metadata.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(
            path = %path.display(),
            mode = format!("{:o}", metadata.permissions().mode() & 0o777),
            "the database file can be read by other users; it holds password hashes and \
             signing keys: chmod 600 it (and its -wal and -shm files)"
        );
    }
}

#[cfg(not(unix))]
fn keep_private(_path: &std::path::Path) {}

impl_columns!(sqlx::sqlite::SqliteRow, sqlx::Row::try_get);
// The rotation writer's rows, decoded by the same `rows` functions as sqlx's.
impl_columns!(rusqlite::Row<'_>, rusqlite::Row::get);

#[async_trait]
impl Store for SqliteStore {
    async fn close(&self) {
        self.rotations.close().await;
        self.retention.close().await;
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
                "the rotation writer has stopped".into(),
            ));
        }
        // Touch every table, so a database that answers but lost its schema is not "up".
        sqlx::query(
            "SELECT (SELECT COUNT(*) FROM (SELECT 1 FROM users LIMIT 1)), \
                    (SELECT COUNT(*) FROM (SELECT 1 FROM refresh_families LIMIT 1)), \
                    (SELECT COUNT(*) FROM (SELECT 1 FROM refresh_tokens LIMIT 1)), \
                    (SELECT COUNT(*) FROM (SELECT 1 FROM signing_keys LIMIT 1))",
        )
        .execute(&self.pool)
        .await
        .map_err(unavailable)?;
        Ok(())
    }
}
