//! Login counters on PostgreSQL. Each step of an attempt (charge, failure, release) locks the
//! counter row while the policy decides, so concurrent attempts on one name, on any replica,
//! are decided one after another.

use async_trait::async_trait;

use super::{PostgresStore, within_deadline};
use crate::domain::{Attempts, Charge, FailureCount, ThrottlePolicy, Timestamp, Username};
use crate::store::rows;
use crate::store::{StoreError, ThrottleStore, sql, unavailable};

impl PostgresStore {
    /// Reads `username`'s counter under a row lock (`FOR UPDATE`), lets `decide` choose the
    /// result and the counter to store (`None`: leave it), and writes it. A missing counter is
    /// first inserted empty, because a row lock cannot lock a row that does not exist; without
    /// a write the transaction is rolled back, so that row never outlives it.
    async fn update_attempts_once<R>(
        &self,
        username: &Username,
        now: Timestamp,
        decide: &(impl Fn(Option<Attempts>) -> (R, Option<Attempts>) + Sync),
    ) -> Result<R, StoreError> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO login_throttle (username, failures, last_failure_at) VALUES ($1, 0, $2) \
             ON CONFLICT (username) DO NOTHING",
        )
        .bind(username.as_str())
        .bind(now.unix_millis())
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
        let row = sqlx::query(
            "SELECT failures, last_failure_at, in_flight, in_flight_at FROM login_throttle \
             WHERE username = $1 FOR UPDATE",
        )
        .bind(username.as_str())
        .fetch_one(&mut *tx)
        .await
        .map_err(unavailable)?;
        let seen = Some(rows::attempts(&row)?).filter(|a| a.failures.is_some() || a.in_flight > 0);
        let (result, write) = decide(seen);
        if let Some(attempts) = write {
            sql::store_attempts!(username, attempts)
                .execute(&mut *tx)
                .await
                .map_err(unavailable)?;
            tx.commit().await.map_err(unavailable)?;
        } else {
            tx.rollback().await.map_err(unavailable)?;
        }
        Ok(result)
    }
}

#[async_trait]
impl ThrottleStore for PostgresStore {
    async fn login_failures(
        &self,
        username: &Username,
    ) -> Result<Option<FailureCount>, StoreError> {
        let row = within_deadline(async {
            sql::failure_count_of!(username)
                .fetch_optional(&self.pool)
                .await
                .map_err(unavailable)
        })
        .await?;
        let count = row.as_ref().map(rows::failure_count).transpose()?;
        Ok(count.filter(|c| c.consecutive_failures > 0))
    }

    async fn charge_login_attempt(
        &self,
        username: &Username,
        policy: &ThrottlePolicy,
        now: Timestamp,
    ) -> Result<Charge, StoreError> {
        let decide = |seen| {
            let charge = policy.charge(seen, now);
            (charge, charge.stored())
        };
        retrying!(self.update_attempts_once(username, now, &decide))
    }

    async fn record_login_failure(
        &self,
        username: &Username,
        policy: &ThrottlePolicy,
        now: Timestamp,
    ) -> Result<FailureCount, StoreError> {
        let decide = |seen| {
            let (failures, left) = policy.fail(seen, now);
            (failures, Some(left))
        };
        retrying!(self.update_attempts_once(username, now, &decide))
    }

    async fn release_login_attempt(
        &self,
        username: &Username,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let decide =
            |seen: Option<Attempts>| ((), seen.map(|_| ThrottlePolicy::release(seen, now)));
        retrying!(self.update_attempts_once(username, now, &decide))
    }

    async fn locked_usernames(&self, locked_at: u32) -> Result<Vec<String>, StoreError> {
        within_deadline(async {
            sql::locked_usernames!(locked_at)
                .fetch_all(&self.pool)
                .await
                .map_err(unavailable)
        })
        .await
    }

    async fn clear_login_failures(&self, username: &Username) -> Result<bool, StoreError> {
        let done = within_deadline(async {
            sql::clear_login_failures!(username)
                .execute(&self.pool)
                .await
                .map_err(unavailable)
        })
        .await?;
        Ok(done.rows_affected() > 0)
    }
}
