//! A signing key as it is kept: what `crate::crypto::keys` makes and loads, and what the store
//! reads and writes. Plain data, so the two meet here instead of importing each other.

use std::fmt;

use super::Timestamp;

/// A signing key as stored: private key material in PKCS#8 DER, either in the clear or sealed
/// with the key encryption key (see `crate::crypto::key_encryption`). Its `Debug` leaves the
/// key material out.
#[derive(Clone)]
pub struct StoredKey {
    pub kid: String,
    pub algorithm: String,
    pub private_key: Vec<u8>,
    /// Whether `private_key` is sealed (AES-256-GCM) rather than plain PKCS#8.
    pub encrypted: bool,
    pub created_at: Timestamp,
    pub activates_at: Timestamp,
    pub retires_at: Option<Timestamp>,
}

impl fmt::Debug for StoredKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredKey")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .field("encrypted", &self.encrypted)
            .field("created_at", &self.created_at)
            .field("activates_at", &self.activates_at)
            .field("retires_at", &self.retires_at)
            .finish_non_exhaustive()
    }
}
