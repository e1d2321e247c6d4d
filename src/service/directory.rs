//! The directory as an identity source (issue 19): the login's LDAP step and the refresh's
//! recheck, over [`crate::ldap::Directory`].
//!
//! - [`DirectorySource::check_password`]: the directory checks the password; an accepted user
//!   gets (or updates) a local row just in time (`Store::upsert_directory_user`): a stable id
//!   from the entry's `entryUUID`, the roles `role_map` gives, no usable password hash.
//! - [`DirectorySource::recheck`]: before a refresh rotates a directory user's token, at most
//!   every `recheck_interval`, the entry is read again: gone, disabled or in no mapped group
//!   ends the session there (audited); otherwise the roles are stored, so the rotation's access
//!   token carries them. A directory that does not answer makes a due recheck UNAVAILABLE —
//!   never a revocation — while sessions checked within the interval go on without asking.
//!
//! Every directory call is bounded by `ldap.timeout` as a whole. Nothing about the directory
//! reaches a client: its errors become [`AuthError::Unavailable`] (logged, answered with the
//! fixed message) or the one refusal every login shares.

use std::sync::Arc;
use std::time::Duration;

use tracing::{info, warn};

use super::RequestContext;
use super::auth::AuthError;
use super::login::PasswordCheck;
use super::shared::Context;
use crate::domain::{
    AuditEvent, AuditKind, DirectoryAccount, DirectoryVerdict, IdentitySource, Role, TokenHash,
    Username, recheck_due,
};
use crate::ldap::{Directory, DirectoryError, DirectoryUser, LdapSettings};
use crate::store::StoreError;

/// Where password logins are checked, in the configured order, with the directory when one is
/// named. The default is the local database only.
#[derive(Debug, Clone)]
pub struct IdentitySources {
    order: Vec<IdentitySource>,
    directory: Option<Arc<DirectorySource>>,
}

impl Default for IdentitySources {
    fn default() -> Self {
        Self {
            order: vec![IdentitySource::Local],
            directory: None,
        }
    }
}

