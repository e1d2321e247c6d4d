//! Login counters on SQLite. Each step of an attempt (charge, failure, release) reads, decides
//! and writes under the write lock (`BEGIN IMMEDIATE`), so concurrent attempts on one name are
//! decided one after another.

use async_trait::async_trait;

use super::SqliteStore;
use crate::domain::{Attempts, Charge, FailureCount, ThrottlePolicy, Timestamp, Username};
use crate::store::rows;
use crate::store::{StoreError, ThrottleStore, sql, unavailable};

impl SqliteStore {
    /// Reads `username`'s counter, lets `decide` choose the result and the counter to store
    /// (`None`: leave it), and writes it, in one write transaction.
    async fn update_attempts<R>(
        &self,
        username: &Username,
        decide: impl FnOnce(Option<Attempts>) -> (R, Option<Attempts>) + Send,
    ) -> Result<R, StoreError> {
        let mut tx = self.begin().await?;
        let row = sql::attempts_of!(username)
            .fetch_optional(&mut *tx)
            .await
            .map_err(unavailable)?;
        let seen = row.as_ref().map(rows::attempts).transpose()?;
        let (result, write) = decide(seen);
        if let Some(attempts) = write {
            sql::store_attempts!(username, attempts)
                .execute(&mut *tx)
                .await
                .map_err(unavailable)?;
        }
        tx.commit().await.map_err(unavailable)?;
        Ok(result)
    }
}

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
        let count = row.as_ref().map(rows::failure_count).transpose()?;
        Ok(count.filter(|c| c.consecutive_failures > 0))
    }

    async fn charge_login_attempt(
        &self,
        username: &Username,
        policy: &ThrottlePolicy,
        now: Timestamp,
    ) -> Result<Charge, StoreError> {
        self.update_attempts(username, |seen| {
            let charge = policy.charge(seen, now);
            (charge, charge.stored())
        })
        .await
    }

    async fn record_login_failure(
        &self,
        username: &Username,
        policy: &ThrottlePolicy,
        now: Timestamp,
    ) -> Result<FailureCount, StoreError> {
        self.update_attempts(username, |seen| {
            let (failures, left) = policy.fail(seen, now);
            (failures, Some(left))
        })
        .await
    }

    async fn release_login_attempt(
        &self,
        username: &Username,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        self.update_attempts(username, |seen| {
            ((), seen.map(|_| ThrottlePolicy::release(seen, now)))
        })
        .await
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
