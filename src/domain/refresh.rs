//! Refresh-token families and the rotation rules, as pure functions of stored state and `now`.
//!
//! A login starts a *family*; each refresh marks the presented token used and issues its
//! successor in the same family. The storage backends load a [`PresentedToken`] and apply the
//! [`Decision`] returned by [`decide`] inside one transaction, so the rules live here once and
//! every backend applies them atomically.

use std::fmt;
use std::time::Duration;

use super::{Timestamp, User};

/// SHA-256 of a refresh token: the only form in which tokens are stored.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenHash(pub [u8; 32]);

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A hash is not a secret, but a short prefix is all a log reader needs.
        write!(
            f,
            "TokenHash({:02x}{:02x}{:02x}{:02x}…)",
            self.0[0], self.0[1], self.0[2], self.0[3]
        )
    }
}

/// Identifies a refresh family (one login session).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct FamilyId(String);

impl FamilyId {
    pub fn generate() -> Self {
        Self(uuid::Uuid::new_v4().to_string())
    }

    pub fn from_stored(id: String) -> Self {
        Self(id)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for FamilyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

impl fmt::Debug for FamilyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FamilyId({})", self.0)
    }
}

/// Lifetimes that govern refresh tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefreshPolicy {
    /// A token unused this long expires (idle timeout).
    pub idle_ttl: Duration,
    /// A family ends this long after its login, however active (absolute lifetime).
    pub max_lifetime: Duration,
    /// How long after its rotation the immediately previous token may still be presented to
    /// get the *same* successor back. Zero disables the grace window.
    pub reuse_grace: Duration,
}

/// A new family, written at login together with its first token.
#[derive(Debug, Clone)]
pub struct NewFamily {
    pub id: FamilyId,
    pub user: User,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
    /// Where the login came from, for `authd session list`.
    pub origin: SessionOrigin,
}

/// Where a session started: the peer address and the client's `user-agent`, both as reported
/// by the transport (untrusted, informational only).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionOrigin {
    pub source_addr: Option<String>,
    pub user_agent: Option<String>,
}

/// Longest `user-agent` kept, in characters; longer ones are cut.
pub const MAX_USER_AGENT_CHARS: usize = 256;

impl SessionOrigin {
    /// Keeps at most [`MAX_USER_AGENT_CHARS`] printable characters of the user agent (control
    /// characters would garble an operator's terminal); an empty one is dropped.
    pub fn new(source_addr: Option<String>, user_agent: Option<&str>) -> Self {
        let user_agent = user_agent
            .map(|ua| {
                ua.chars()
                    .filter(|c| !c.is_control())
                    .take(MAX_USER_AGENT_CHARS)
                    .collect::<String>()
            })
            .filter(|ua| !ua.is_empty());
        Self {
            source_addr,
            user_agent,
        }
    }
}

/// A refresh family seen as a session, for listing and revocation.
#[derive(Debug, Clone)]
pub struct Session {
    pub id: FamilyId,
    pub user: User,
    pub created_at: Timestamp,
    /// When it was last refreshed; `None` if never.
    pub last_used_at: Option<Timestamp>,
    /// The absolute end of the session.
    pub expires_at: Timestamp,
    pub origin: SessionOrigin,
}

/// A token to store: its hash and lifetime, never the token itself.
#[derive(Debug, Clone)]
pub struct NewToken {
    pub hash: TokenHash,
    pub issued_at: Timestamp,
    pub expires_at: Timestamp,
}

/// What a rotation stores: the successor, plus the successor sealed under a key only the
/// holder of the presented token can derive (see ARCHITECTURE.md, "Grace window").
#[derive(Clone)]
pub struct Successor {
    pub token: NewToken,
    pub sealed: Vec<u8>,
}

impl fmt::Debug for Successor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Successor")
            .field("token", &self.token)
            .finish_non_exhaustive()
    }
}

/// The stored state of a presented token, as loaded by a backend inside its transaction.
#[derive(Debug, Clone)]
pub struct PresentedToken {
    pub user: User,
    pub family_id: FamilyId,
    pub family_revoked: bool,
    pub family_expires_at: Timestamp,
    pub expires_at: Timestamp,
    /// When the token was rotated, if it was.
    pub used_at: Option<Timestamp>,
    /// For a rotated token: whether its successor is still the family's newest token.
    pub successor_is_newest: bool,
    /// For a rotated token: its successor, sealed under a key derived from this token.
    pub sealed_successor: Option<Vec<u8>>,
}

