//! Audit events: what happened, to whom, from where. Plain data, no I/O.
//!
//! An event never carries a password, token, key or hash: only the kind, the time, the user
//! (id and username where known), the source address, the request id and a short, fixed-form
//! detail (a family id, a key id, a role list).

use std::fmt;

use super::{Timestamp, User};

/// The kinds of audit events. The `as_str` names are stable: they are stored and logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuditKind {
    LoginSucceeded,
    LoginFailed,
    LoginThrottled,
    TokenRefreshed,
    RefreshReuseDetected,
    FamilyRevoked,
    UserCreated,
    UserChanged,
    UserDisabled,
    UserEnabled,
    UserDeleted,
    UserUnlocked,
    PasswordChanged,
    KeyRotated,
}

impl AuditKind {
    pub const ALL: [AuditKind; 14] = [
        Self::LoginSucceeded,
        Self::LoginFailed,
        Self::LoginThrottled,
        Self::TokenRefreshed,
        Self::RefreshReuseDetected,
        Self::FamilyRevoked,
        Self::UserCreated,
        Self::UserChanged,
        Self::UserDisabled,
        Self::UserEnabled,
        Self::UserDeleted,
        Self::UserUnlocked,
        Self::PasswordChanged,
        Self::KeyRotated,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::LoginSucceeded => "login_succeeded",
            Self::LoginFailed => "login_failed",
            Self::LoginThrottled => "login_throttled",
            Self::TokenRefreshed => "token_refreshed",
            Self::RefreshReuseDetected => "refresh_reuse_detected",
            Self::FamilyRevoked => "family_revoked",
            Self::UserCreated => "user_created",
            Self::UserChanged => "user_changed",
            Self::UserDisabled => "user_disabled",
            Self::UserEnabled => "user_enabled",
            Self::UserDeleted => "user_deleted",
            Self::UserUnlocked => "user_unlocked",
            Self::PasswordChanged => "password_changed",
            Self::KeyRotated => "key_rotated",
        }
    }

    /// The kind named by [`AuditKind::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl fmt::Display for AuditKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// One audit event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    pub time: Timestamp,
    pub kind: AuditKind,
    pub user_id: Option<String>,
    pub username: Option<String>,
    /// The client's address (after trusted-proxy resolution), or `cli` for the command line.
    pub source: Option<String>,
    pub request_id: Option<String>,
    /// Non-secret context: a family id, a key id, a reason.
    pub detail: Option<String>,
}

impl AuditEvent {
    pub fn new(kind: AuditKind, time: Timestamp) -> Self {
        Self {
            time,
            kind,
            user_id: None,
            username: None,
            source: None,
            request_id: None,
            detail: None,
        }
    }

    /// Sets the user id and username from a user.
    #[must_use]
    pub fn user(mut self, user: &User) -> Self {
        self.user_id = Some(user.id.to_string());
        self.username = Some(user.username.to_string());
        self
    }

    #[must_use]
    pub fn username(mut self, username: impl Into<String>) -> Self {
        self.username = Some(username.into());
        self
    }

    #[must_use]
    pub fn source(mut self, source: Option<String>) -> Self {
        self.source = source;
        self
    }

    #[must_use]
    pub fn request_id(mut self, request_id: impl Into<String>) -> Self {
        self.request_id = Some(request_id.into());
        self
    }

    #[must_use]
    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_through_their_names() {
        for kind in AuditKind::ALL {
            assert_eq!(AuditKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(AuditKind::parse("nope"), None);
    }
}
