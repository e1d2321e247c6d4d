//! Users whose password a directory checks (LDAP, issue 19), as the domain sees them: where a
//! user's password is checked ([`IdentitySource`]), what a login or a recheck learned from the
//! directory ([`DirectoryAccount`]), what a refresh needs to know about a directory user's
//! session ([`DirectorySession`]), and the one rule of when to ask the directory again
//! ([`recheck_due`]).
//!
//! It does not talk to the directory (that is `crate::ldap`) nor store anything.

use std::time::Duration;

use super::{FamilyId, Role, Timestamp, User, UserId, Username};

/// Where a password is checked: the local database or the directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IdentitySource {
    Local,
    Ldap,
}

impl IdentitySource {
    /// `local` or `ldap`, as configured (`identity_sources`) and stored (`users.source`).
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "local" => Some(Self::Local),
            "ldap" => Some(Self::Ldap),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Local => "local",
            Self::Ldap => "ldap",
        }
    }
}

/// A directory user as a successful login or recheck found them: the local row is made (just
/// in time) or brought up to date from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryAccount {
    /// Derived from `external_id`, so the same entry always has the same `sub`.
    pub user_id: UserId,
    /// `entryUUID`, or Active Directory's `objectGUID` as hex.
    pub external_id: String,
    pub username: Username,
    /// From `role_map`; sorted, no duplicates.
    pub roles: Vec<Role>,
}

impl DirectoryAccount {
    /// The account of the entry `external_id`, its user id derived from it.
    ///
    /// # Errors
    /// When the id is empty (the directory gave no stable id).
    pub fn new(
        external_id: &str,
        username: Username,
        roles: Vec<Role>,
    ) -> Result<Self, &'static str> {
        let user_id = directory_user_id(external_id).ok_or("empty directory entry id")?;
        Ok(Self {
            user_id,
            external_id: external_id.trim().to_ascii_lowercase(),
            username,
            roles: super::normalise_roles(roles),
        })
    }
}

/// The stable `sub` of a directory entry: its `entryUUID` (RFC 4530) as is, lower-case; an
/// `objectGUID` given as 32 hex digits is written in the UUID form. Anything else (a server
/// with another kind of id) is kept as given, lower-case.
pub fn directory_user_id(external_id: &str) -> Option<UserId> {
    let id = external_id.trim().to_ascii_lowercase();
    if id.is_empty() {
        return None;
    }
    let id = match uuid::Uuid::try_parse(&id) {
        Ok(uuid) => uuid.hyphenated().to_string(),
        Err(_) => id,
    };
    Some(UserId::from_stored(id))
}

/// A live session of a directory user, as a refresh finds it before rotating.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectorySession {
    pub user: User,
    pub external_id: String,
    /// When the directory was last asked about the user (`None`: never since the row exists).
    pub checked_at: Option<Timestamp>,
    pub family_id: FamilyId,
}

/// Whether a refresh must ask the directory again: at most every `interval`.
pub fn recheck_due(checked_at: Option<Timestamp>, interval: Duration, now: Timestamp) -> bool {
    checked_at.is_none_or(|at| at.saturating_add(interval) <= now)
}

/// Why a recheck ends a directory user's session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DirectoryVerdict {
    /// Still there, enabled and in a mapped group: keep the session, with these roles.
    Keep,
    /// No entry with the user's name and id any more.
    Deleted,
    /// Locked or disabled in the directory.
    Disabled,
    /// In no group `role_map` names.
    NoMappedGroup,
}

impl DirectoryVerdict {
    /// What a recheck decides from the entry found under the user's name (if any): `found` is
    /// `(entry id, disabled, has a mapped role)`.
    pub fn of(external_id: &str, found: Option<(&str, bool, bool)>) -> Self {
        match found {
            None => Self::Deleted,
            Some((id, ..)) if !id.trim().eq_ignore_ascii_case(external_id) => Self::Deleted,
            Some((_, true, _)) => Self::Disabled,
            Some((_, false, false)) => Self::NoMappedGroup,
            Some((_, false, true)) => Self::Keep,
        }
    }

    /// The reason recorded when the session ends.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Keep => "kept",
            Self::Deleted => "deleted from the directory",
            Self::Disabled => "disabled in the directory",
            Self::NoMappedGroup => "in no mapped directory group",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_and_uuid_shaped() {
        let a = directory_user_id("1B4E28BA-2FA1-11D2-883F-0016D3CCA427").unwrap();
        assert_eq!(a.as_str(), "1b4e28ba-2fa1-11d2-883f-0016d3cca427");
        let guid = directory_user_id("1b4e28ba2fa111d2883f0016d3cca427").unwrap();
        assert_eq!(guid, a);
        assert_eq!(directory_user_id("  "), None);
    }

    #[test]
    fn recheck_is_due_once_the_interval_has_passed() {
        let t = Timestamp::from_unix_millis(1_000_000);
        let five = Duration::from_secs(300);
        assert!(recheck_due(None, five, t));
        assert!(!recheck_due(
            Some(t),
            five,
            t.saturating_add(Duration::from_secs(299))
        ));
        assert!(recheck_due(Some(t), five, t.saturating_add(five)));
    }

    #[test]
    fn verdicts() {
        assert_eq!(DirectoryVerdict::of("x", None), DirectoryVerdict::Deleted);
        assert_eq!(
            DirectoryVerdict::of("x", Some(("y", false, true))),
            DirectoryVerdict::Deleted
        );
        assert_eq!(
            DirectoryVerdict::of("x", Some(("X", true, true))),
            DirectoryVerdict::Disabled
        );
        assert_eq!(
            DirectoryVerdict::of("x", Some(("x", false, false))),
            DirectoryVerdict::NoMappedGroup
        );
        assert_eq!(
            DirectoryVerdict::of("x", Some(("x", false, true))),
            DirectoryVerdict::Keep
        );
    }
}
