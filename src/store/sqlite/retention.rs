//! What has expired, on SQLite: one statement per kind, each deleting at most `limit` rows (a
//! subquery bounds it: SQLite has `DELETE … LIMIT` only as a build option). Each batch is its
//! own transaction, so the write lock is released between batches.

use async_trait::async_trait;

use super::SqliteStore;
use crate::store::sql::{self, PurgeStatements};
use crate::store::{Expired, RetentionStore, StoreError, unavailable};

const STATEMENTS: PurgeStatements = PurgeStatements {
    tokens_of_ended_families: "DELETE FROM refresh_tokens WHERE hash IN ( \
         SELECT t.hash FROM refresh_tokens t JOIN refresh_families f ON f.seq = t.family \
         WHERE f.expires_at <= $1 OR f.revoked_at IS NOT NULL LIMIT $2)",
    used_tokens_of_ended_families: "DELETE FROM used_refresh_tokens WHERE hash IN ( \
         SELECT o.hash FROM used_refresh_tokens o JOIN refresh_families f ON f.seq = o.family \
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
            .execute(&self.pool)
            .await
            .map_err(unavailable)?;
        Ok(done.rows_affected())
    }
}
