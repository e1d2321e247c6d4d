//! User administration, as driven by the CLI and the admin API, and [`AdminError`], the error
//! of every administrative use case (users, API keys, sessions). Every change is an audit
//! event naming its [`Actor`] (the CLI on the host: source `cli`).

use std::sync::Arc;

use crate::crypto::password::{HashError, PasswordHasher};
use crate::domain::{
    AuditEvent, AuditKind, Clock, IdentitySource, PasswordError, PasswordPolicy, Role, RoleError,
    User, UserId, Username, UsernameError, normalise_roles,
};
use crate::store::{NewUser, RoleChange, Store, StoreError, UserQuery};

use super::paging::{Page, PageRequest};
use super::{Actor, Auditor};

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
    /// The user's password is checked by the directory (issue 19): it is changed there.
    #[error(
        "user {0:?} comes from the directory (ldap): its password is changed in the directory, not here"
    )]
    DirectoryUser(String),
    #[error("{0}")]
    RoleNotHeld(#[from] crate::domain::RoleNotHeld),
    #[error("invalid api key name: {0}")]
    InvalidKeyName(&'static str),
    #[error("no api key with id {0:?}")]
    UnknownApiKey(String),
    #[error("no session with id {0:?}")]
    UnknownSession(String),
    #[error("invalid page token")]
    InvalidPageToken,
    #[error("{0}")]
    InvalidQuery(String),
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
    password_policy: PasswordPolicy,
    audit: Auditor,
    actor: Actor,
}

/// Which users a listing shows; every set condition must hold.
#[derive(Debug, Clone, Default)]
pub struct UserFilter {
    /// Usernames starting with this (compared with the normalised name).
    pub name_prefix: Option<String>,
    pub role: Option<String>,
    pub disabled_only: bool,
    /// Only names locked after `locked_at` failures.
    pub locked_only: bool,
}

/// A user as listed: the record and whether its name is locked.
#[derive(Debug, Clone)]
pub struct ListedUser {
    pub user: User,
    pub locked: bool,
}

fn parse_roles(raw: &[String]) -> Result<Vec<Role>, RoleError> {
    raw.iter().map(|r| Role::parse(r)).collect()
}

impl UserAdmin {
    pub fn new(
        store: Arc<dyn Store>,
        hasher: Arc<PasswordHasher>,
        clock: Arc<dyn Clock>,
        password_policy: PasswordPolicy,
    ) -> Self {
        let audit = Auditor::new(Arc::clone(&store));
        Self {
            store,
            hasher,
            clock,
            password_policy,
            audit,
            actor: Actor::cli(),
        }
    }

    /// The same, recording `actor` as the one who makes every change.
    #[must_use]
    pub fn acting_as(mut self, actor: Actor) -> Self {
        self.actor = actor;
        self
    }

    async fn audit(&self, kind: AuditKind, user: &User, detail: Option<String>) {
        let event = self.actor.event(kind, self.clock.now(), detail).user(user);
        self.audit.record(event).await;
    }

    /// Clears the login-failure counter of `username`, whether or not such a user exists.
    /// Returns whether there was one.
    ///
    /// # Errors
    /// Invalid username; storage failure.
    pub async fn unlock(&self, username: &str) -> Result<bool, AdminError> {
        let username = Username::parse(username)?;
        let cleared = self
            .store
            .clear_login_failures(&username)
            .await
            .map_err(AdminError::Store)?;
        let user = self
            .store
            .find_user(&username)
            .await
            .map_err(AdminError::Store)?;
        let mut event = self
            .actor
            .event(
                AuditKind::UserUnlocked,
                self.clock.now(),
                Some(format!("counter_cleared={cleared}")),
            )
            .username(username.as_str());
        if let Some(user) = &user {
            event = event.user(user);
        }
        self.audit.record(event).await;
        Ok(cleared)
    }

    /// The newest `limit` audit events, of `username` only when given, oldest first.
    ///
    /// # Errors
    /// Invalid username; storage failure.
    pub async fn audit_tail(
        &self,
        username: Option<&str>,
        limit: u32,
    ) -> Result<Vec<AuditEvent>, AdminError> {
        let username = username.map(Username::parse).transpose()?;
        self.audit
            .tail(username.as_ref().map(Username::as_str), limit)
            .await
            .map_err(AdminError::Store)
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
        let password = self.password_policy.accept(password)?;
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
        let roles = new.user.roles.iter().map(Role::as_str).collect::<Vec<_>>();
        self.audit(
            AuditKind::UserCreated,
            &new.user,
            Some(format!("roles={}", roles.join(","))),
        )
        .await;
        Ok(new.user)
    }

    /// # Errors
    /// Storage failure.
    pub async fn list(&self) -> Result<Vec<User>, AdminError> {
        self.store.list_users().await.map_err(AdminError::Store)
    }

    /// One user by name.
    ///
    /// # Errors
    /// Invalid username; unknown user; storage failure.
    pub async fn get(&self, username: &str) -> Result<User, AdminError> {
        let username = Username::parse(username)?;
        self.store
            .find_user(&username)
            .await
            .map_err(AdminError::Store)?
            .ok_or_else(|| AdminError::UnknownUser(username.to_string()))
    }

    /// One page of the users `filter` selects, in username order, each with whether it is
    /// locked after `locked_at` failures. The page token is the last username shown, so a
    /// walk over all pages returns every user that exists throughout it exactly once, whatever
    /// is added or removed meanwhile.
    ///
    /// # Errors
    /// Invalid role or page token; storage failure.
    pub async fn list_page(
        &self,
        filter: &UserFilter,
        locked_at: u32,
        page: &PageRequest,
    ) -> Result<Page<ListedUser>, AdminError> {
        let query = UserQuery {
            after: page.after()?,
            name_prefix: filter.name_prefix.clone(),
            role: filter.role.as_deref().map(Role::parse).transpose()?,
            disabled_only: filter.disabled_only,
            locked_only: filter.locked_only,
            locked_at,
            limit: page.fetch_limit(),
        };
        // Filtered, ordered and cut in SQL (keyset on the username): a page costs one
        // indexed range read, however many users there are.
        let rows = self
            .store
            .list_users_page(&query)
            .await
            .map_err(AdminError::Store)?;
        let users = rows.into_iter().map(|r| ListedUser {
            user: r.user,
            locked: r.locked,
        });
        Ok(page.take(users, |u| u.user.username.to_string()))
    }

    /// The names locked after `locked_at` consecutive failed logins (`throttle_max_failures`),
    /// users or not; `unlock` clears them.
    ///
    /// # Errors
    /// Storage failure.
    pub async fn locked(&self, locked_at: u32) -> Result<Vec<String>, AdminError> {
        self.store
            .locked_usernames(locked_at)
            .await
            .map_err(AdminError::Store)
    }

    /// Whether `username` is a user whose password authd keeps (not a directory user's).
    ///
    /// # Errors
    /// Unknown user; [`AdminError::DirectoryUser`]; storage failure.
    pub async fn password_settable(&self, username: &Username) -> Result<(), AdminError> {
        match self
            .store
            .user_source(username)
            .await
            .map_err(AdminError::Store)?
        {
            None => Err(AdminError::UnknownUser(username.to_string())),
            Some(IdentitySource::Ldap) => Err(AdminError::DirectoryUser(username.to_string())),
            Some(IdentitySource::Local) => Ok(()),
        }
    }

    /// Sets a new password and ends every session (refresh family) of the user.
    ///
    /// # Errors
    /// Invalid username or password; unknown user; a directory user
    /// ([`AdminError::DirectoryUser`]: their password is the directory's); storage failure.
    pub async fn set_password(&self, username: &str, password: &str) -> Result<User, AdminError> {
        let username = Username::parse(username)?;
        self.password_settable(&username).await?;
        let password = self.password_policy.accept(password)?;
        let hash = self.hasher.hash(password).await?;
        let user = self
            .store
            .change_password(&username, &hash, self.clock.now())
            .await
            .map_err(|e| self.store_error(&username, e))?;
        self.audit(
            AuditKind::PasswordChanged,
            &user,
            Some("sessions ended".into()),
        )
        .await;
        Ok(user)
    }

    /// Enables or disables a user; disabling ends every session.
    ///
    /// # Errors
    /// Invalid username; unknown user; storage failure.
    pub async fn set_enabled(&self, username: &str, enabled: bool) -> Result<User, AdminError> {
        let username = Username::parse(username)?;
        let user = self
            .store
            .set_enabled(&username, enabled, self.clock.now())
            .await
            .map_err(|e| self.store_error(&username, e))?;
        if enabled {
            self.audit(AuditKind::UserEnabled, &user, None).await;
        } else {
            self.audit(
                AuditKind::UserDisabled,
                &user,
                Some("sessions ended".into()),
            )
            .await;
        }
        Ok(user)
    }

    /// Deletes a user and all its sessions.
    ///
    /// # Errors
    /// Invalid username; unknown user; storage failure.
    pub async fn delete(&self, username: &str) -> Result<User, AdminError> {
        let username = Username::parse(username)?;
        let user = self
            .store
            .delete_user(&username)
            .await
            .map_err(|e| self.store_error(&username, e))?;
        self.audit(AuditKind::UserDeleted, &user, None).await;
        Ok(user)
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
        let user = self
            .store
            .change_roles(&username, &change)
            .await
            .map_err(|e| self.store_error(&username, e))?;
        let roles = user.roles.iter().map(Role::as_str).collect::<Vec<_>>();
        self.audit(
            AuditKind::UserChanged,
            &user,
            Some(format!("roles={}", roles.join(","))),
        )
        .await;
        Ok(user)
    }
}
