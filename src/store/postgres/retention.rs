//! What has expired, on PostgreSQL: one statement per kind, each deleting at most `limit` rows
//! (`$1` = the time, `$2` = the limit) in a transaction of its own, retried on a transient
//! conflict. PostgreSQL has no `DELETE … LIMIT`; the subquery bounds it. `SKIP LOCKED` makes
//! concurrent purgers (other replicas) take disjoint rows, so a batch shorter than its size
//! means "nothing left that nobody else is deleting", and skips tokens a rotation holds.

use async_trait::async_trait;

use super::PostgresStore;
use crate::store::{Expired, RetentionStore, StoreError, unavailable};

/// Tokens of families that ended (absolute lifetime) or were revoked.
const TOKENS_OF_ENDED_FAMILIES: &str = "DELETE FROM refresh_tokens WHERE hash IN ( \
       SELECT t.hash FROM refresh_tokens t JOIN refresh_families f ON f.id = t.family_id \
       WHERE f.expires_at <= $1 OR f.revoked_at IS NOT NULL \
       LIMIT $2 FOR UPDATE OF t SKIP LOCKED)";
/// Unused tokens past their idle timeout.
const IDLE_TOKENS: &str = "DELETE FROM refresh_tokens WHERE hash IN ( \
       SELECT hash FROM refresh_tokens WHERE expires_at <= $1 AND used_at IS NULL \
       LIMIT $2 FOR UPDATE SKIP LOCKED)";
/// Ended or revoked families.
const ENDED_FAMILIES: &str = "DELETE FROM refresh_families WHERE id IN ( \
       SELECT id FROM refresh_families WHERE expires_at <= $1 OR revoked_at IS NOT NULL \
       LIMIT $2 FOR UPDATE SKIP LOCKED)";
/// Revocations of access tokens that have expired.
const REVOKED_ACCESS_TOKENS: &str = "DELETE FROM revoked_access_tokens WHERE jti IN ( \
       SELECT jti FROM revoked_access_tokens WHERE expires_at <= $1 \
       LIMIT $2 FOR UPDATE SKIP LOCKED)";
/// Forgotten login-failure counters (`$3`: failures at which a counter is locked and kept).
const LOGIN_COUNTERS: &str = "DELETE FROM login_throttle WHERE username IN ( \
       SELECT username FROM login_throttle WHERE last_failure_at < $1 AND failures < $3 \
       LIMIT $2 FOR UPDATE SKIP LOCKED)";
/// Audit events past their retention, oldest first.
const AUDIT_EVENTS: &str = "DELETE FROM audit_events WHERE id IN ( \
       SELECT id FROM audit_events WHERE at < $1 ORDER BY id \
       LIMIT $2 FOR UPDATE SKIP LOCKED)";

impl PostgresStore {
    async fn purge_batch_once(&self, what: Expired, limit: u32) -> Result<u64, StoreError> {
        let sql = match what {
            Expired::TokensOfEndedFamilies { .. } => TOKENS_OF_ENDED_FAMILIES,
            Expired::IdleTokens { .. } => IDLE_TOKENS,
            Expired::EndedFamilies { .. } => ENDED_FAMILIES,
            Expired::RevokedAccessTokens { .. } => REVOKED_ACCESS_TOKENS,
            Expired::LoginCounters { .. } => LOGIN_COUNTERS,
            Expired::AuditEvents { .. } => AUDIT_EVENTS,
        };
        let mut query = sqlx::query(sql)
            .bind(what.time().unix_millis())
            .bind(i64::from(limit));
        if let Some(locked_at) = what.locked_at() {
            query = query.bind(i64::from(locked_at));
        }
        let done = query.execute(&self.pool).await.map_err(unavailable)?;
        Ok(done.rows_affected())
    }
}

#[async_trait]
impl RetentionStore for PostgresStore {
    async fn purge_batch(&self, what: Expired, limit: u32) -> Result<u64, StoreError> {
        retrying!(self.purge_batch_once(what, limit))
    }
}
