//! Users and credentials on SQLite. The changes (password, enabled, roles, deletion) are the
//! shared transactions of `store::procedures`, run in `BEGIN IMMEDIATE`, with `lock_user` from
//! here; those that end sessions revoke them in the same transaction.

use async_trait::async_trait;
use sqlx::{Sqlite, Transaction};

use super::SqliteStore;
use crate::domain::{
    DirectoryAccount, DirectorySession, IdentitySource, Role, Timestamp, TokenHash, User,
    UserCredentials, UserId, Username,
};
use crate::store::rows::{self, credentials_sql, user_sql};
use crate::store::{
    NewUser, RoleChange, StoreError, UserQuery, UserRow, UserStore, sql, unavailable,
    user_write_error,
};

/// The user named `username`, read inside `tx` (under the write lock, it stays as read).
pub(super) async fn lock_user(
    tx: &mut Transaction<'static, Sqlite>,
    username: &Username,
) -> Result<User, StoreError> {
    let row = sql::find_user!(username)
        .fetch_optional(&mut **tx)
        .await
        .map_err(unavailable)?
        .ok_or(StoreError::UserNotFound)?;
    rows::user(&row)
}

#[async_trait]
impl UserStore for SqliteStore {
    async fn create_user(&self, new: &NewUser) -> Result<(), StoreError> {
        sql::insert_user!(new)
            .execute(&self.pool)
            .await
            .map_err(user_write_error)?;
        Ok(())
    }

    async fn find_credentials(
        &self,
        username: &Username,
    ) -> Result<Option<UserCredentials>, StoreError> {
        // A directory user's row has no usable hash: a local login never sees it.
        let row = sqlx::query(credentials_sql!("WHERE username = $1 AND source = 'local'"))
            .bind(username.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(unavailable)?;
        row.as_ref().map(rows::credentials).transpose()
    }

    async fn find_user(&self, username: &Username) -> Result<Option<User>, StoreError> {
        let row = sql::find_user!(username)
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
        sql::upgrade_password_hash!(user, old_hash, new_hash)
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
        self.change_password_once(username, new_hash, now).await
    }

    async fn set_enabled(
        &self,
        username: &Username,
        enabled: bool,
        now: Timestamp,
    ) -> Result<User, StoreError> {
        self.set_enabled_once(username, enabled, now).await
    }

    async fn delete_user(&self, username: &Username) -> Result<User, StoreError> {
        self.delete_user_once(username).await
    }

    async fn change_roles(
        &self,
        username: &Username,
        change: &RoleChange,
    ) -> Result<User, StoreError> {
        self.change_roles_once(username, change).await
    }

    async fn list_users_page(&self, query: &UserQuery) -> Result<Vec<UserRow>, StoreError> {
        let found = sql::users_page!(query)
            .fetch_all(&self.pool)
            .await
            .map_err(unavailable)?;
        found.iter().map(rows::user_row).collect()
    }

    async fn upsert_directory_user(
        &self,
        account: &DirectoryAccount,
        now: Timestamp,
    ) -> Result<User, StoreError> {
        let row = sql::upsert_directory_user!(account, now)
            .fetch_optional(&self.pool)
            .await
            .map_err(user_write_error)?;
        // No row: the id is a local user's (the update's condition failed).
        row.as_ref()
            .map(rows::user)
            .transpose()?
            .ok_or(StoreError::DuplicateUser)
    }

    async fn directory_session(
        &self,
        presented: &TokenHash,
    ) -> Result<Option<DirectorySession>, StoreError> {
        let row = sql::directory_session!(&presented.0[..])
            .fetch_optional(&self.pool)
            .await
            .map_err(unavailable)?;
        row.as_ref().map(rows::directory_session).transpose()
    }

    async fn record_directory_check(
        &self,
        user: &UserId,
        roles: &[Role],
        now: Timestamp,
    ) -> Result<(), StoreError> {
        sql::record_directory_check!(user, roles, now)
            .execute(&self.pool)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn user_source(&self, username: &Username) -> Result<Option<IdentitySource>, StoreError> {
        let source: Option<String> = sql::user_source!(username)
            .fetch_optional(&self.pool)
            .await
            .map_err(unavailable)?;
        source.as_deref().map(rows::identity_source).transpose()
    }
}
