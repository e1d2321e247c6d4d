//! Signing keys on SQLite. A conditional insert checks and inserts under the write lock
//! (`BEGIN IMMEDIATE`), so processes rotating at once serialise and only the first inserts.

use async_trait::async_trait;
use sqlx::{Sqlite, Transaction};

use super::SqliteStore;
use crate::domain::{StoredKey, Timestamp};
use crate::store::rows::{self, SIGNING_KEYS_SQL};
use crate::store::{SigningKeyStore, StoreError, sql, unavailable};

/// Nothing to lock: `BEGIN IMMEDIATE` holds the database's write lock, so processes rotating
/// at once serialise and only the first inserts.
pub(super) async fn lock_signing_keys(
    _tx: &mut Transaction<'static, Sqlite>,
) -> Result<(), StoreError> {
    Ok(())
}

#[async_trait]
impl SigningKeyStore for SqliteStore {
    async fn signing_keys(&self) -> Result<Vec<StoredKey>, StoreError> {
        let found = sqlx::query(SIGNING_KEYS_SQL)
            .fetch_all(&self.pool)
            .await
            .map_err(unavailable)?;
        found.iter().map(rows::signing_key).collect()
    }

    async fn insert_signing_key_if(
        &self,
        key: &StoredKey,
        unless_activation_after: Option<Timestamp>,
    ) -> Result<bool, StoreError> {
        self.insert_signing_key_if_once(key, unless_activation_after)
            .await
    }

    async fn rewrap_signing_keys(
        &self,
        rewrap: &crate::store::Rewrap<'_>,
    ) -> Result<Result<usize, String>, StoreError> {
        self.rewrap_signing_keys_once(rewrap).await
    }

    async fn reseal_signing_key(
        &self,
        kid: &str,
        private_key: &[u8],
        encrypted: bool,
    ) -> Result<(), StoreError> {
        sql::reseal_signing_key!(kid, private_key, encrypted)
            .execute(&self.pool)
            .await
            .map_err(unavailable)?;
        Ok(())
    }
    async fn set_key_retirement(
        &self,
        kid: &str,
        retires_at: Timestamp,
    ) -> Result<bool, StoreError> {
        sql::set_key_retirement!(kid, retires_at)
            .execute(&self.pool)
            .await
            .map_err(unavailable)
            .map(|done| done.rows_affected() > 0)
    }
}
