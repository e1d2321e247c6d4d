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
    if token.family_revoked {
        return Decision::Reject(Rejection::FamilyRevoked);
    }
    if !token.user.enabled {
        return Decision::Reject(Rejection::UserDisabled);
    }
    if now >= token.family_expires_at {
        return Decision::Reject(Rejection::FamilyExpired);
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
