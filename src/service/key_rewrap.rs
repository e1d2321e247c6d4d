//! Rotating the key encryption key: re-sealing every private signing key under a new
//! `key_encryption_key` (`authd keys rewrap --new-key-file PATH`), all or nothing.
//!
//! Each key is opened with the current key encryption key (or read as it is, when stored in
//! the clear) and sealed under the new one, inside one store transaction
//! ([`crate::store::SigningKeyStore::rewrap_signing_keys`]): if any key cannot be opened,
//! nothing is written. A key that already opens under the new key is kept as it is, so running
//! the command again (after an interruption, or after a server still on the old key made a
//! key meanwhile… which it seals under the old one, and the rerun then rewraps) is safe.
//! The key-encryption rules themselves (AES-256-GCM, the `kid` as associated data) are
//! [`crate::crypto::key_encryption`]'s.

use crate::crypto::key_encryption::KeyEncryption;
use crate::store::{Store, StoreError, StoredKey};

#[derive(Debug, thiserror::Error)]
pub enum RewrapError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Nothing was changed.
    #[error("{0}; no key was changed")]
    Refused(String),
}

/// Re-seals every stored signing key under `new`, opening sealed ones with `current` (the
/// configured `key_encryption_key`, if any). Returns how many keys the database holds, all
/// now sealed under `new`.
///
/// # Errors
/// [`RewrapError::Refused`] (nothing changed) when a sealed key opens under neither key, or
/// sealing fails; [`RewrapError::Store`] when the database fails.
pub async fn rewrap_keys(
    store: &dyn Store,
    current: Option<&KeyEncryption>,
    new: &KeyEncryption,
) -> Result<usize, RewrapError> {
    let rewrap = |key: &StoredKey| -> Result<(Vec<u8>, bool), String> {
        let plain = if !key.encrypted {
            zeroize::Zeroizing::new(key.private_key.clone())
        } else if let Some(opened) = current.and_then(|c| c.open(&key.kid, &key.private_key).ok()) {
            opened
        } else if new.open(&key.kid, &key.private_key).is_ok() {
            // Already under the new key (a second run): leave it.
            return Ok((key.private_key.clone(), true));
        } else if current.is_none() {
            return Err(format!(
                "signing key {} is encrypted and AUTHD_KEY_ENCRYPTION_KEY (the current key) \
                 is not set",
                key.kid
            ));
        } else {
            return Err(format!(
                "cannot decrypt signing key {} with AUTHD_KEY_ENCRYPTION_KEY (the current key) \
                 nor with the new key",
                key.kid
            ));
        };
        let sealed = new.seal(&key.kid, &plain).map_err(|e| e.to_string())?;
        Ok((sealed, true))
    };
    store
        .rewrap_signing_keys(&rewrap)
        .await?
        .map_err(RewrapError::Refused)
}
