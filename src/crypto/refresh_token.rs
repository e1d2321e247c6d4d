//! Opaque refresh tokens: generation, hashing for storage, and sealing a successor so a retry
//! within the grace window can get the same successor back.
//!
//! A token is 32 bytes (256 bits) from the OS CSPRNG, base64url without padding (43 chars).
//! Only its SHA-256 is stored. A successor is sealed with AES-256-GCM under a key derived by
//! HKDF-SHA256 from the *presented token itself*: the database holds the token's hash but not
//! the token, so a dump alone cannot open the sealed successor.

use std::fmt;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::digest::{SHA256, digest};
use aws_lc_rs::hkdf::{HKDF_SHA256, Salt};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use secrecy::{ExposeSecret, SecretBox};
use subtle::ConstantTimeEq;

use crate::domain::TokenHash;

const TOKEN_BYTES: usize = 32;
const TOKEN_CHARS: usize = 43;
const SEAL_SALT: &[u8] = b"authd/v1/refresh-successor-seal";

/// A refresh token in the clear. Only ever held in memory on its way to or from a client.
pub struct RefreshToken(SecretBox<[u8; TOKEN_BYTES]>);

#[derive(Debug, thiserror::Error)]
#[error("no randomness available from the operating system")]
pub struct RandomnessError;

impl RefreshToken {
    /// # Errors
    /// Only if the OS CSPRNG fails.
    pub fn generate() -> Result<Self, RandomnessError> {
        let bytes = super::random_bytes::<TOKEN_BYTES>().map_err(|_| RandomnessError)?;
        Ok(Self(SecretBox::new(Box::new(bytes))))
    }

    /// Parses the string form; `None` for anything that is not exactly a token's shape.
    pub fn parse(s: &str) -> Option<Self> {
        if s.len() != TOKEN_CHARS {
            return None;
        }
        let decoded = URL_SAFE_NO_PAD.decode(s).ok()?;
        let bytes: [u8; TOKEN_BYTES] = decoded.try_into().ok()?;
        Some(Self(SecretBox::new(Box::new(bytes))))
    }

    /// The string handed to clients.
    pub fn expose(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.0.expose_secret())
    }

    /// SHA-256 of the token: right for 256-bit random secrets (no stretching needed).
    pub fn hash(&self) -> TokenHash {
        let d = digest(&SHA256, self.0.expose_secret());
        let mut out = [0u8; 32];
        out.copy_from_slice(d.as_ref());
        TokenHash(out)
    }

    fn sealing_key(&self) -> LessSafeKey {
        let prk = Salt::new(HKDF_SHA256, SEAL_SALT).extract(self.0.expose_secret());
        // Expanding 32 bytes for AES-256 from HKDF-SHA256 cannot fail (limit is 255 × 32).
        #[allow(clippy::expect_used)]
        let okm = prk
            .expand(&[b"aes-256-gcm"], &AES_256_GCM)
            .expect("valid HKDF length");
        LessSafeKey::new(UnboundKey::from(okm))
    }

    /// Encrypts `successor` so that only a holder of `self` can recover it.
    ///
    /// # Errors
    /// Only if the OS CSPRNG fails.
    pub fn seal_successor(&self, successor: &RefreshToken) -> Result<Vec<u8>, RandomnessError> {
        let nonce_bytes = super::random_bytes::<NONCE_LEN>().map_err(|_| RandomnessError)?;
        let mut in_out = successor.0.expose_secret().to_vec();
        let aad = self.hash();
        self.sealing_key()
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce_bytes),
                Aad::from(aad.0),
                &mut in_out,
            )
            .map_err(|_| RandomnessError)?;
        let mut sealed = nonce_bytes.to_vec();
        sealed.extend_from_slice(&in_out);
        Ok(sealed)
    }

    /// Recovers a successor sealed by [`RefreshToken::seal_successor`] of this token.
    pub fn open_successor(&self, sealed: &[u8]) -> Option<RefreshToken> {
        if sealed.len() < NONCE_LEN {
            return None;
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut in_out = ciphertext.to_vec();
        let plain = self
            .sealing_key()
            .open_in_place(nonce, Aad::from(self.hash().0), &mut in_out)
            .ok()?;
        let bytes: [u8; TOKEN_BYTES] = plain.try_into().ok()?;
        Some(Self(SecretBox::new(Box::new(bytes))))
    }
}

impl PartialEq for RefreshToken {
    /// Constant-time, as for any secret.
    fn eq(&self, other: &Self) -> bool {
        self.0.expose_secret().ct_eq(other.0.expose_secret()).into()
    }
}

impl fmt::Debug for RefreshToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RefreshToken(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_its_string_form() {
        let t = RefreshToken::generate().unwrap();
        let s = t.expose();
        assert_eq!(s.len(), TOKEN_CHARS);
        assert_eq!(RefreshToken::parse(&s).unwrap(), t);
        assert_eq!(RefreshToken::parse(&s).unwrap().hash(), t.hash());
    }

    #[test]
    fn malformed_strings_do_not_parse() {
        assert!(RefreshToken::parse("").is_none());
        assert!(RefreshToken::parse("short").is_none());
        assert!(RefreshToken::parse(&"!".repeat(TOKEN_CHARS)).is_none());
        assert!(RefreshToken::parse(&"A".repeat(TOKEN_CHARS + 1)).is_none());
    }

    #[test]
    fn only_the_parent_opens_the_sealed_successor() {
        let parent = RefreshToken::generate().unwrap();
        let other = RefreshToken::generate().unwrap();
        let child = RefreshToken::generate().unwrap();
        let sealed = parent.seal_successor(&child).unwrap();
        assert_eq!(parent.open_successor(&sealed).unwrap(), child);
        assert!(other.open_successor(&sealed).is_none());
        let mut tampered = sealed.clone();
        tampered[20] ^= 1;
        assert!(parent.open_successor(&tampered).is_none());
    }

    #[test]
    fn debug_is_redacted() {
        let t = RefreshToken::generate().unwrap();
        assert!(!format!("{t:?}").contains(&t.expose()[..8]));
    }
}
