//! Signing keys on PostgreSQL. A transaction-scoped advisory lock serialises rotating replicas
//! (row locks cannot, when the table is empty), so a conditional insert sees every key another
//! replica committed first.

use async_trait::async_trait;

use super::{PostgresStore, within_deadline};
use crate::domain::{StoredKey, Timestamp};
use crate::store::rows::{self, SIGNING_KEYS_SQL};
use crate::store::{SigningKeyStore, StoreError, unavailable};

/// The advisory-lock key that serialises signing-key rotations across replicas.
const SIGNING_KEYS_LOCK: i64 = 0x6175_7468_645f_6b31; // "authd_k1"

impl PostgresStore {
    /// See [`SigningKeyStore::insert_signing_key_if`].
    async fn insert_signing_key_if_once(
        &self,
        key: &StoredKey,
        unless_activation_after: Option<Timestamp>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(SIGNING_KEYS_LOCK)
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        let later: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM signing_keys WHERE $1::BIGINT IS NULL OR activates_at > $1",
        )
        .bind(unless_activation_after.map(Timestamp::unix_millis))
        .fetch_one(&mut *tx)
        .await
        .map_err(unavailable)?;
        if later > 0 {
            return Ok(false);
        }
        sqlx::query(
            "UPDATE signing_keys SET retires_at = $1 WHERE retires_at IS NULL AND activates_at < $1",
        )
        .bind(key.activates_at.unix_millis())
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
        sqlx::query(
            "INSERT INTO signing_keys \
             (kid, algorithm, private_key, encrypted, created_at, activates_at, retires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
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
}

#[async_trait]
impl SigningKeyStore for PostgresStore {
    async fn signing_keys(&self) -> Result<Vec<StoredKey>, StoreError> {
        within_deadline(async {
            let found = sqlx::query(SIGNING_KEYS_SQL)
                .fetch_all(&self.pool)
                .await
                .map_err(unavailable)?;
            found.iter().map(rows::signing_key).collect()
        })
        .await
    }

    async fn insert_signing_key_if(
        &self,
        key: &StoredKey,
        unless_activation_after: Option<Timestamp>,
    ) -> Result<bool, StoreError> {
        retrying!(self.insert_signing_key_if_once(key, unless_activation_after))
    }

    async fn reseal_signing_key(
        &self,
        kid: &str,
        private_key: &[u8],
        encrypted: bool,
    ) -> Result<(), StoreError> {
        within_deadline(async {
            sqlx::query("UPDATE signing_keys SET private_key = $1, encrypted = $2 WHERE kid = $3")
                .bind(private_key)
                .bind(encrypted)
                .bind(kid)
                .execute(&self.pool)
                .await
                .map_err(unavailable)?;
            Ok(())
        })
        .await
    }
}
