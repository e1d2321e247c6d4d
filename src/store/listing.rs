//! What the administrative listings ask the store for: one page of users, of live sessions or
//! of audit events, selected and ordered in SQL with keyset pagination (`WHERE key > $cursor
//! ORDER BY key LIMIT n`), never by loading everything and filtering in memory.
//!
//! The types here are plain conditions; the statements are `store::sql`'s and each backend
//! runs them on its pool. Paging tokens and page sizes are the service's
//! (`crate::service::paging`), not this module's.

use crate::domain::{AuditEvent, AuditKind, FamilyId, Role, Timestamp, User};

/// Which users a page lists, in username order; every set condition holds.
#[derive(Debug, Clone, Default)]
pub struct UserQuery {
    /// Only usernames after this one (the last of the previous page).
    pub after: Option<String>,
    /// Only usernames starting with this.
    pub name_prefix: Option<String>,
    /// Only users holding this role.
    pub role: Option<Role>,
    pub disabled_only: bool,
    /// Only users whose login-failure counter has `locked_at` failures or more.
    pub locked_only: bool,
    /// The failures at which a name is locked (`throttle_max_failures`).
    pub locked_at: u32,
    /// How many rows at most.
    pub limit: u32,
}

/// A user as a page lists it, with whether its name is locked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRow {
    pub user: User,
    pub locked: bool,
}

/// Where a page of every user's live sessions starts: after the session created at
/// `created_at` with id `id` (newest first, ties by id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionCursor {
    pub created_at: Timestamp,
    pub id: FamilyId,
}

/// Which audit events a page lists; every set condition holds.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub kind: Option<AuditKind>,
    pub username: Option<String>,
    /// At or after.
    pub from: Option<Timestamp>,
    /// Before.
    pub to: Option<Timestamp>,
    /// Newest first: only events with an id below this one (the last of the previous page).
    pub before_id: Option<i64>,
    pub limit: u32,
}

/// A stored audit event with its id: its place in the trail (later events, larger ids).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    pub id: i64,
    pub event: AuditEvent,
}
