//! [`Username`]: the normalised, validated name a user logs in with.

use std::fmt;

use precis_profiles::UsernameCaseMapped;

/// Longest username accepted, in characters after normalisation.
pub const MAX_USERNAME_CHARS: usize = 64;
/// Raw input longer than this is refused before any Unicode processing.
const MAX_USERNAME_INPUT_BYTES: usize = 1024;

/// A username enforced with RFC 8265 PRECIS `UsernameCaseMapped`, so `Alice`, `ALICE` and
/// `alice` are the same user, and composed and decomposed forms of an accented letter too.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Username(String);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UsernameError {
    #[error("username is empty")]
    Empty,
    #[error("username is longer than {MAX_USERNAME_CHARS} characters")]
    TooLong,
    #[error("username contains characters that are not allowed (RFC 8265 UsernameCaseMapped)")]
    Disallowed,
}

impl Username {
    /// Normalises and validates `raw`.
    ///
    /// # Errors
    /// When `raw` is empty, longer than 64 characters once normalised, or contains code points
    /// the profile disallows (spaces, controls, symbols outside the identifier class), before
    /// or after normalisation.
    pub fn parse(raw: &str) -> Result<Self, UsernameError> {
        if raw.is_empty() {
            return Err(UsernameError::Empty);
        }
        if raw.len() > MAX_USERNAME_INPUT_BYTES {
            return Err(UsernameError::TooLong);
        }
        let enforced = super::precis::enforce_stable(&UsernameCaseMapped::new(), raw)
            .ok_or(UsernameError::Disallowed)?;
        match enforced.chars().count() {
            0 => Err(UsernameError::Empty),
            n if n > MAX_USERNAME_CHARS => Err(UsernameError::TooLong),
            _ => Ok(Self(enforced)),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

impl fmt::Debug for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Username({:?})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn case_is_folded() {
        assert_eq!(
            Username::parse("ALICE").unwrap(),
            Username::parse("alice").unwrap()
        );
        assert_eq!(Username::parse("Alice").unwrap().as_str(), "alice");
    }

    #[test]
    fn composed_and_decomposed_forms_are_one_user() {
        let nfc = Username::parse("jos\u{e9}").unwrap();
        let nfd = Username::parse("jose\u{301}").unwrap();
        assert_eq!(nfc, nfd);
    }

    #[test]
    fn rejects_bad_input() {
        assert_eq!(Username::parse(""), Err(UsernameError::Empty));
        assert_eq!(Username::parse("a b"), Err(UsernameError::Disallowed));
        assert_eq!(Username::parse("tab\tname"), Err(UsernameError::Disallowed));
        assert_eq!(
            Username::parse(&"a".repeat(65)),
            Err(UsernameError::TooLong)
        );
        assert!(Username::parse(&"a".repeat(64)).is_ok());
        assert_eq!(
            Username::parse(&"a".repeat(100_000)),
            Err(UsernameError::TooLong)
        );
    }

    proptest! {
        #[test]
        fn parse_never_panics(s in "\\PC{0,80}") {
            let _ = Username::parse(&s);
        }

        #[test]
        fn parsed_is_a_fixed_point(s in "[a-zA-Z0-9._@-]{1,64}") {
            let once = Username::parse(&s).unwrap();
            let twice = Username::parse(once.as_str()).unwrap();
            prop_assert_eq!(once, twice);
        }

        #[test]
        fn parse_is_case_insensitive(s in "[a-zA-Z0-9]{1,64}") {
            prop_assert_eq!(
                Username::parse(&s.to_uppercase()).unwrap(),
                Username::parse(&s.to_lowercase()).unwrap()
            );
        }

        #[test]
        fn accepted_names_are_1_to_64_chars(s in "\\PC{0,100}") {
            if let Ok(name) = Username::parse(&s) {
                let n = name.as_str().chars().count();
                prop_assert!((1..=MAX_USERNAME_CHARS).contains(&n));
            }
        }
    }
}
