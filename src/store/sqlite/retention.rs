//! What has expired, on SQLite: one statement per kind, each deleting at most `limit` rows (a
//! subquery bounds it: SQLite has `DELETE … LIMIT` only as a build option). Each batch is its
//! own transaction, so the write lock is released between batches.
//!
//! The batches run on a connection of their own, opened with the store and kept (a pool of
//! one that never closes it for idleness or age), with a small page cache. On the request
//! pool they would take a connection from logins, and a purge would wake or open another
//! connection (a thread and a 2 MiB page cache): the server's memory stepped up at every
//! purge of a long refresh run (BENCHMARKS.md, "Memory", issue 24).

use async_trait::async_trait;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool};

use super::SqliteStore;
use crate::store::sql::{self, PurgeStatements};
use crate::store::{Expired, RetentionStore, StoreError, unavailable};

const STATEMENTS: PurgeStatements = PurgeStatements {
    // `CROSS JOIN` keeps the families as the outer loop (SQLite never reorders it): the
    // planner's own choice for a plain JOIN scanned every used token of every session and
    // looked its family up, holding the write lock for 0.3 s per batch at 3 million used
    // tokens, whether or not any session had ended (issue 24).
    tokens_of_ended_families: "DELETE FROM refresh_tokens WHERE hash IN ( \
         SELECT t.hash FROM refresh_families f CROSS JOIN refresh_tokens t ON t.family = f.seq \
         WHERE f.expires_at <= $1 OR f.revoked_at IS NOT NULL LIMIT $2)",
    used_tokens_of_ended_families: "DELETE FROM used_refresh_tokens WHERE hash IN ( \
         SELECT o.hash FROM refresh_families f CROSS JOIN used_refresh_tokens o \
         ON o.family = f.seq \
         WHERE f.expires_at <= $1 OR f.revoked_at IS NOT NULL LIMIT $2)",
    idle_tokens: "DELETE FROM refresh_tokens WHERE hash IN ( \
         SELECT hash FROM refresh_tokens WHERE expires_at <= $1 LIMIT $2)",
    sealed_copies: "UPDATE refresh_tokens SET sealed_by_predecessor = NULL, predecessor = NULL \
         WHERE hash IN (SELECT hash FROM refresh_tokens \
                        WHERE sealed_by_predecessor IS NOT NULL AND issued_at < $1 LIMIT $2)",
    ended_families: "DELETE FROM refresh_families WHERE id IN ( \
         SELECT id FROM refresh_families WHERE expires_at <= $1 OR revoked_at IS NOT NULL \
         LIMIT $2)",
    revoked_access_tokens: "DELETE FROM revoked_access_tokens WHERE jti IN ( \
         SELECT jti FROM revoked_access_tokens WHERE expires_at <= $1 LIMIT $2)",
    login_counters: "DELETE FROM login_throttle WHERE username IN ( \
         SELECT username FROM login_throttle WHERE last_failure_at < $1 AND in_flight_at < $1 AND failures < $3 \
         LIMIT $2)",
    audit_events: "DELETE FROM audit_events WHERE id IN ( \
         SELECT id FROM audit_events WHERE at < $1 ORDER BY id LIMIT $2)",
    audit_events_of_kind: "DELETE FROM audit_events WHERE id IN ( \
         SELECT id FROM audit_events WHERE at < $1 AND event_type = $3 ORDER BY id LIMIT $2)",
};

#[async_trait]
impl RetentionStore for SqliteStore {
    async fn purge_batch(&self, what: Expired, limit: u32) -> Result<u64, StoreError> {
        let done = sql::purge_batch!(STATEMENTS, what, limit)
            .execute(&self.retention)
            .await
            .map_err(unavailable)?;
        Ok(done.rows_affected())
    }
}

/// The retention job's pool: one connection, opened now and kept, with a page cache of
/// `cache_size` (KiB when negative).
pub(super) async fn pool(
    options: &SqliteConnectOptions,
    cache_size: i32,
) -> Result<SqlitePool, StoreError> {
    super::pool::options()
        .max_connections(1)
        .min_connections(1)
        .idle_timeout(None)
        .max_lifetime(None)
        .connect_with(options.clone().pragma("cache_size", cache_size.to_string()))
        .await
        .map_err(unavailable)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::store::Store;

    /// Every purge statement reads tokens through an index from the families (or the token
    /// table's own columns), never by scanning every used token: that table grows with every
    /// refresh, and the scan held the write lock against the rotation writer. Fails with the
    /// plain `JOIN` the statements had before (`SCAN o USING COVERING INDEX …`).
    #[tokio::test]
    async fn no_purge_scans_the_used_tokens() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("plans.db").display());
        let store = SqliteStore::open(&url).await.unwrap();
        let statements = [
            STATEMENTS.tokens_of_ended_families,
            STATEMENTS.used_tokens_of_ended_families,
            STATEMENTS.idle_tokens,
            STATEMENTS.sealed_copies,
            STATEMENTS.ended_families,
        ];
        for statement in statements {
            let plan: Vec<(i64, i64, i64, String)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "EXPLAIN QUERY PLAN {statement}"
            )))
            .bind(0_i64)
            .bind(1000_i64)
            .fetch_all(&store.pool)
            .await
            .unwrap();
            for (.., detail) in plan {
                assert!(
                    !(detail.starts_with("SCAN o")
                        || detail.starts_with("SCAN used_refresh_tokens")),
                    "{statement}\nscans every used token: {detail}"
                );
                assert!(
                    !detail.starts_with("SCAN t "),
                    "{statement}\nscans every token to find its family: {detail}"
                );
            }
        }
        store.close().await;
    }
}
