//! User administration, as driven by the CLI, and [`AdminError`], the error of every
//! administrative use case (users, API keys, sessions).

use std::sync::Arc;

use crate::crypto::password::{HashError, PasswordHasher};
use crate::domain::{
    Clock, Password, PasswordError, Role, RoleError, User, UserId, Username, UsernameError,
    normalise_roles,
};
use crate::store::{NewUser, RoleChange, Store, StoreError};

/// Why an administrative action failed. Messages are one clear line for an operator.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("invalid username: {0}")]
    InvalidUsername(#[from] UsernameError),
    #[error("invalid password: {0}")]
    InvalidPassword(#[from] PasswordError),
    #[error("{0}")]
    InvalidRole(#[from] RoleError),
    #[error("user {0:?} already exists")]
    DuplicateUser(String),
    #[error("no user named {0:?}")]
    UnknownUser(String),
    #[error("{0}")]
    RoleNotHeld(#[from] crate::domain::RoleNotHeld),
    #[error("invalid api key name: {0}")]
    InvalidKeyName(&'static str),
    #[error("no api key with id {0:?}")]
    UnknownApiKey(String),
    #[error("no session with id {0:?}")]
    UnknownSession(String),
    #[error("{0}")]
    Store(StoreError),
    #[error("{0}")]
    Randomness(#[from] crate::crypto::refresh_token::RandomnessError),
    #[error("{0}")]
    Hash(#[from] HashError),
}

/// Creates, changes and removes users.
pub struct UserAdmin {
    store: Arc<dyn Store>,
    hasher: Arc<PasswordHasher>,
    clock: Arc<dyn Clock>,
    password_min_chars: usize,
}

fn parse_roles(raw: &[String]) -> Result<Vec<Role>, RoleError> {
    raw.iter().map(|r| Role::parse(r)).collect()
}

impl UserAdmin {
    pub fn new(
        store: Arc<dyn Store>,
        hasher: Arc<PasswordHasher>,
        clock: Arc<dyn Clock>,
        password_min_chars: usize,
    ) -> Self {
        Self {
            store,
            hasher,
            clock,
            password_min_chars,
        }
    }

    fn store_error(&self, username: &Username, e: StoreError) -> AdminError {
        match e {
            StoreError::DuplicateUser => AdminError::DuplicateUser(username.to_string()),
            StoreError::UserNotFound => AdminError::UnknownUser(username.to_string()),
            other => AdminError::Store(other),
        }
    }

    /// Creates a user. Everything is validated before the password is hashed, and nothing is
    /// written unless all of it is valid.
    ///
    /// # Errors
    /// Invalid username, password or role; a duplicate user; storage failure.
    pub async fn add(
        &self,
        username: &str,
        password: &str,
        roles: &[String],
    ) -> Result<User, AdminError> {
        let username = Username::parse(username)?;
        let roles = normalise_roles(parse_roles(roles)?);
        let password = Password::new_secret(password, self.password_min_chars)?;
        if self
            .store
            .find_user(&username)
            .await
            .map_err(AdminError::Store)?
            .is_some()
        {
            return Err(AdminError::DuplicateUser(username.to_string()));
        }
        let user = User {
            id: UserId::generate(),
            username,
            roles,
            enabled: true,
            created_at: self.clock.now(),
        };
        let password_hash = self.hasher.hash(password).await?;
        let new = NewUser {
            user,
            password_hash,
        };
        self.store
            .create_user(&new)
            .await
            .map_err(|e| self.store_error(&new.user.username, e))?;
        Ok(new.user)
    }

    /// # Errors
    /// Storage failure.
    pub async fn list(&self) -> Result<Vec<User>, AdminError> {
        self.store.list_users().await.map_err(AdminError::Store)
    }

    /// Sets a new password and ends every session (refresh family) of the user.
    ///
    /// # Errors
    /// Invalid username or password; unknown user; storage failure.
    pub async fn set_password(&self, username: &str, password: &str) -> Result<User, AdminError> {
        let username = Username::parse(username)?;
        let password = Password::new_secret(password, self.password_min_chars)?;
        if self
            .store
            .find_user(&username)
            .await
            .map_err(AdminError::Store)?
            .is_none()
        {
            return Err(AdminError::UnknownUser(username.to_string()));
        }
        let hash = self.hasher.hash(password).await?;
        self.store
            .change_password(&username, &hash, self.clock.now())
            .await
            .map_err(|e| self.store_error(&username, e))
    }

    /// Enables or disables a user; disabling ends every session.
    ///
    /// # Errors
    /// Invalid username; unknown user; storage failure.
    pub async fn set_enabled(&self, username: &str, enabled: bool) -> Result<User, AdminError> {
        let username = Username::parse(username)?;
        self.store
            .set_enabled(&username, enabled, self.clock.now())
            .await
            .map_err(|e| self.store_error(&username, e))
    }

    /// Deletes a user and all its sessions.
    ///
    /// # Errors
    /// Invalid username; unknown user; storage failure.
    pub async fn delete(&self, username: &str) -> Result<User, AdminError> {
        let username = Username::parse(username)?;
        self.store
            .delete_user(&username)
            .await
            .map_err(|e| self.store_error(&username, e))
    }

    /// Adds and removes roles. Tokens already issued keep their roles until they expire.
    ///
    /// # Errors
    /// Invalid username or role; unknown user; storage failure.
    pub async fn change_roles(
        &self,
        username: &str,
        add: &[String],
        remove: &[String],
    ) -> Result<User, AdminError> {
        let username = Username::parse(username)?;
        let change = RoleChange {
            add: parse_roles(add)?,
            remove: parse_roles(remove)?,
        };
        self.store
            .change_roles(&username, &change)
            .await
            .map_err(|e| self.store_error(&username, e))
    }
}