impl IdentitySources {
    /// The sources named by `identity_sources` (`local`, `ldap`), connecting nothing yet.
    ///
    /// # Errors
    /// An unknown name, or `ldap` with unusable `[ldap]` settings.
    pub fn new(names: &[String], ldap: &LdapSettings) -> Result<Self, String> {
        let order = names
            .iter()
            .map(|n| {
                IdentitySource::parse(n).ok_or_else(|| format!("unknown identity source {n:?}"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let directory = if order.contains(&IdentitySource::Ldap) {
            let directory = Directory::new(ldap.clone()).map_err(|e| e.to_string())?;
            Some(Arc::new(DirectorySource::new(Arc::new(directory))))
        } else {
            None
        };
        Ok(Self { order, directory })
    }

    pub fn order(&self) -> &[IdentitySource] {
        &self.order
    }

    /// The directory, when `ldap` is a source.
    pub fn directory(&self) -> Option<&Arc<DirectorySource>> {
        self.directory.as_ref()
    }

    pub fn uses_local(&self) -> bool {
        self.order.contains(&IdentitySource::Local)
    }
}

/// The directory's part in logins and refreshes.
#[derive(Debug)]
pub struct DirectorySource {
    directory: Arc<Directory>,
    timeout: Duration,
    recheck_interval: Duration,
}

impl DirectorySource {
    pub fn new(directory: Arc<Directory>) -> Self {
        let settings = directory.settings();
        Self {
            timeout: settings.timeout,
            recheck_interval: settings.recheck_interval,
            directory,
        }
    }

    /// Checks `password` against the directory and, when it is accepted, makes or updates the
    /// user's local row. `password` is non-empty (the login refused an empty one before).
    ///
    /// # Errors
    /// [`AuthError::Unavailable`] when the directory does not answer within `timeout`, or
    /// fails, or storage fails.
    pub(super) async fn check_password(
        &self,
        shared: &Context,
        username: &Username,
        password: &str,
    ) -> Result<PasswordCheck, AuthError> {
        if password.is_empty() {
            // Never an unauthenticated bind (RFC 4513 5.1.2), whatever the caller did.
            return Ok(PasswordCheck::Refused(None, "empty password"));
        }
        let found = self
            .bounded(self.directory.authenticate(username.as_str(), password))
            .await;
        let entry = match found {
            Ok(entry) => entry,
            Err(DirectoryError::InvalidCredentials) => {
                return Ok(PasswordCheck::Refused(
                    None,
                    "directory: unknown user, wrong password, disabled or in no mapped group",
                ));
            }
            Err(e) => return Err(unavailable(e)),
        };
        let account = match account_of(&entry, username) {
            Ok(account) => account,
            Err(why) => {
                warn!(target: "authd::ldap", username = %username, reason = why,
                    "directory user refused: unusable entry");
                return Ok(PasswordCheck::Refused(None, "directory: unusable entry"));
            }
        };
        match shared
            .store()
            .upsert_directory_user(&account, shared.now())
            .await
        {
            Ok(user) if !user.enabled => Ok(PasswordCheck::Refused(Some(user), "user disabled")),
            Ok(user) => Ok(PasswordCheck::Accepted(user, IdentitySource::Ldap)),
            Err(StoreError::DuplicateUser) => Ok(PasswordCheck::Refused(
                None,
                "directory: the username is held by a local user or another directory entry",
            )),
            Err(e) => Err(e.into()),
        }
    }

    /// The refresh's step before rotating `presented`: when it belongs to a directory user
    /// whose last check is older than `recheck_interval`, reads the entry again and ends the
    /// session if the user is gone, disabled or in no mapped group.
    ///
    /// # Errors
    /// - [`AuthError::InvalidRefreshToken`] when the session was ended here;
    /// - [`AuthError::Unavailable`] when a due recheck cannot reach the directory, or storage
    ///   fails. Nothing is revoked then.
    pub(super) async fn recheck(
        &self,
        shared: &Context,
        presented: &TokenHash,
        ctx: &RequestContext,
    ) -> Result<(), AuthError> {
        let store = shared.store();
        let Some(session) = store.directory_session(presented).await? else {
            return Ok(());
        };
        let now = shared.now();
        if !recheck_due(session.checked_at, self.recheck_interval, now) {
            return Ok(());
        }
        let username = session.user.username.as_str();
        let found = self
            .bounded(self.directory.lookup(username))
            .await
            .map_err(unavailable)?;
        let verdict = DirectoryVerdict::of(
            &session.external_id,
            found
                .as_ref()
                .map(|e| (e.id.as_str(), e.disabled, !e.roles.is_empty())),
        );
        if let (DirectoryVerdict::Keep, Some(entry)) = (verdict, &found) {
            let roles = parse_roles(&entry.roles);
            store
                .record_directory_check(&session.user.id, &roles, now)
                .await?;
            return Ok(());
        }
        store.revoke_family(&session.family_id, now).await?;
        info!(target: "authd::refresh", user_id = %session.user.id, username = %username,
            family = %session.family_id, reason = verdict.as_str(), outcome = "revoked",
            "directory recheck ended the session");
        crate::metrics::refresh("rejected");
        shared
            .audit()
            .record(
                AuditEvent::new(AuditKind::FamilyRevoked, now)
                    .user(&session.user)
                    .source(ctx.source_label())
                    .request_id(ctx.request_id.as_str())
                    .detail(format!(
                        "family={} reason=directory recheck: {}",
                        session.family_id,
                        verdict.as_str()
                    )),
            )
            .await;
        Err(AuthError::InvalidRefreshToken)
    }

    /// `op` with `timeout` over the whole of it (connecting, binding, searching).
    async fn bounded<T>(
        &self,
        op: impl Future<Output = Result<T, DirectoryError>>,
    ) -> Result<T, DirectoryError> {
        tokio::time::timeout(self.timeout, op)
            .await
            .unwrap_or_else(|_| {
                Err(DirectoryError::Unavailable(format!(
                    "no answer within {:?}",
                    self.timeout
                )))
            })
    }
}

fn unavailable(e: DirectoryError) -> AuthError {
    AuthError::Unavailable(Box::new(e))
}

/// Roles from the directory's role names; `role_map` was validated at start, so none is
/// dropped in practice.
fn parse_roles(names: &[String]) -> Vec<Role> {
    names.iter().filter_map(|r| Role::parse(r).ok()).collect()
}

/// The local account of a directory entry found under `username` (the name as the login
/// normalised it, which is what the row is called).
fn account_of(
    entry: &DirectoryUser,
    username: &Username,
) -> Result<DirectoryAccount, &'static str> {
    DirectoryAccount::new(&entry.id, username.clone(), parse_roles(&entry.roles))
}
