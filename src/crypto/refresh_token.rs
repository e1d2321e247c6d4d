//! Opaque refresh tokens: generation, hashing for storage, and sealing a successor so a retry
//! within the grace window can get the same successor back.
//!
//! A token is 40 bytes in base64url without padding (54 characters): the time it was issued
//! (unix milliseconds, 8 bytes big-endian), then 32 bytes (256 bits) from the OS CSPRNG, which
//! are the secret. Only a 32-byte key derived from it is stored: the same 8 time bytes, then
//! the first 24 bytes of the SHA-256 of the whole token. The time prefix makes keys sort in
//! issue order, so the index pages a rotation writes (the new token's, and the presented
//! token's, issued moments before) are the few newest ones, shared by every rotation of a
//! commit, rather than random ones: half the bytes written per refresh (BENCHMARKS.md). The
//! time is not a secret (an access token carries `iat` too).
//!
//! Tokens issued before that form (43 characters: the 32 random bytes alone, stored under
//! their full SHA-256) are still accepted, under the key they were stored with.
//!
//! A successor is sealed with AES-256-GCM under a key derived by HKDF-SHA256 from the
//! *presented token itself*: the database holds the token's key but not the token, so a dump
//! alone cannot open the sealed successor.

use std::fmt;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::digest::{SHA256, digest};
use aws_lc_rs::hkdf::{HKDF_SHA256, Salt};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use secrecy::{ExposeSecret, SecretSlice};
use subtle::ConstantTimeEq;

use crate::domain::{Timestamp, TokenHash};

const TIME_BYTES: usize = 8;
const SECRET_BYTES: usize = 32;
const TOKEN_BYTES: usize = TIME_BYTES + SECRET_BYTES;
const TOKEN_CHARS: usize = 54;
/// A token of the earlier form: the secret alone.
const LEGACY_CHARS: usize = 43;
const SEAL_SALT: &[u8] = b"authd/v1/refresh-successor-seal";

/// A refresh token in the clear. Only ever held in memory on its way to or from a client.
/// `TOKEN_BYTES` long, or `SECRET_BYTES` for a token of the earlier form.
pub struct RefreshToken(SecretSlice<u8>);

#[derive(Debug, thiserror::Error)]
#[error("no randomness available from the operating system")]
pub struct RandomnessError;

impl RefreshToken {
    /// A new token issued at `now`.
    ///
    /// # Errors
    /// Only if the OS CSPRNG fails.
    pub fn generate(now: Timestamp) -> Result<Self, RandomnessError> {
        let secret = super::random_bytes::<SECRET_BYTES>().map_err(|_| RandomnessError)?;
        let mut bytes = Vec::with_capacity(TOKEN_BYTES);
        bytes.extend_from_slice(&now.unix_millis().to_be_bytes());
        bytes.extend_from_slice(&secret);
        Ok(Self(bytes.into()))
    }

    /// Parses the string form; `None` for anything that is not exactly a token's shape.
    pub fn parse(s: &str) -> Option<Self> {
        if s.len() != TOKEN_CHARS && s.len() != LEGACY_CHARS {
            return None;
        }
        Self::from_bytes(URL_SAFE_NO_PAD.decode(s).ok()?)
    }

    fn from_bytes(bytes: Vec<u8>) -> Option<Self> {
        matches!(bytes.len(), TOKEN_BYTES | SECRET_BYTES).then(|| Self(bytes.into()))
    }

