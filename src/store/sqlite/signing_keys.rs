//! Signing keys on SQLite. A conditional insert checks and inserts under the write lock
//! (`BEGIN IMMEDIATE`), so processes rotating at once serialise and only the first inserts.

use async_trait::async_trait;

use super::SqliteStore;
use crate::domain::{StoredKey, Timestamp};
use crate::store::rows::{self, SIGNING_KEYS_SQL};
use crate::store::{SigningKeyStore, StoreError, unavailable};

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
        let mut tx = self.begin_immediate().await?;
        let later: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM signing_keys WHERE ?1 IS NULL OR activates_at > ?1",
        )
        .bind(unless_activation_after.map(Timestamp::unix_millis))
        .fetch_one(&mut *tx)
        .await
        .map_err(unavailable)?;
        if later > 0 {
            return Ok(false);
        }
        sqlx::query(
            "UPDATE signing_keys SET retires_at = ?1 WHERE retires_at IS NULL AND activates_at < ?1",
        )
        .bind(key.activates_at.unix_millis())
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
        sqlx::query(
            "INSERT INTO signing_keys \
             (kid, algorithm, private_key, encrypted, created_at, activates_at, retires_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&key.kid)
        .bind(&key.algorithm)
        .bind(&key.private_key)
        .bind(key.encrypted)
        .bind(key.created_at.unix_millis())
        .bind(key.activates_at.unix_millis())
        .bind(key.retires_at.map(Timestamp::unix_millis))
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
        tx.commit().await.map_err(unavailable)?;
        Ok(true)
    }

    async fn reseal_signing_key(
        &self,
        kid: &str,
        private_key: &[u8],
        encrypted: bool,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE signing_keys SET private_key = ?, encrypted = ? WHERE kid = ?")
            .bind(private_key)
            .bind(encrypted)
            .bind(kid)
            .execute(&self.pool)
            .await
            .map_err(unavailable)?;
        Ok(())
    }
}
