//! API keys on PostgreSQL: the record and the hash of the secret.

use async_trait::async_trait;
use sqlx::{Postgres, Transaction};

use super::{PostgresStore, within_deadline};
use crate::domain::{ApiKey, ApiKeyId, ApiKeyListing, ApiKeySecretHash, Timestamp, Username};
use crate::store::rows;
use crate::store::{
    ApiKeyStore, StoreError, StoredApiKey, UserStore, api_key_write_error, sql, unavailable,
};

/// Whether key `id` exists, its row locked for the transaction.
pub(super) async fn lock_api_key(
    tx: &mut Transaction<'static, Postgres>,
    id: &ApiKeyId,
) -> Result<bool, StoreError> {
    let found: Option<i32> = sqlx::query_scalar("SELECT 1 FROM api_keys WHERE id = $1 FOR UPDATE")
        .bind(id.as_str())
        .fetch_optional(&mut **tx)
        .await
        .map_err(unavailable)?;
    Ok(found.is_some())
}

#[async_trait]
impl ApiKeyStore for PostgresStore {
    async fn create_api_key(
        &self,
        key: &ApiKey,
        secret_hash: &ApiKeySecretHash,
    ) -> Result<(), StoreError> {
        within_deadline(async {
            sql::insert_api_key!(key, secret_hash)
                .execute(&self.pool)
                .await
                .map_err(api_key_write_error)?;
            Ok(())
        })
        .await
    }

    async fn find_api_key(&self, id: &ApiKeyId) -> Result<Option<StoredApiKey>, StoreError> {
        within_deadline(async {
            let row = sql::find_api_key!(id)
                .fetch_optional(&self.pool)
                .await
                .map_err(unavailable)?;
            row.as_ref().map(rows::stored_api_key).transpose()
        })
        .await
    }

    async fn touch_api_key(&self, id: &ApiKeyId, now: Timestamp) -> Result<(), StoreError> {
        within_deadline(async {
            sql::touch_api_key!(id, now)
                .execute(&self.pool)
                .await
                .map_err(unavailable)?;
            Ok(())
        })
        .await
    }

    async fn list_api_keys(
        &self,
        owner: Option<&Username>,
    ) -> Result<Vec<ApiKeyListing>, StoreError> {
        if let Some(username) = owner
            && self.find_user(username).await?.is_none()
        {
            return Err(StoreError::UserNotFound);
        }
        within_deadline(async {
            let found = sql::list_api_keys!(owner)
                .fetch_all(&self.pool)
                .await
                .map_err(unavailable)?;
            found.iter().map(rows::api_key_listing).collect()
        })
        .await
    }

    async fn revoke_api_key(&self, id: &ApiKeyId, now: Timestamp) -> Result<bool, StoreError> {
        retrying!(self.revoke_api_key_once(id, now))
    }
}
