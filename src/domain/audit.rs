//! Audit events: what happened, to whom, from where. Plain data, no I/O.
//!
//! An event never carries a password, token, key or hash: only the kind, the time, the user
//! (id and username where known), the source address, the request id and a short, fixed-form
//! detail (a family id, a key id, a role list).

use std::fmt;

use super::{Rotation, Timestamp, User};

/// The kinds of audit events. The `as_str` names are stable: they are stored and logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuditKind {
    LoginSucceeded,
    LoginFailed,
    LoginThrottled,
    LoginLocked,
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
    ApiKeyCreated,
    ApiKeyRevoked,
}

impl AuditKind {
    pub const ALL: [AuditKind; 17] = [
        Self::LoginSucceeded,
        Self::LoginFailed,
        Self::LoginThrottled,
        Self::LoginLocked,
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
        Self::ApiKeyCreated,
        Self::ApiKeyRevoked,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::LoginSucceeded => "login_succeeded",
            Self::LoginFailed => "login_failed",
            Self::LoginThrottled => "login_throttled",
            Self::LoginLocked => "login_locked",
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
            Self::ApiKeyCreated => "api_key_created",
            Self::ApiKeyRevoked => "api_key_revoked",
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

/// Where a request came from, as its audit events record it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Origin {
    /// The client's address (after trusted-proxy resolution), when known.
    pub source: Option<String>,
    pub request_id: Option<String>,
    /// A routine rotation of this request records no `token_refreshed` event
    /// ([`AuditRefresh`]); everything else is recorded whatever this says.
    pub quiet: bool,
}

/// Which routine rotations are recorded as `token_refreshed` events (`audit_refresh`). Logins,
/// failures, grace-window retries, reuse detection and revocations are always recorded; a
/// routine rotation is what a session does every few minutes for its whole life, so recording
/// each one is most of what the audit table would hold. A session's last use is kept with the
/// session (`authd session list`) either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditRefresh {
    All,
    None,
    /// One rotation in N (counted per process).
    Sample(u32),
}

impl AuditRefresh {
    /// `all`, `none` or `sample:N` (N at least 1).
    ///
    /// # Errors
    /// A message saying what is accepted.
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad = || format!("invalid audit_refresh {text:?}: use all, none or sample:N");
        match text.trim() {
            "all" => Ok(Self::All),
            "none" => Ok(Self::None),
            other => {
                let n = other
                    .strip_prefix("sample:")
                    .and_then(|n| n.parse::<u32>().ok())
                    .filter(|n| *n >= 1)
                    .ok_or_else(bad)?;
                Ok(Self::Sample(n))
            }
        }
    }

    /// Whether the rotation numbered `n` (counting from 0 in this process) is recorded.
    pub fn records(self, n: u64) -> bool {
        match self {
            Self::All => true,
            Self::None => false,
            Self::Sample(every) => n.is_multiple_of(u64::from(every)),
        }
    }
}

impl fmt::Display for AuditRefresh {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::All => f.write_str("all"),
            Self::None => f.write_str("none"),
            Self::Sample(n) => write!(f, "sample:{n}"),
        }
    }
}

impl Rotation {
    /// The audit events this outcome records: `token_refreshed` for a rotation or a retry
    /// within the grace window, `refresh_reuse_detected` and `family_revoked` for reuse, and
    /// nothing for a refusal (it names no user). The store writes them in the rotation's own
    /// transaction, so an outcome and its record commit together.
    pub fn audit_events(&self, now: Timestamp, origin: &Origin) -> Vec<AuditEvent> {
        let event = |kind, user: &User, detail: String| AuditEvent {
            source: origin.source.clone(),
            request_id: origin.request_id.clone(),
            ..AuditEvent::new(kind, now).user(user).detail(detail)
        };
        match self {
            Rotation::Rotated { .. } if origin.quiet => Vec::new(),
            Rotation::Rotated { user, family_id } => vec![event(
                AuditKind::TokenRefreshed,
                user,
                format!("family={family_id}"),
            )],
            Rotation::Replayed {
                user, family_id, ..
            } => vec![event(
                AuditKind::TokenRefreshed,
                user,
                format!("family={family_id}; grace retry"),
            )],
            Rotation::ReuseDetected { user, family_id } => vec![
                event(
                    AuditKind::RefreshReuseDetected,
                    user,
                    format!("family={family_id}"),
                ),
                event(
                    AuditKind::FamilyRevoked,
                    user,
                    format!("family={family_id}; reason=refresh token reuse"),
                ),
            ],
            Rotation::Rejected(_) => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{FamilyId, Rejection, UserId, Username};

    #[test]
    fn rotation_outcomes_record_their_events_and_refusals_none() {
        let user = User {
            id: UserId::generate(),
            username: Username::parse("alice").unwrap(),
            roles: Vec::new(),
            enabled: true,
            created_at: Timestamp::from_unix_millis(0),
        };
        let family_id = FamilyId::generate();
        let origin = Origin {
            source: Some("192.0.2.1".into()),
            request_id: Some("req-1".into()),
            quiet: false,
        };
        let now = Timestamp::from_unix_millis(5_000);
        let kinds = |r: Rotation| {
            r.audit_events(now, &origin)
                .into_iter()
                .map(|e| {
                    assert_eq!(e.time, now);
                    assert_eq!(e.source, origin.source);
                    assert_eq!(e.request_id, origin.request_id);
                    assert_eq!(e.username.as_deref(), Some("alice"));
                    assert!(
                        e.detail
                            .unwrap()
                            .starts_with(&format!("family={family_id}"))
                    );
                    e.kind
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(
            kinds(Rotation::Rotated {
                user: user.clone(),
                family_id: family_id.clone()
            }),
            [AuditKind::TokenRefreshed]
        );
        assert_eq!(
            kinds(Rotation::Replayed {
                user: user.clone(),
                family_id: family_id.clone(),
                sealed_successor: vec![1]
            }),
            [AuditKind::TokenRefreshed]
        );
        assert_eq!(
            kinds(Rotation::ReuseDetected {
                user,
                family_id: family_id.clone()
            }),
            [AuditKind::RefreshReuseDetected, AuditKind::FamilyRevoked]
        );
        assert!(kinds(Rotation::Rejected(Rejection::IdleExpired)).is_empty());
    }

    #[test]
    fn kinds_round_trip_through_their_names() {
        for kind in AuditKind::ALL {
            assert_eq!(AuditKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(AuditKind::parse("nope"), None);
    }
}
