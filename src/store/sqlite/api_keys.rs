//! API keys on SQLite: the record and the hash of the secret.

use async_trait::async_trait;

use super::SqliteStore;
use crate::domain::{ApiKey, ApiKeyId, ApiKeyListing, ApiKeySecretHash, Timestamp, Username};
use crate::store::rows::{self, api_key_sql, encode_roles};
use crate::store::{
    ApiKeyStore, StoreError, StoredApiKey, UserStore, api_key_write_error, unavailable,
};

#[async_trait]
impl ApiKeyStore for SqliteStore {
    async fn create_api_key(
        &self,
        key: &ApiKey,
        secret_hash: &ApiKeySecretHash,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO api_keys (id, user_id, name, secret_hash, roles, created_at, expires_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(key.id.as_str())
        .bind(key.user_id.as_str())
        .bind(&key.name)
        .bind(&secret_hash.0[..])
        .bind(encode_roles(&key.roles))
        .bind(key.created_at.unix_millis())
        .bind(key.expires_at.map(Timestamp::unix_millis))
        .execute(&self.pool)
        .await
        .map_err(api_key_write_error)?;
        Ok(())
    }

    async fn find_api_key(&self, id: &ApiKeyId) -> Result<Option<StoredApiKey>, StoreError> {
        let row = sqlx::query(api_key_sql!("WHERE k.id = ?"))
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(unavailable)?;
        row.as_ref().map(rows::stored_api_key).transpose()
    }

    async fn touch_api_key(&self, id: &ApiKeyId, now: Timestamp) -> Result<(), StoreError> {
        sqlx::query("UPDATE api_keys SET last_used_at = ? WHERE id = ?")
            .bind(now.unix_millis())
            .bind(id.as_str())
            .execute(&self.pool)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn list_api_keys(
        &self,
        owner: Option<&Username>,
    ) -> Result<Vec<ApiKeyListing>, StoreError> {
        let found = match owner {
            Some(username) => {
                if self.find_user(username).await?.is_none() {
                    return Err(StoreError::UserNotFound);
                }
                sqlx::query(api_key_sql!(
                    "WHERE u.username = ? ORDER BY k.created_at, k.id"
                ))
                .bind(username.as_str())
                .fetch_all(&self.pool)
                .await
            }
            None => {
                sqlx::query(api_key_sql!("ORDER BY u.username, k.created_at, k.id"))
                    .fetch_all(&self.pool)
                    .await
            }
        }
        .map_err(unavailable)?;
        found.iter().map(rows::api_key_listing).collect()
    }

    async fn revoke_api_key(&self, id: &ApiKeyId, now: Timestamp) -> Result<bool, StoreError> {
        let mut tx = self.begin_immediate().await?;
        let exists: Option<i64> = sqlx::query_scalar("SELECT 1 FROM api_keys WHERE id = ?")
            .bind(id.as_str())
            .fetch_optional(&mut *tx)
            .await
            .map_err(unavailable)?;
        sqlx::query("UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL")
            .bind(now.unix_millis())
            .bind(id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        tx.commit().await.map_err(unavailable)?;
        Ok(exists.is_some())
    }
}
