//! Login-failure counters on PostgreSQL. A charge locks the counter row while the policy
//! decides, so concurrent attempts on one name, on any replica, are charged one after another.

use async_trait::async_trait;

use super::{PostgresStore, within_deadline};
use crate::domain::{Charge, FailureCount, ThrottlePolicy, Timestamp, Username};
use crate::store::rows;
use crate::store::{StoreError, ThrottleStore, sql, unavailable};

impl PostgresStore {
    /// See [`ThrottleStore::charge_login_attempt`]. The counter row is locked (`FOR UPDATE`)
    /// while the policy decides. A missing counter is first inserted with no failures, because
    /// a row lock cannot lock a row that does not exist; that row never outlives the
    /// transaction uncharged.
    async fn charge_login_attempt_once(
        &self,
        username: &Username,
        policy: &ThrottlePolicy,
        now: Timestamp,
    ) -> Result<Charge, StoreError> {
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
            "SELECT failures, last_failure_at FROM login_throttle WHERE username = $1 FOR UPDATE",
        )
        .bind(username.as_str())
        .fetch_one(&mut *tx)
        .await
        .map_err(unavailable)?;
        let seen = Some(rows::failure_count(&row)?).filter(|c| c.consecutive_failures > 0);
        let charge = policy.charge(seen, now);
        match charge {
            Charge::Charged(count) => {
                sqlx::query(
                    "UPDATE login_throttle SET failures = $2, last_failure_at = $3 \
                     WHERE username = $1",
                )
                .bind(username.as_str())
                .bind(i64::from(count.consecutive_failures))
                .bind(count.last_failure_at.unix_millis())
                .execute(&mut *tx)
                .await
                .map_err(unavailable)?;
                tx.commit().await.map_err(unavailable)?;
            }
            // Only a counter with failures can refuse, so there is nothing to keep.
            Charge::Throttled { .. } | Charge::Locked => {
                tx.rollback().await.map_err(unavailable)?;
            }
        }
        Ok(charge)
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
        row.as_ref().map(rows::failure_count).transpose()
    }

    async fn charge_login_attempt(
        &self,
        username: &Username,
        policy: &ThrottlePolicy,
        now: Timestamp,
    ) -> Result<Charge, StoreError> {
        retrying!(self.charge_login_attempt_once(username, policy, now))
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
