//! [`Password`]: a secret, normalised with RFC 8265 PRECIS `OpaqueString`.
//!
//! The same normalisation runs when a password is set and when it is presented, so a password
//! set in NFC verifies when sent in NFD. Length limits are checked on the raw input *before*
//! any Unicode processing or hashing (long-password DoS, Django CVE-2013-1443).

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;

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
    #[error("password is on the list of common passwords; choose another")]
    Common,
}

impl Password {
    /// Accepts a password presented at login: bounded in size and normalised, but with no
    /// minimum length (a policy change must not lock out existing users before they log in).
    ///
    /// # Errors
    /// When the input is empty, over [`MAX_PASSWORD_BYTES`] (raw, and once normalised), or
    /// outside the profile (before or after normalisation).
    pub fn presented(raw: &str) -> Result<Self, PasswordError> {
        if raw.is_empty() {
            return Err(PasswordError::Empty);
        }
        if raw.len() > MAX_PASSWORD_BYTES {
            return Err(PasswordError::TooLong);
        }
        let enforced = super::precis::enforce_stable(&OpaqueString::new(), raw)
            .ok_or(PasswordError::Disallowed)?;
        // Normalisation can lengthen (U+0344 is two code points in NFC): an accepted password's
        // normalised form must itself be acceptable, or a client that normalises before
        // sending could not present it (found by fuzzing, FUZZING.md).
        if enforced.len() > MAX_PASSWORD_BYTES {
            return Err(PasswordError::TooLong);
        }
        Ok(Self(SecretString::from(enforced)))
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

/// Passwords too common to set (OWASP ASVS 6.2.4), compared after `OpaqueString`
/// normalisation and without regard to case.
#[derive(Default)]
pub struct PasswordBlocklist(HashSet<String>);

impl PasswordBlocklist {
    /// One password per line (a trailing `\r` is dropped); empty lines and lines outside the
    /// profile are skipped.
    pub fn from_lines(text: &str) -> Self {
        Self(
            text.lines()
                .map(|line| line.strip_suffix('\r').unwrap_or(line))
                .filter_map(|line| Password::presented(line).ok())
                .map(|p| p.0.expose_secret().to_lowercase())
                .collect(),
        )
    }

    pub fn contains(&self, password: &Password) -> bool {
        !self.0.is_empty() && self.0.contains(&password.0.expose_secret().to_lowercase())
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for PasswordBlocklist {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PasswordBlocklist({} entries)", self.0.len())
    }
}

/// What a new password must satisfy: a minimum length and not being on the blocklist.
#[derive(Debug, Clone)]
pub struct PasswordPolicy {
    pub min_chars: usize,
    pub blocklist: Arc<PasswordBlocklist>,
}

impl PasswordPolicy {
    /// `min_chars`, and no blocklist.
    pub fn new(min_chars: usize) -> Self {
        Self {
            min_chars,
            blocklist: Arc::default(),
        }
    }

    /// Accepts a new password being set ([`Password::new_secret`]) unless it is on the
    /// blocklist.
    ///
    /// # Errors
    /// As [`Password::new_secret`], plus [`PasswordError::Common`].
    pub fn accept(&self, raw: &str) -> Result<Password, PasswordError> {
        let password = Password::new_secret(raw, self.min_chars)?;
        if self.blocklist.contains(&password) {
            return Err(PasswordError::Common);
        }
        Ok(password)
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
    fn the_blocklist_matches_normalised_and_in_any_case() {
        let policy = PasswordPolicy {
            min_chars: 8,
            blocklist: Arc::new(PasswordBlocklist::from_lines(
                "password123\r\nCorrect Horse Battery Staple\n\n caf\u{e9} au lait \n",
            )),
        };
        assert_eq!(policy.blocklist.len(), 3);
        for common in [
            "password123",
            "PASSWORD123",
            "correct horse battery staple",
            // NFD of an NFC entry; the spaces around it are part of the entry.
            " cafe\u{301} au lait ",
        ] {
            assert_eq!(
                policy.accept(common).unwrap_err(),
                PasswordError::Common,
                "{common}"
            );
        }
        assert!(policy.accept("password1234").is_ok());
        assert_eq!(
            policy.accept("short").unwrap_err(),
            PasswordError::TooShort(8)
        );
        assert!(PasswordPolicy::new(8).accept("password123").is_ok());
        assert_eq!(
            format!("{:?}", policy.blocklist),
            "PasswordBlocklist(3 entries)"
        );
    }

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

    /// Issue 23, fuzz target `password`: 978 bytes, mostly U+0344, normalised to 1032.
    #[test]
    fn the_normalised_form_is_within_the_cap_too() {
        let raw = format!("a{}", "\u{344}".repeat(300));
        assert!(raw.len() <= MAX_PASSWORD_BYTES);
        assert_eq!(
            Password::presented(&raw).unwrap_err(),
            PasswordError::TooLong
        );
        let fits = format!("a{}", "\u{344}".repeat(200));
        let p = Password::presented(&fits).unwrap();
        assert!(p.expose_bytes().len() > fits.len());
        let again = std::str::from_utf8(p.expose_bytes()).unwrap();
        assert_eq!(
            Password::presented(again).unwrap().expose_bytes(),
            p.expose_bytes()
        );
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
