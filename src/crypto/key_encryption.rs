//! Encryption of private signing keys at rest: AES-256-GCM (aws-lc-rs) under the configured
//! `key_encryption_key`, a random 96-bit nonce per seal, the key's `kid` as associated data
//! (so a sealed key cannot be swapped onto another row).
//!
//! Stored form: `nonce (12 bytes) || ciphertext || tag (16 bytes)`. Whether a row is sealed
//! is recorded next to it by the store; this module never guesses.

use aws_lc_rs::aead::{AES_256_GCM, Aad, NONCE_LEN, Nonce, RandomizedNonceKey};
use zeroize::Zeroizing;

#[derive(Debug, thiserror::Error)]
pub enum KeyEncryptionError {
    #[error("invalid key encryption key")]
    InvalidKey,
    #[error("encrypting a signing key failed")]
    Seal,
    #[error("cannot decrypt signing key {0}: wrong key_encryption_key or damaged data")]
    Open(String),
}

/// The AES-256-GCM key that seals private signing keys. No `Debug` of the key material.
pub struct KeyEncryption {
    key: RandomizedNonceKey,
}

impl std::fmt::Debug for KeyEncryption {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyEncryption(<redacted>)")
    }
}

impl KeyEncryption {
    /// # Errors
    /// Never for 32 bytes; aws-lc-rs reports failures rather than panicking.
    pub fn new(key: &[u8; 32]) -> Result<Self, KeyEncryptionError> {
        let key = RandomizedNonceKey::new(&AES_256_GCM, key)
            .map_err(|_| KeyEncryptionError::InvalidKey)?;
        Ok(Self { key })
    }

    /// Encrypts a private key (PKCS#8) bound to its `kid`.
    ///
    /// # Errors
    /// When the CSPRNG or the cipher fails.
    pub fn seal(&self, kid: &str, plaintext: &[u8]) -> Result<Vec<u8>, KeyEncryptionError> {
        let mut in_out = plaintext.to_vec();
        let nonce = self
            .key
            .seal_in_place_append_tag(Aad::from(kid.as_bytes()), &mut in_out)
            .map_err(|_| KeyEncryptionError::Seal)?;
        let mut out = Vec::with_capacity(NONCE_LEN + in_out.len());
        out.extend_from_slice(nonce.as_ref());
        out.extend_from_slice(&in_out);
        Ok(out)
    }

    /// Decrypts what [`KeyEncryption::seal`] produced for `kid`.
    ///
    /// # Errors
    /// When the key is wrong, the data was altered, or it was sealed for another `kid`.
    pub fn open(&self, kid: &str, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, KeyEncryptionError> {
        let fail = || KeyEncryptionError::Open(kid.to_owned());
        if sealed.len() < NONCE_LEN {
            return Err(fail());
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| fail())?;
        let mut in_out = Zeroizing::new(ciphertext.to_vec());
        let len = self
            .key
            .open_in_place(nonce, Aad::from(kid.as_bytes()), &mut in_out)
            .map_err(|_| fail())?
            .len();
        in_out.truncate(len);
        Ok(in_out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_keys_open_only_with_the_same_key_and_kid() {
        let kek = KeyEncryption::new(&[7u8; 32]).unwrap();
        let sealed = kek.seal("kid-1", b"private").unwrap();
        assert!(!sealed.windows(7).any(|w| w == b"private"));
        assert_eq!(kek.open("kid-1", &sealed).unwrap().as_slice(), b"private");
        assert!(kek.open("kid-2", &sealed).is_err());
        let other = KeyEncryption::new(&[8u8; 32]).unwrap();
        assert!(other.open("kid-1", &sealed).is_err());
        assert!(kek.open("kid-1", &sealed[..5]).is_err());
    }
}
