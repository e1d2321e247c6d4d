//! The options of the SQLite backend's connection pool, and the one rule it adds to sqlx's:
//! a connection that comes back still inside a transaction is closed, not reused.
//!
//! Why: when `COMMIT` fails because the disk is full (`SQLITE_FULL`; also some I/O errors),
//! SQLite rolls the transaction back by itself. sqlx still counts the transaction as open, its
//! own `ROLLBACK` then fails ("no transaction is active"), and the count never returns to
//! zero: every later `BEGIN IMMEDIATE` on that connection fails ("attempted to call begin_with
//! at non-zero transaction depth"). Returned to the pool, such a connection failed every
//! login after the disk had space again, until a restart (found by the disk-full scenario of
//! `tests/faults`, issue 23).

use std::time::Duration;

use sqlx::Connection;
use sqlx::sqlite::SqlitePoolOptions;

/// Connections the pool keeps (the rotation writer has its own).
const MAX_CONNECTIONS: u32 = 8;

/// The pool's options: at most [`MAX_CONNECTIONS`], a 5 s wait for one, and a returned
/// connection kept only once any rollback queued by a dropped transaction has run (the ping
/// waits for it) and it is outside every transaction.
pub(super) fn options() -> SqlitePoolOptions {
    SqlitePoolOptions::new()
        .max_connections(MAX_CONNECTIONS)
        .acquire_timeout(Duration::from_secs(5))
        .after_release(|conn, _| {
            Box::pin(async move {
                conn.ping().await?;
                let stuck = conn.is_in_transaction();
                if stuck {
                    tracing::warn!(
                        "a database connection came back inside a transaction that could not \
                         be ended (after a failed commit); closing it"
                    );
                }
                Ok(!stuck)
            })
        })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use sqlx::Sqlite;
    use sqlx::sqlite::SqliteConnectOptions;

    use super::*;

    /// A connection left as a failed `COMMIT` leaves it: SQLite outside any transaction, sqlx
    /// counting one. Made here by committing behind sqlx's back.
    async fn leave_a_stuck_transaction(pool: &sqlx::SqlitePool) {
        let mut tx: sqlx::Transaction<'_, Sqlite> =
            pool.begin_with("BEGIN IMMEDIATE").await.unwrap();
        sqlx::raw_sql("COMMIT").execute(&mut *tx).await.unwrap();
        // Dropped: sqlx's ROLLBACK fails, the count stays at one.
    }

    #[tokio::test]
    async fn a_connection_stuck_in_a_transaction_is_not_reused() {
        let dir = tempfile::tempdir().unwrap();
        let connect = SqliteConnectOptions::new()
            .filename(dir.path().join("pool.db"))
            .create_if_missing(true);
        let pool = options()
            .max_connections(1)
            .connect_with(connect)
            .await
            .unwrap();
        leave_a_stuck_transaction(&pool).await;
        // The only connection was closed on release; a new one begins.
        for _ in 0..3 {
            let tx = pool.begin_with("BEGIN IMMEDIATE").await.unwrap();
            tx.commit().await.unwrap();
        }
    }

    #[tokio::test]
    async fn without_the_rule_the_connection_stays_stuck() {
        // What the rule is for (if sqlx ever fixes this, this test says the rule may go).
        let dir = tempfile::tempdir().unwrap();
        let connect = SqliteConnectOptions::new()
            .filename(dir.path().join("pool.db"))
            .create_if_missing(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(connect)
            .await
            .unwrap();
        leave_a_stuck_transaction(&pool).await;
        let e = pool.begin_with("BEGIN IMMEDIATE").await.unwrap_err();
        assert!(e.to_string().contains("transaction depth"), "{e}");
    }
}
