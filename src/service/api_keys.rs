//! Managing API keys from the CLI and the admin API (`ApiKeyAdmin`): create, list, revoke,
//! each change audited with the acting [`Actor`]. Logging in with one is
//! [`super::ApiKeyLogin`]'s.

use std::sync::Arc;
use std::time::Duration;

use super::users::AdminError;
use super::{Actor, Auditor};
use crate::crypto::api_key::ApiKeySecret;
use crate::domain::{
    ApiKey, ApiKeyId, ApiKeyListing, AuditKind, Clock, Role, User, Username, normalise_roles,
    roles_for_new_key,
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

/// Creates, lists and revokes API keys, as driven by the CLI and the admin API.
pub struct ApiKeyAdmin {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    audit: Auditor,
    actor: Actor,
}

impl ApiKeyAdmin {
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> Self {
        let audit = Auditor::new(Arc::clone(&store));
        Self {
            store,
            clock,
            audit,
            actor: Actor::cli(),
        }
    }

    /// The same, recording `actor` as the one who creates and revokes keys.
    #[must_use]
    pub fn acting_as(mut self, actor: Actor) -> Self {
        self.actor = actor;
        self
    }

    async fn audit(&self, kind: AuditKind, owner: Option<&User>, detail: String) {
        let mut event = self.actor.event(kind, self.clock.now(), Some(detail));
        if let Some(owner) = owner {
            event = event.user(owner);
        }
        self.audit.record(event).await;
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
        let roles = key.roles.iter().map(Role::as_str).collect::<Vec<_>>();
        self.audit(
            AuditKind::ApiKeyCreated,
            Some(&owner),
            format!("key={}; roles={}", key.id, roles.join(",")),
        )
        .await;
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

    /// Revokes a key of `owner` (self-service): someone else's key is as unknown as one that
    /// does not exist.
    ///
    /// # Errors
    /// No key of `owner` with that id; storage.
    pub async fn revoke_own(&self, owner: &User, id: &str) -> Result<ApiKeyId, AdminError> {
        let unknown = || AdminError::UnknownApiKey(id.chars().take(64).collect());
        let parsed = ApiKeyId::parse(id).ok_or_else(unknown)?;
        let found = self
            .store
            .find_api_key(&parsed)
            .await
            .map_err(AdminError::Store)?
            .ok_or_else(unknown)?;
        if found.owner.id != owner.id {
            return Err(unknown());
        }
        self.revoke(id).await
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
            let owner = self
                .store
                .find_api_key(&id)
                .await
                .map_err(AdminError::Store)?
                .map(|k| k.owner);
            self.audit(
                AuditKind::ApiKeyRevoked,
                owner.as_ref(),
                format!("key={id}"),
            )
            .await;
            Ok(id)
        } else {
            Err(unknown())
        }
    }
}
