//! Sessions (refresh families) as an operator sees them: list a user's, end one, end all.
//! Ending sessions is audited (`family_revoked`) with the acting [`Actor`].

use std::sync::Arc;

use super::users::AdminError;
use super::{Actor, Auditor};
use crate::domain::{AuditKind, Clock, FamilyId, Session, User, Username};
use crate::store::{Store, StoreError};

/// Lists and ends sessions, as driven by the CLI and the admin API.
pub struct SessionAdmin {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    audit: Auditor,
    actor: Actor,
}

impl SessionAdmin {
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> Self {
        let audit = Auditor::new(Arc::clone(&store));
        Self {
            store,
            clock,
            audit,
            actor: Actor::cli(),
        }
    }

    /// The same, recording `actor` as the one who ends sessions.
    #[must_use]
    pub fn acting_as(mut self, actor: Actor) -> Self {
        self.actor = actor;
        self
    }

    async fn audit(&self, user: &User, detail: String) {
        let event = self
            .actor
            .event(AuditKind::FamilyRevoked, self.clock.now(), Some(detail))
            .user(user);
        self.audit.record(event).await;
    }

    fn user_error(username: &Username, e: StoreError) -> AdminError {
        match e {
            StoreError::UserNotFound => AdminError::UnknownUser(username.to_string()),
            other => AdminError::Store(other),
        }
    }

    /// The user's live sessions, newest first.
    ///
    /// # Errors
    /// Invalid username; unknown user; storage.
    pub async fn list(&self, username: &str) -> Result<Vec<Session>, AdminError> {
        let username = Username::parse(username)?;
        self.store
            .list_sessions(&username, self.clock.now())
            .await
            .map_err(|e| Self::user_error(&username, e))
    }

    /// Ends one session: every refresh token of it stops working. Ending an ended session
    /// again succeeds.
    ///
    /// # Errors
    /// No session with that id; storage.
    pub async fn revoke(&self, id: &str) -> Result<Session, AdminError> {
        let id = FamilyId::from_stored(id.to_owned());
        let session = self
            .store
            .find_session(&id)
            .await
            .map_err(AdminError::Store)?
            .ok_or_else(|| AdminError::UnknownSession(id.as_str().chars().take(64).collect()))?;
        self.store
            .revoke_family(&id, self.clock.now())
            .await
            .map_err(AdminError::Store)?;
        self.audit(&session.user, format!("family={}", session.id))
            .await;
        Ok(session)
    }

    /// Ends one session of `owner` (self-service): a session of someone else is as unknown as
    /// one that does not exist.
    ///
    /// # Errors
    /// No session of `owner` with that id; storage.
    pub async fn revoke_own(&self, owner: &User, id: &str) -> Result<Session, AdminError> {
        let unknown = || AdminError::UnknownSession(id.chars().take(64).collect());
        let found = self
            .store
            .find_session(&FamilyId::from_stored(id.to_owned()))
            .await
            .map_err(AdminError::Store)?
            .ok_or_else(unknown)?;
        if found.user.id != owner.id {
            return Err(unknown());
        }
        self.revoke(id).await
    }

    /// Ends every session of the user; returns how many were live.
    ///
    /// # Errors
    /// Invalid username; unknown user; storage.
    pub async fn revoke_all(&self, username: &str) -> Result<(User, u64), AdminError> {
        let username = Username::parse(username)?;
        let (user, count) = self
            .store
            .revoke_sessions_of(&username, self.clock.now())
            .await
            .map_err(|e| Self::user_error(&username, e))?;
        self.audit(&user, format!("all sessions; live={count}"))
            .await;
        Ok((user, count))
    }
}
