//! Managing API keys from the CLI (`ApiKeyAdmin`): create, list, revoke. Logging in with one
//! is [`super::ApiKeyLogin`]'s.

use std::sync::Arc;
use std::time::Duration;

use super::users::AdminError;
use crate::crypto::api_key::ApiKeySecret;
use crate::domain::{
    ApiKey, ApiKeyId, ApiKeyListing, Clock, Role, Username, normalise_roles, roles_for_new_key,
};
use crate::store::{Store, StoreError};

/// Longest key name, in characters.
pub const MAX_KEY_NAME_CHARS: usize = 64;

/// A key just created: its record and, this one time, its secret.
#[derive(Debug)]
pub struct CreatedApiKey {
    pub key: ApiKey,
    pub secret: ApiKeySecret,
}

/// Creates, lists and revokes API keys, as driven by the CLI.
pub struct ApiKeyAdmin {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
}

impl ApiKeyAdmin {
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> Self {
        Self { store, clock }
    }

    /// Creates a key for `username` with the given roles (all of the user's when empty; each
    /// must be one the user has), valid for `expires_in` or forever.
    ///
    /// # Errors
    /// Invalid username, name or role; unknown user; a role the user does not have; storage.
    pub async fn create(
        &self,
        username: &str,
        name: &str,
        roles: &[String],
        expires_in: Option<Duration>,
    ) -> Result<CreatedApiKey, AdminError> {
        let username = Username::parse(username)?;
        let name = name.trim();
        if name.is_empty() {
            return Err(AdminError::InvalidKeyName("the name must not be empty"));
        }
        if name.chars().count() > MAX_KEY_NAME_CHARS || name.chars().any(char::is_control) {
            return Err(AdminError::InvalidKeyName(
                "the name must be at most 64 printable characters",
            ));
        }
        let requested = roles
            .iter()
            .map(|r| Role::parse(r))
            .collect::<Result<Vec<_>, _>>()?;
        let owner = self
            .store
            .find_user(&username)
            .await
            .map_err(AdminError::Store)?
            .ok_or_else(|| AdminError::UnknownUser(username.to_string()))?;
        let roles = roles_for_new_key(&owner, normalise_roles(requested))?;
        let secret = ApiKeySecret::generate()?;
        let now = self.clock.now();
        let key = ApiKey {
            id: secret.id().clone(),
            user_id: owner.id.clone(),
            name: name.to_owned(),
            roles,
            created_at: now,
            expires_at: expires_in.map(|d| now.saturating_add(d)),
            last_used_at: None,
            revoked_at: None,
        };
        self.store
            .create_api_key(&key, &secret.hash())
            .await
            .map_err(|e| match e {
                StoreError::UserNotFound => AdminError::UnknownUser(username.to_string()),
                other => AdminError::Store(other),
            })?;
        Ok(CreatedApiKey { key, secret })
    }

    /// Keys of one user, or of everyone.
    ///
    /// # Errors
    /// Invalid username; unknown user; storage.
    pub async fn list(&self, username: Option<&str>) -> Result<Vec<ApiKeyListing>, AdminError> {
        let username = username.map(Username::parse).transpose()?;
        self.store
            .list_api_keys(username.as_ref())
            .await
            .map_err(|e| match (e, &username) {
                (StoreError::UserNotFound, Some(u)) => AdminError::UnknownUser(u.to_string()),
                (other, _) => AdminError::Store(other),
            })
    }

    /// Revokes a key by id. Revoking a revoked key again succeeds.
    ///
    /// # Errors
    /// No key with that id; storage.
    pub async fn revoke(&self, id: &str) -> Result<ApiKeyId, AdminError> {
        let unknown = || AdminError::UnknownApiKey(id.chars().take(64).collect());
        let id = ApiKeyId::parse(id).ok_or_else(unknown)?;
        if self
            .store
            .revoke_api_key(&id, self.clock.now())
            .await
            .map_err(AdminError::Store)?
        {
            Ok(id)
        } else {
            Err(unknown())
        }
    }
}