    /// The string handed to clients.
    pub fn expose(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.0.expose_secret())
    }

    /// The key the token is stored under: its time prefix and 192 bits of its SHA-256 (a hash
    /// is right for 256-bit random secrets: no stretching needed). A token of the earlier form
    /// has no time prefix and keeps its full SHA-256.
    pub fn hash(&self) -> TokenHash {
        let bytes = self.0.expose_secret();
        let d = digest(&SHA256, bytes);
        let mut out = [0u8; 32];
        if bytes.len() == TOKEN_BYTES {
            out[..TIME_BYTES].copy_from_slice(&bytes[..TIME_BYTES]);
            out[TIME_BYTES..].copy_from_slice(&d.as_ref()[..32 - TIME_BYTES]);
        } else {
            out.copy_from_slice(d.as_ref());
        }
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
        Self::from_bytes(plain.to_vec())
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

    fn at(ms: i64) -> Timestamp {
        Timestamp::from_unix_millis(ms)
    }

    #[test]
    fn round_trips_through_its_string_form() {
        let t = RefreshToken::generate(at(1_700_000_000_000)).unwrap();
        let s = t.expose();
        assert_eq!(s.len(), TOKEN_CHARS);
        assert_eq!(RefreshToken::parse(&s).unwrap(), t);
        assert_eq!(RefreshToken::parse(&s).unwrap().hash(), t.hash());
    }

    #[test]
    fn keys_sort_in_issue_order_and_hold_no_secret_byte() {
        let earlier = RefreshToken::generate(at(1_700_000_000_000)).unwrap();
        let later = RefreshToken::generate(at(1_700_000_000_001)).unwrap();
        assert!(earlier.hash().0 < later.hash().0);
        assert_eq!(earlier.hash().0[..8], 1_700_000_000_000_i64.to_be_bytes());
        // The rest of the key is a hash of the token, not its secret bytes.
        let secret = &earlier.0.expose_secret()[TIME_BYTES..];
        assert_ne!(&earlier.hash().0[TIME_BYTES..], &secret[..32 - TIME_BYTES]);
        let d = digest(&SHA256, earlier.0.expose_secret());
        assert_eq!(
            &earlier.hash().0[TIME_BYTES..],
            &d.as_ref()[..32 - TIME_BYTES]
        );
    }

    #[test]
    fn tokens_of_the_earlier_form_keep_the_key_they_were_stored_under() {
        let secret = [7u8; SECRET_BYTES];
        let legacy = URL_SAFE_NO_PAD.encode(secret);
        assert_eq!(legacy.len(), LEGACY_CHARS);
        let t = RefreshToken::parse(&legacy).unwrap();
        assert_eq!(t.hash().0.as_slice(), digest(&SHA256, &secret).as_ref());
        assert_eq!(t.expose(), legacy);
    }

    #[test]
    fn malformed_strings_do_not_parse() {
        assert!(RefreshToken::parse("").is_none());
        assert!(RefreshToken::parse("short").is_none());
        assert!(RefreshToken::parse(&"!".repeat(TOKEN_CHARS)).is_none());
        assert!(RefreshToken::parse(&"A".repeat(TOKEN_CHARS + 1)).is_none());
        assert!(RefreshToken::parse(&"A".repeat(LEGACY_CHARS + 1)).is_none());
        // Right length, but its last character carries bits beyond the 40 bytes.
        assert!(RefreshToken::parse(&"B".repeat(TOKEN_CHARS)).is_none());
    }

    #[test]
    fn only_the_parent_opens_the_sealed_successor() {
        let parent = RefreshToken::generate(at(1)).unwrap();
        let other = RefreshToken::generate(at(1)).unwrap();
        let child = RefreshToken::generate(at(2)).unwrap();
        let sealed = parent.seal_successor(&child).unwrap();
        assert_eq!(parent.open_successor(&sealed).unwrap(), child);
        assert!(other.open_successor(&sealed).is_none());
        let mut tampered = sealed.clone();
        tampered[20] ^= 1;
        assert!(parent.open_successor(&tampered).is_none());
    }

    #[test]
    fn a_parent_of_the_earlier_form_opens_its_successor() {
        let parent = RefreshToken::parse(&URL_SAFE_NO_PAD.encode([9u8; SECRET_BYTES])).unwrap();
        let child = RefreshToken::generate(at(2)).unwrap();
        let sealed = parent.seal_successor(&child).unwrap();
        assert_eq!(parent.open_successor(&sealed).unwrap(), child);
    }

    #[test]
    fn debug_is_redacted() {
        let t = RefreshToken::generate(at(1)).unwrap();
        assert!(!format!("{t:?}").contains(&t.expose()[12..20]));
    }
}