/// Why a presented token is refused without further effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    Unknown,
    FamilyRevoked,
    UserDisabled,
    FamilyExpired,
    IdleExpired,
}

impl Rejection {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unknown => "unknown token",
            Self::FamilyRevoked => "family revoked",
            Self::UserDisabled => "user disabled",
            Self::FamilyExpired => "family lifetime ended",
            Self::IdleExpired => "token idle-expired",
        }
    }
}

/// What to do with a presented token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Mark it used and store the successor.
    Rotate,
    /// A retry within the grace window: hand back the sealed successor, store nothing.
    ReturnSuccessor(Vec<u8>),
    /// A token replayed after rotation: revoke the whole family.
    RevokeFamily,
    Reject(Rejection),
}

/// The rotation rules.
///
/// - A revoked family, a disabled user or an ended family refuses every token.
/// - An unused token within its idle timeout rotates.
/// - A used token is reuse, which revokes the family, unless it is the *immediately previous*
///   token (its successor is still the newest) presented within the grace window: then the
///   same successor is returned, never a new branch.
pub fn decide(token: &PresentedToken, now: Timestamp, policy: &RefreshPolicy) -> Decision {
    if let Some(why) = family_rejection(token, now) {
        return Decision::Reject(why);
    }
    if let Some(used_at) = token.used_at {
        let in_grace = !policy.reuse_grace.is_zero() && now.since(used_at) <= policy.reuse_grace;
        return match (
            &token.sealed_successor,
            in_grace && token.successor_is_newest,
        ) {
            (Some(sealed), true) => Decision::ReturnSuccessor(sealed.clone()),
            _ => Decision::RevokeFamily,
        };
    }
    if now >= token.expires_at {
        return Decision::Reject(Rejection::IdleExpired);
    }
    Decision::Rotate
}

/// Refusals that hold for every token of a family, whatever the token's own state.
fn family_rejection(token: &PresentedToken, now: Timestamp) -> Option<Rejection> {
    if token.family_revoked {
        Some(Rejection::FamilyRevoked)
    } else if !token.user.enabled {
        Some(Rejection::UserDisabled)
    } else if now >= token.family_expires_at {
        Some(Rejection::FamilyExpired)
    } else {
        None
    }
}

/// Whether a token would be accepted as the *current* token of its session at `now`: the same
/// family rules as [`decide`], and the token itself unused and within its idle timeout. A
/// rotated token is never live, even inside the grace window (the grace retry returns an
/// existing successor; it is not a use of a live token). This is what `Introspect` reports.
pub fn is_live(token: &PresentedToken, now: Timestamp) -> bool {
    family_rejection(token, now).is_none() && token.used_at.is_none() && now < token.expires_at
}

/// The outcome of a rotation attempt, as reported by the store after applying a [`Decision`].
#[derive(Debug)]
pub enum Rotation {
    Rotated {
        user: User,
        family_id: FamilyId,
    },
    Replayed {
        user: User,
        family_id: FamilyId,
        sealed_successor: Vec<u8>,
    },
    ReuseDetected {
        user: User,
        family_id: FamilyId,
    },
    Rejected(Rejection),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{UserId, Username};

    const MIN: Duration = Duration::from_secs(60);

    fn policy(grace: Duration) -> RefreshPolicy {
        RefreshPolicy {
            idle_ttl: 10 * MIN,
            max_lifetime: 60 * MIN,
            reuse_grace: grace,
        }
    }

    fn at(minutes: u64) -> Timestamp {
        Timestamp::from_unix_millis(1_000_000).saturating_add(MIN * u32::try_from(minutes).unwrap())
    }

    fn fresh() -> PresentedToken {
        PresentedToken {
            user: User {
                id: UserId::generate(),
                username: Username::parse("alice").unwrap(),
                roles: vec![],
                enabled: true,
                created_at: at(0),
            },
            family_id: FamilyId::generate(),
            family_revoked: false,
            family_expires_at: at(60),
            expires_at: at(10),
            used_at: None,
            successor_is_newest: false,
            sealed_successor: None,
        }
    }

