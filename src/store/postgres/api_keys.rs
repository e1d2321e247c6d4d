//! API keys on PostgreSQL: the record and the hash of the secret.

use async_trait::async_trait;

use super::{PostgresStore, within_deadline};
use crate::domain::{ApiKey, ApiKeyId, ApiKeyListing, ApiKeySecretHash, Timestamp, Username};
use crate::store::rows::{self, api_key_sql, encode_roles};
use crate::store::{
    ApiKeyStore, StoreError, StoredApiKey, UserStore, api_key_write_error, unavailable,
};

impl PostgresStore {
    async fn revoke_api_key_once(&self, id: &ApiKeyId, now: Timestamp) -> Result<bool, StoreError> {
        let mut tx = self.begin().await?;
        let exists: Option<i32> =
            sqlx::query_scalar("SELECT 1 FROM api_keys WHERE id = $1 FOR UPDATE")
                .bind(id.as_str())
                .fetch_optional(&mut *tx)
                .await
                .map_err(unavailable)?;
        sqlx::query("UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
            .bind(now.unix_millis())
            .bind(id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        tx.commit().await.map_err(unavailable)?;
        Ok(exists.is_some())
    }
}

#[async_trait]
impl ApiKeyStore for PostgresStore {
    async fn create_api_key(
        &self,
        key: &ApiKey,
        secret_hash: &ApiKeySecretHash,
    ) -> Result<(), StoreError> {
        within_deadline(async {
            sqlx::query(
                "INSERT INTO api_keys \
                 (id, user_id, name, secret_hash, roles, created_at, expires_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
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
        })
        .await
    }

    async fn find_api_key(&self, id: &ApiKeyId) -> Result<Option<StoredApiKey>, StoreError> {
        within_deadline(async {
            let row = sqlx::query(api_key_sql!("WHERE k.id = $1"))
                .bind(id.as_str())
                .fetch_optional(&self.pool)
                .await
                .map_err(unavailable)?;
            row.as_ref().map(rows::stored_api_key).transpose()
        })
        .await
    }

    async fn touch_api_key(&self, id: &ApiKeyId, now: Timestamp) -> Result<(), StoreError> {
        within_deadline(async {
            sqlx::query("UPDATE api_keys SET last_used_at = $1 WHERE id = $2")
                .bind(now.unix_millis())
                .bind(id.as_str())
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
            let found = match owner {
                Some(username) => {
                    sqlx::query(api_key_sql!(
                        "WHERE u.username = $1 ORDER BY k.created_at, k.id"
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
        })
        .await
    }

    async fn revoke_api_key(&self, id: &ApiKeyId, now: Timestamp) -> Result<bool, StoreError> {
        retrying!(self.revoke_api_key_once(id, now))
    }
}
