//! Login-failure counters on SQLite. A charge reads, decides and writes under the write lock
//! (`BEGIN IMMEDIATE`), so concurrent attempts on one name are charged one after another.

use async_trait::async_trait;

use super::SqliteStore;
use crate::domain::{Charge, FailureCount, ThrottlePolicy, Timestamp, Username};
use crate::store::rows;
use crate::store::{StoreError, ThrottleStore, sql, unavailable};

#[async_trait]
impl ThrottleStore for SqliteStore {
    async fn login_failures(
        &self,
        username: &Username,
    ) -> Result<Option<FailureCount>, StoreError> {
        let row = sql::failure_count_of!(username)
            .fetch_optional(&self.pool)
            .await
            .map_err(unavailable)?;
        row.as_ref().map(rows::failure_count).transpose()
    }

    async fn charge_login_attempt(
        &self,
        username: &Username,
        policy: &ThrottlePolicy,
        now: Timestamp,
    ) -> Result<Charge, StoreError> {
        // BEGIN IMMEDIATE: the read, the decision and the write happen under the write lock.
        let mut tx = self.begin().await?;
        let row =
            sqlx::query("SELECT failures, last_failure_at FROM login_throttle WHERE username = ?")
                .bind(username.as_str())
                .fetch_optional(&mut *tx)
                .await
                .map_err(unavailable)?;
        let seen = row.as_ref().map(rows::failure_count).transpose()?;
        let charge = policy.charge(seen, now);
        if let Charge::Charged(count) = charge {
            sqlx::query(
                "INSERT INTO login_throttle (username, failures, last_failure_at) VALUES (?, ?, ?) \
                 ON CONFLICT (username) DO UPDATE SET \
                     failures = excluded.failures, last_failure_at = excluded.last_failure_at",
            )
            .bind(username.as_str())
            .bind(i64::from(count.consecutive_failures))
            .bind(count.last_failure_at.unix_millis())
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        }
        tx.commit().await.map_err(unavailable)?;
        Ok(charge)
    }

    async fn locked_usernames(&self, locked_at: u32) -> Result<Vec<String>, StoreError> {
        sql::locked_usernames!(locked_at)
            .fetch_all(&self.pool)
            .await
            .map_err(unavailable)
    }

    async fn clear_login_failures(&self, username: &Username) -> Result<bool, StoreError> {
        let done = sql::clear_login_failures!(username)
            .execute(&self.pool)
            .await
            .map_err(unavailable)?;
        Ok(done.rows_affected() > 0)
    }
}