    fn rotated_at(minutes: u64, successor_is_newest: bool) -> PresentedToken {
        PresentedToken {
            used_at: Some(at(minutes)),
            successor_is_newest,
            sealed_successor: Some(vec![1, 2, 3]),
            ..fresh()
        }
    }

    #[test]
    fn unused_token_rotates_until_idle_timeout() {
        assert_eq!(decide(&fresh(), at(9), &policy(MIN)), Decision::Rotate);
        assert_eq!(
            decide(&fresh(), at(10), &policy(MIN)),
            Decision::Reject(Rejection::IdleExpired)
        );
    }

    #[test]
    fn family_lifetime_is_absolute() {
        let token = PresentedToken {
            expires_at: at(70),
            ..fresh()
        };
        assert_eq!(decide(&token, at(59), &policy(MIN)), Decision::Rotate);
        assert_eq!(
            decide(&token, at(60), &policy(MIN)),
            Decision::Reject(Rejection::FamilyExpired)
        );
    }

    #[test]
    fn previous_token_within_grace_returns_the_same_successor() {
        let token = rotated_at(5, true);
        let grace = Duration::from_secs(10);
        let now = at(5).saturating_add(Duration::from_secs(10));
        assert_eq!(
            decide(&token, now, &policy(grace)),
            Decision::ReturnSuccessor(vec![1, 2, 3])
        );
    }

    #[test]
    fn previous_token_after_grace_is_reuse() {
        let token = rotated_at(5, true);
        let now = at(5).saturating_add(Duration::from_millis(10_001));
        assert_eq!(
            decide(&token, now, &policy(Duration::from_secs(10))),
            Decision::RevokeFamily
        );
    }

    #[test]
    fn grandparent_within_grace_is_reuse() {
        let token = rotated_at(5, false);
        assert_eq!(decide(&token, at(5), &policy(MIN)), Decision::RevokeFamily);
    }

    #[test]
    fn zero_grace_makes_any_replay_reuse() {
        let token = rotated_at(5, true);
        assert_eq!(
            decide(&token, at(5), &policy(Duration::ZERO)),
            Decision::RevokeFamily
        );
    }

    #[test]
    fn only_unused_tokens_of_live_families_are_live() {
        assert!(is_live(&fresh(), at(9)));
        assert!(!is_live(&fresh(), at(10)), "idle-expired");
        assert!(
            !is_live(&rotated_at(1, true), at(1)),
            "rotated, even within grace"
        );
        let revoked = PresentedToken {
            family_revoked: true,
            ..fresh()
        };
        assert!(!is_live(&revoked, at(1)));
        let mut disabled = fresh();
        disabled.user.enabled = false;
        assert!(!is_live(&disabled, at(1)));
        let ended = PresentedToken {
            expires_at: at(70),
            ..fresh()
        };
        assert!(!is_live(&ended, at(60)), "family lifetime over");
    }

    #[test]
    fn user_agent_is_bounded_and_printable() {
        let long = "x".repeat(1000);
        let o = SessionOrigin::new(None, Some(&long));
        assert_eq!(o.user_agent.unwrap().chars().count(), MAX_USER_AGENT_CHARS);
        let o = SessionOrigin::new(None, Some("a\u{1b}[31mb\n"));
        assert_eq!(o.user_agent.as_deref(), Some("a[31mb"));
        assert_eq!(SessionOrigin::new(None, Some("\n")).user_agent, None);
    }

    #[test]
    fn revoked_family_and_disabled_user_refuse_everything() {
        let revoked = PresentedToken {
            family_revoked: true,
            ..fresh()
        };
        assert_eq!(
            decide(&revoked, at(1), &policy(MIN)),
            Decision::Reject(Rejection::FamilyRevoked)
        );
        let mut disabled = rotated_at(1, true);
        disabled.user.enabled = false;
        assert_eq!(
            decide(&disabled, at(1), &policy(MIN)),
            Decision::Reject(Rejection::UserDisabled)
        );
    }
}
