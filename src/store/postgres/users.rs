//! Users and credentials on PostgreSQL. A change to a user locks the user's row first, then
//! (when it ends sessions) the user's families in id order: `sessions::revoke_families_of`.

use async_trait::async_trait;
use sqlx::{Postgres, Transaction};

use super::sessions::{lock_families_of, revoke_families_of};
use super::{PostgresStore, within_deadline};
use crate::domain::{Timestamp, User, UserCredentials, UserId, Username};
use crate::store::rows::{self, credentials_sql, encode_roles, user_sql};
use crate::store::{NewUser, RoleChange, StoreError, UserStore, unavailable, user_write_error};

/// Loads a user and locks its row, so concurrent changes to one user serialise.
pub(super) async fn lock_user(
    tx: &mut Transaction<'static, Postgres>,
    username: &Username,
) -> Result<User, StoreError> {
    let row = sqlx::query(user_sql!("WHERE username = $1 FOR UPDATE"))
        .bind(username.as_str())
        .fetch_optional(&mut **tx)
        .await
        .map_err(unavailable)?
        .ok_or(StoreError::UserNotFound)?;
    rows::user(&row)
}

impl PostgresStore {
    async fn create_user_once(&self, new: &NewUser) -> Result<(), StoreError> {
        let user = &new.user;
        sqlx::query(
            "INSERT INTO users (id, username, password_hash, roles, enabled, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
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

    async fn change_password_once(
        &self,
        username: &Username,
        new_hash: &str,
        now: Timestamp,
    ) -> Result<User, StoreError> {
        let mut tx = self.begin().await?;
        let user = lock_user(&mut tx, username).await?;
        sqlx::query("UPDATE users SET password_hash = $1, updated_at = $2 WHERE id = $3")
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

    async fn set_enabled_once(
        &self,
        username: &Username,
        enabled: bool,
        now: Timestamp,
    ) -> Result<User, StoreError> {
        let mut tx = self.begin().await?;
        let mut user = lock_user(&mut tx, username).await?;
        sqlx::query("UPDATE users SET enabled = $1, updated_at = $2 WHERE id = $3")
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

    async fn delete_user_once(&self, username: &Username) -> Result<User, StoreError> {
        let mut tx = self.begin().await?;
        let user = lock_user(&mut tx, username).await?;
        lock_families_of(&mut tx, &user.id).await?;
        // Families and tokens go with it (ON DELETE CASCADE).
        sqlx::query("DELETE FROM users WHERE id = $1")
            .bind(user.id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        tx.commit().await.map_err(unavailable)?;
        Ok(user)
    }

    async fn change_roles_once(
        &self,
        username: &Username,
        change: &RoleChange,
    ) -> Result<User, StoreError> {
        let mut tx = self.begin().await?;
        let mut user = lock_user(&mut tx, username).await?;
        user.roles = change.apply(&user.roles);
        sqlx::query("UPDATE users SET roles = $1 WHERE id = $2")
            .bind(encode_roles(&user.roles))
            .bind(user.id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        tx.commit().await.map_err(unavailable)?;
        Ok(user)
    }
}

#[async_trait]
impl UserStore for PostgresStore {
    async fn create_user(&self, new: &NewUser) -> Result<(), StoreError> {
        retrying!(self.create_user_once(new))
    }

    async fn find_credentials(
        &self,
        username: &Username,
    ) -> Result<Option<UserCredentials>, StoreError> {
        within_deadline(async {
            let row = sqlx::query(credentials_sql!("WHERE username = $1"))
                .bind(username.as_str())
                .fetch_optional(&self.pool)
                .await
                .map_err(unavailable)?;
            row.as_ref().map(rows::credentials).transpose()
        })
        .await
    }

    async fn find_user(&self, username: &Username) -> Result<Option<User>, StoreError> {
        within_deadline(async {
            let row = sqlx::query(user_sql!("WHERE username = $1"))
                .bind(username.as_str())
                .fetch_optional(&self.pool)
                .await
                .map_err(unavailable)?;
            row.as_ref().map(rows::user).transpose()
        })
        .await
    }

    async fn list_users(&self) -> Result<Vec<User>, StoreError> {
        within_deadline(async {
            let found = sqlx::query(user_sql!("ORDER BY username"))
                .fetch_all(&self.pool)
                .await
                .map_err(unavailable)?;
            found.iter().map(rows::user).collect()
        })
        .await
    }

    async fn upgrade_password_hash(
        &self,
        user: &UserId,
        old_hash: &str,
        new_hash: &str,
    ) -> Result<(), StoreError> {
        within_deadline(async {
            sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2 AND password_hash = $3")
                .bind(new_hash)
                .bind(user.as_str())
                .bind(old_hash)
                .execute(&self.pool)
                .await
                .map_err(unavailable)?;
            Ok(())
        })
        .await
    }

    async fn change_password(
        &self,
        username: &Username,
        new_hash: &str,
        now: Timestamp,
    ) -> Result<User, StoreError> {
        retrying!(self.change_password_once(username, new_hash, now))
    }

    async fn set_enabled(
        &self,
        username: &Username,
        enabled: bool,
        now: Timestamp,
    ) -> Result<User, StoreError> {
        retrying!(self.set_enabled_once(username, enabled, now))
    }

    async fn delete_user(&self, username: &Username) -> Result<User, StoreError> {
        retrying!(self.delete_user_once(username))
    }

    async fn change_roles(
        &self,
        username: &Username,
        change: &RoleChange,
    ) -> Result<User, StoreError> {
        retrying!(self.change_roles_once(username, change))
    }
}
