//! [`Role`]: a short identifier granted to users and copied into access tokens.

use std::fmt;

pub const MAX_ROLE_CHARS: usize = 64;

/// A role name matching `[a-z0-9][a-z0-9_.:-]{0,63}`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Role(String);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid role {0:?}: use 1-64 of a-z 0-9 _ . : - starting with a letter or digit")]
pub struct RoleError(String);

impl Role {
    /// # Errors
    /// When `raw` does not match `[a-z0-9][a-z0-9_.:-]{0,63}`.
    pub fn parse(raw: &str) -> Result<Self, RoleError> {
        let mut bytes = raw.bytes();
        let first_ok = bytes
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        let rest_ok = bytes.all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'.' | b':' | b'-')
        });
        if first_ok && rest_ok && raw.len() <= MAX_ROLE_CHARS {
            Ok(Self(raw.to_owned()))
        } else {
            // Keep the echoed input short: it ends up in a CLI error line.
            Err(RoleError(raw.chars().take(70).collect()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

impl fmt::Debug for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Role({:?})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_identifiers() {
        for ok in ["admin", "0", "billing:read", "a.b_c-d", &"x".repeat(64)] {
            assert!(Role::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn rejects_the_rest() {
        for bad in ["", "Admin", "_x", "-x", "a b", "é", "a/b", &"x".repeat(65)] {
            assert!(Role::parse(bad).is_err(), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn matches_the_documented_pattern(s in "\\PC{0,70}") {
            let pattern_ok = s.len() <= 64
                && s.chars().enumerate().all(|(i, c)| {
                    c.is_ascii_lowercase() || c.is_ascii_digit()
                        || (i > 0 && matches!(c, '_' | '.' | ':' | '-'))
                })
                && !s.is_empty();
            prop_assert_eq!(Role::parse(&s).is_ok(), pattern_ok);
        }

        #[test]
        fn generated_roles_parse(s in "[a-z0-9][a-z0-9_.:-]{0,63}") {
            let role = Role::parse(&s).unwrap();
            prop_assert_eq!(role.as_str(), s.as_str());
        }
    }
}
