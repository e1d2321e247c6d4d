//! Users and credentials on SQLite. Changes that end sessions revoke them in the same
//! `BEGIN IMMEDIATE` transaction (`sessions::revoke_families_of`).

use async_trait::async_trait;
use sqlx::{Sqlite, Transaction};

use super::SqliteStore;
use super::sessions::revoke_families_of;
use crate::domain::{Timestamp, User, UserCredentials, UserId, Username};
use crate::store::rows::{self, credentials_sql, encode_roles, user_sql};
use crate::store::{NewUser, RoleChange, StoreError, UserStore, unavailable, user_write_error};

/// The user named `username`, read inside `tx`.
pub(super) async fn fetch_user(
    tx: &mut Transaction<'static, Sqlite>,
    username: &Username,
) -> Result<User, StoreError> {
    let row = sqlx::query(user_sql!("WHERE username = ?"))
        .bind(username.as_str())
        .fetch_optional(&mut **tx)
        .await
        .map_err(unavailable)?
        .ok_or(StoreError::UserNotFound)?;
    rows::user(&row)
}

#[async_trait]
impl UserStore for SqliteStore {
    async fn create_user(&self, new: &NewUser) -> Result<(), StoreError> {
        let user = &new.user;
        sqlx::query(
            "INSERT INTO users (id, username, password_hash, roles, enabled, created_at, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(user.id.as_str())
        .bind(user.username.as_str())
        .bind(&new.password_hash)
        .bind(encode_roles(&user.roles))
        .bind(user.enabled)
        .bind(user.created_at.unix_millis())
        .bind(user.created_at.unix_millis())
        .execute(&self.pool)
        .await
        .map_err(user_write_error)?;
        Ok(())
    }

    async fn find_credentials(
        &self,
        username: &Username,
    ) -> Result<Option<UserCredentials>, StoreError> {
        let row = sqlx::query(credentials_sql!("WHERE username = ?"))
            .bind(username.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(unavailable)?;
        row.as_ref().map(rows::credentials).transpose()
    }

    async fn find_user(&self, username: &Username) -> Result<Option<User>, StoreError> {
        let row = sqlx::query(user_sql!("WHERE username = ?"))
            .bind(username.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(unavailable)?;
        row.as_ref().map(rows::user).transpose()
    }

    async fn list_users(&self) -> Result<Vec<User>, StoreError> {
        let found = sqlx::query(user_sql!("ORDER BY username"))
            .fetch_all(&self.pool)
            .await
            .map_err(unavailable)?;
        found.iter().map(rows::user).collect()
    }

    async fn upgrade_password_hash(
        &self,
        user: &UserId,
        old_hash: &str,
        new_hash: &str,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE users SET password_hash = ? WHERE id = ? AND password_hash = ?")
            .bind(new_hash)
            .bind(user.as_str())
            .bind(old_hash)
            .execute(&self.pool)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn change_password(
        &self,
        username: &Username,
        new_hash: &str,
        now: Timestamp,
    ) -> Result<User, StoreError> {
        let mut tx = self.begin_immediate().await?;
        let user = fetch_user(&mut tx, username).await?;
        sqlx::query("UPDATE users SET password_hash = ?, updated_at = ? WHERE id = ?")
            .bind(new_hash)
            .bind(now.unix_millis())
            .bind(user.id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        revoke_families_of(&mut tx, &user.id, now, "password changed").await?;
        tx.commit().await.map_err(unavailable)?;
        Ok(user)
    }

    async fn set_enabled(
        &self,
        username: &Username,
        enabled: bool,
        now: Timestamp,
    ) -> Result<User, StoreError> {
        let mut tx = self.begin_immediate().await?;
        let mut user = fetch_user(&mut tx, username).await?;
        sqlx::query("UPDATE users SET enabled = ?, updated_at = ? WHERE id = ?")
            .bind(enabled)
            .bind(now.unix_millis())
            .bind(user.id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        if !enabled {
            revoke_families_of(&mut tx, &user.id, now, "user disabled").await?;
        }
        tx.commit().await.map_err(unavailable)?;
        user.enabled = enabled;
        Ok(user)
    }

    async fn delete_user(&self, username: &Username) -> Result<User, StoreError> {
        let mut tx = self.begin_immediate().await?;
        let user = fetch_user(&mut tx, username).await?;
        // Families and tokens go with it (ON DELETE CASCADE).
        sqlx::query("DELETE FROM users WHERE id = ?")
            .bind(user.id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        tx.commit().await.map_err(unavailable)?;
        Ok(user)
    }

    async fn change_roles(
        &self,
        username: &Username,
        change: &RoleChange,
    ) -> Result<User, StoreError> {
        let mut tx = self.begin_immediate().await?;
        let mut user = fetch_user(&mut tx, username).await?;
        user.roles = change.apply(&user.roles);
        sqlx::query("UPDATE users SET roles = ? WHERE id = ?")
            .bind(encode_roles(&user.roles))
            .bind(user.id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        tx.commit().await.map_err(unavailable)?;
        Ok(user)
    }
}
