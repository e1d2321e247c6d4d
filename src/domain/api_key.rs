//! API keys as the domain sees them: who owns a key, what it may do, and when it is usable.
//!
//! The secret itself never appears here: generation, hashing and the string format live in
//! `crate::crypto::api_key`; this module holds the record and the rules, as pure functions of
//! stored state and `now`.

use std::fmt;

use subtle::ConstantTimeEq;

use super::{Role, Timestamp, User, UserId, Username};

/// SHA-256 of a key's secret: the only form in which it is stored. `crate::crypto::api_key`
/// makes it from a secret; the store keeps it; both import it from here.
#[derive(Clone, Copy)]
pub struct ApiKeySecretHash(pub [u8; 32]);

impl ApiKeySecretHash {
    /// Constant-time equality, as for any secret-derived value.
    pub fn matches(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl fmt::Debug for ApiKeySecretHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKeySecretHash(<redacted>)")
    }
}

/// The public lookup id of an API key: 24 lowercase hex digits (96 random bits). Not secret;
/// it is printed by `authd apikey list` and names the key in tokens (`key_id`).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ApiKeyId(String);

pub const API_KEY_ID_CHARS: usize = 24;

impl ApiKeyId {
    /// Parses an id; `None` unless it is exactly 24 lowercase hex digits.
    pub fn parse(raw: &str) -> Option<Self> {
        (raw.len() == API_KEY_ID_CHARS
            && raw
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
        .then(|| Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ApiKeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

impl fmt::Debug for ApiKeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiKeyId({})", self.0)
    }
}

/// An API key's record, without its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    pub id: ApiKeyId,
    pub user_id: UserId,
    pub name: String,
    /// Sorted, without duplicates; a subset of the owner's roles when created.
    pub roles: Vec<Role>,
    pub created_at: Timestamp,
    pub expires_at: Option<Timestamp>,
    pub last_used_at: Option<Timestamp>,
    pub revoked_at: Option<Timestamp>,
}

/// An API key listed for an operator, with its owner's name.
#[derive(Debug, Clone)]
pub struct ApiKeyListing {
    pub key: ApiKey,
    pub username: Username,
}

/// Why a key is refused. Clients never see which; they get the same answer as for a wrong
/// password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiKeyRejection {
    Revoked,
    Expired,
    OwnerDisabled,
}

impl ApiKeyRejection {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Revoked => "key revoked",
            Self::Expired => "key expired",
            Self::OwnerDisabled => "owner disabled",
        }
    }
}

/// Whether `key`, owned by `owner`, may log in at `now`; on success, the roles its token
/// carries: the key's roles that the owner *still* has (a role taken from the user is taken
/// from the user's keys too).
///
/// # Errors
/// The reason the key is refused.
pub fn check_api_key(
    key: &ApiKey,
    owner: &User,
    now: Timestamp,
) -> Result<Vec<Role>, ApiKeyRejection> {
    if key.revoked_at.is_some() {
        return Err(ApiKeyRejection::Revoked);
    }
    if key.expires_at.is_some_and(|e| now >= e) {
        return Err(ApiKeyRejection::Expired);
    }
    if !owner.enabled {
        return Err(ApiKeyRejection::OwnerDisabled);
    }
    Ok(key
        .roles
        .iter()
        .filter(|r| owner.roles.contains(r))
        .cloned()
        .collect())
}

/// A role asked for a key that its owner does not have.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("user does not have role {0:?}")]
pub struct RoleNotHeld(pub String);

/// The roles a new key gets: all of the owner's when none are asked for, otherwise exactly
/// those asked for, each of which the owner must have.
///
/// # Errors
/// The first requested role the owner does not have.
pub fn roles_for_new_key(owner: &User, requested: Vec<Role>) -> Result<Vec<Role>, RoleNotHeld> {
    if requested.is_empty() {
        return Ok(owner.roles.clone());
    }
    if let Some(missing) = requested.iter().find(|r| !owner.roles.contains(r)) {
        return Err(RoleNotHeld(missing.as_str().to_owned()));
    }
    Ok(super::normalise_roles(requested))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(ms: i64) -> Timestamp {
        Timestamp::from_unix_millis(ms)
    }

    fn role(r: &str) -> Role {
        Role::parse(r).unwrap()
    }

    fn owner(roles: &[&str]) -> User {
        User {
            id: UserId::generate(),
            username: Username::parse("alice").unwrap(),
            roles: roles.iter().map(|r| role(r)).collect(),
            enabled: true,
            created_at: t(0),
        }
    }

    fn key(roles: &[&str]) -> ApiKey {
        ApiKey {
            id: ApiKeyId::parse("0123456789abcdef01234567").unwrap(),
            user_id: UserId::generate(),
            name: "ci".into(),
            roles: roles.iter().map(|r| role(r)).collect(),
            created_at: t(0),
            expires_at: Some(t(100)),
            last_used_at: None,
            revoked_at: None,
        }
    }

    #[test]
    fn live_key_carries_the_roles_its_owner_still_has() {
        let k = key(&["a", "b"]);
        assert_eq!(
            check_api_key(&k, &owner(&["a", "b", "c"]), t(99)),
            Ok(vec![role("a"), role("b")])
        );
        assert_eq!(
            check_api_key(&k, &owner(&["b"]), t(99)),
            Ok(vec![role("b")])
        );
    }

    #[test]
    fn revoked_expired_and_disabled_are_refused() {
        let mut revoked = key(&[]);
        revoked.revoked_at = Some(t(5));
        assert_eq!(
            check_api_key(&revoked, &owner(&[]), t(10)),
            Err(ApiKeyRejection::Revoked)
        );
        assert_eq!(
            check_api_key(&key(&[]), &owner(&[]), t(100)),
            Err(ApiKeyRejection::Expired)
        );
        let mut disabled = owner(&[]);
        disabled.enabled = false;
        assert_eq!(
            check_api_key(&key(&[]), &disabled, t(1)),
            Err(ApiKeyRejection::OwnerDisabled)
        );
        let mut forever = key(&[]);
        forever.expires_at = None;
        assert!(check_api_key(&forever, &owner(&[]), t(i64::MAX)).is_ok());
    }

    #[test]
    fn new_key_roles_default_to_all_and_must_be_held() {
        let alice = owner(&["a", "b"]);
        assert_eq!(
            roles_for_new_key(&alice, vec![]),
            Ok(vec![role("a"), role("b")])
        );
        assert_eq!(
            roles_for_new_key(&alice, vec![role("b"), role("b")]),
            Ok(vec![role("b")])
        );
        assert_eq!(
            roles_for_new_key(&alice, vec![role("c")]),
            Err(RoleNotHeld("c".into()))
        );
    }

    #[test]
    fn ids_are_exactly_24_lowercase_hex_digits() {
        assert!(ApiKeyId::parse("0123456789abcdef01234567").is_some());
        for bad in [
            "",
            "0123456789ABCDEF01234567",
            "0123456789abcdef0123456",
            "0123456789abcdef012345678",
            "0123456789abcdef0123456g",
        ] {
            assert!(ApiKeyId::parse(bad).is_none(), "{bad}");
        }
    }
}
