//! [`Password`]: a secret, normalised with RFC 8265 PRECIS `OpaqueString`.
//!
//! The same normalisation runs when a password is set and when it is presented, so a password
//! set in NFC verifies when sent in NFD. Length limits are checked on the raw input *before*
//! any Unicode processing or hashing (long-password DoS, Django CVE-2013-1443).

use std::fmt;

use precis_core::profile::Profile;
use precis_profiles::OpaqueString;
use secrecy::{ExposeSecret, SecretString};

/// Raw input over this many bytes is refused before any work, at login too.
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// A password that passed the PRECIS profile. Never printed: `Debug` is redacted.
pub struct Password(SecretString);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PasswordError {
    #[error("password is empty")]
    Empty,
    #[error("password is longer than {MAX_PASSWORD_BYTES} bytes")]
    TooLong,
    #[error("password is shorter than {0} characters")]
    TooShort(usize),
    #[error("password contains characters that are not allowed (control characters)")]
    Disallowed,
}

impl Password {
    /// Accepts a password presented at login: bounded in size and normalised, but with no
    /// minimum length (a policy change must not lock out existing users before they log in).
    ///
    /// # Errors
    /// When the input is empty, over [`MAX_PASSWORD_BYTES`], or outside the profile.
    pub fn presented(raw: &str) -> Result<Self, PasswordError> {
        if raw.is_empty() {
            return Err(PasswordError::Empty);
        }
        if raw.len() > MAX_PASSWORD_BYTES {
            return Err(PasswordError::TooLong);
        }
        let enforced = OpaqueString::new()
            .enforce(raw)
            .map_err(|_| PasswordError::Disallowed)?;
        Ok(Self(SecretString::from(enforced.into_owned())))
    }

    /// Accepts a new password being set: as [`Password::presented`], and at least
    /// `min_chars` characters after normalisation. No composition rules (NIST 800-63B-4).
    ///
    /// # Errors
    /// As [`Password::presented`], plus [`PasswordError::TooShort`].
    pub fn new_secret(raw: &str, min_chars: usize) -> Result<Self, PasswordError> {
        let password = Self::presented(raw)?;
        if password.0.expose_secret().chars().count() < min_chars {
            return Err(PasswordError::TooShort(min_chars));
        }
        Ok(password)
    }

    /// The normalised bytes, for hashing. Keep the borrow short.
    pub fn expose_bytes(&self) -> &[u8] {
        self.0.expose_secret().as_bytes()
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn nfc_and_nfd_normalise_alike() {
        let nfc = Password::presented("caf\u{e9} au lait, s'il vous pla\u{ee}t").unwrap();
        let nfd = Password::presented("cafe\u{301} au lait, s'il vous plai\u{302}t").unwrap();
        assert_eq!(nfc.expose_bytes(), nfd.expose_bytes());
    }

    #[test]
    fn length_limits() {
        assert_eq!(Password::presented("").unwrap_err(), PasswordError::Empty);
        assert_eq!(
            Password::presented(&"a".repeat(MAX_PASSWORD_BYTES + 1)).unwrap_err(),
            PasswordError::TooLong
        );
        assert!(Password::presented(&"a".repeat(MAX_PASSWORD_BYTES)).is_ok());
        assert_eq!(
            Password::new_secret("fourteen chars", 15).unwrap_err(),
            PasswordError::TooShort(15)
        );
        assert!(Password::new_secret("fifteen chars!!", 15).is_ok());
        // Characters, not bytes: 15 two-byte letters pass.
        assert!(Password::new_secret(&"\u{e9}".repeat(15), 15).is_ok());
    }

    #[test]
    fn never_truncated() {
        let long = "x".repeat(1000);
        let longer = format!("{long}y");
        assert_ne!(
            Password::presented(&long).unwrap().expose_bytes(),
            Password::presented(&longer).unwrap().expose_bytes()
        );
    }

    #[test]
    fn debug_is_redacted() {
        let p = Password::presented("correct horse battery staple").unwrap();
        assert!(!format!("{p:?}").contains("horse"));
    }

    #[test]
    fn control_characters_are_refused() {
        assert_eq!(
            Password::presented("abc\u{0}def").unwrap_err(),
            PasswordError::Disallowed
        );
    }

    proptest! {
        #[test]
        fn presented_never_panics(s in "\\PC{0,300}") {
            let _ = Password::presented(&s);
        }

        #[test]
        fn normalisation_is_idempotent(s in "\\PC{1,100}") {
            if let Ok(p) = Password::presented(&s) {
                let again = std::str::from_utf8(p.expose_bytes()).unwrap().to_owned();
                let q = Password::presented(&again).unwrap();
                prop_assert_eq!(p.expose_bytes(), q.expose_bytes());
            }
        }

        #[test]
        fn min_length_counts_characters(s in "[a-z\u{e9}\u{4e2d}]{1,40}") {
            let n = s.chars().count();
            prop_assert_eq!(Password::new_secret(&s, 15).is_ok(), n >= 15);
        }
    }
}
