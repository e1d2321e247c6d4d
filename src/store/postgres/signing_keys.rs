//! Signing keys on PostgreSQL. A transaction-scoped advisory lock serialises rotating replicas
//! (row locks cannot, when the table is empty), so a conditional insert sees every key another
//! replica committed first.

use async_trait::async_trait;
use sqlx::{Postgres, Transaction};

use super::{PostgresStore, within_deadline};
use crate::domain::{StoredKey, Timestamp};
use crate::store::rows::{self, SIGNING_KEYS_SQL};
use crate::store::{SigningKeyStore, StoreError, sql, unavailable};

/// The advisory-lock key that serialises signing-key rotations across replicas.
const SIGNING_KEYS_LOCK: i64 = 0x6175_7468_645f_6b31; // "authd_k1"

/// Serialises signing-key rotations across replicas: a transaction-scoped advisory lock.
pub(super) async fn lock_signing_keys(
    tx: &mut Transaction<'static, Postgres>,
) -> Result<(), StoreError> {
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(SIGNING_KEYS_LOCK)
        .execute(&mut **tx)
        .await
        .map_err(unavailable)?;
    Ok(())
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

    async fn rewrap_signing_keys(
        &self,
        rewrap: &crate::store::Rewrap<'_>,
    ) -> Result<Result<usize, String>, StoreError> {
        retrying!(self.rewrap_signing_keys_once(rewrap))
    }

    async fn reseal_signing_key(
        &self,
        kid: &str,
        private_key: &[u8],
        encrypted: bool,
    ) -> Result<(), StoreError> {
        within_deadline(async {
            sql::reseal_signing_key!(kid, private_key, encrypted)
                .execute(&self.pool)
                .await
                .map_err(unavailable)?;
            Ok(())
        })
        .await
    }
    async fn set_key_retirement(
        &self,
        kid: &str,
        retires_at: Timestamp,
    ) -> Result<bool, StoreError> {
        within_deadline(async {
            sql::set_key_retirement!(kid, retires_at)
                .execute(&self.pool)
                .await
                .map_err(unavailable)
                .map(|done| done.rows_affected() > 0)
        })
        .await
    }
}
