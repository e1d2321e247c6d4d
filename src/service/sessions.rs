//! Sessions (refresh families) as an operator sees them: list a user's or every user's live
//! ones, end one, end all of a user's.
//! Ending sessions is audited (`family_revoked`) with the acting [`Actor`].

use std::sync::Arc;

use super::paging::{Page, PageRequest};
use super::users::AdminError;
use super::{Actor, Auditor};
use crate::domain::Timestamp;
use crate::domain::{AuditKind, Clock, FamilyId, Session, User, Username};
use crate::store::{SessionCursor, Store, StoreError};

/// The cursor a page token of [`SessionAdmin::list_all`] names: `<created ms>.<id>`.
fn parse_cursor(key: &str) -> Result<SessionCursor, AdminError> {
    let (created, id) = key.split_once('.').ok_or(AdminError::InvalidPageToken)?;
    let created = created
        .parse::<i64>()
        .map_err(|_| AdminError::InvalidPageToken)?;
    Ok(SessionCursor {
        created_at: Timestamp::from_unix_millis(created),
        id: FamilyId::from_stored(id.to_owned()),
    })
}

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

    /// One page of every user's live sessions, newest first: a keyset page in SQL, whose
    /// token names the last session shown (its creation time and id), so a walk shows each
    /// session live throughout it once.
    ///
    /// # Errors
    /// Invalid page token; storage.
    pub async fn list_all(&self, page: &PageRequest) -> Result<Page<Session>, AdminError> {
        let after = page.after()?.map(|key| parse_cursor(&key)).transpose()?;
        let sessions = self
            .store
            .list_live_sessions(self.clock.now(), after.as_ref(), page.fetch_limit())
            .await
            .map_err(AdminError::Store)?;
        Ok(page.take(sessions.into_iter(), |s| {
            format!("{}.{}", s.created_at.unix_millis(), s.id)
        }))
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
