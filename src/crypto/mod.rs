//! Cryptography, all from well-kept crates: argon2id (RustCrypto) for passwords, aws-lc-rs for
//! randomness, SHA-256, HKDF, AES-GCM and signing keys, `jsonwebtoken` (on aws-lc-rs) for JWTs.
//! Nothing here is hand-rolled; this module only wires those primitives to the domain.

pub mod access_token;
pub mod api_key;
pub mod jwt_provider;
pub mod key_encryption;
pub mod keys;
pub mod password;
pub mod refresh_token;

use aws_lc_rs::rand::{SecureRandom, SystemRandom};

/// `N` bytes from the operating system's CSPRNG.
///
/// # Errors
/// Only if the OS refuses randomness, which aws-lc-rs reports rather than hides.
pub fn random_bytes<const N: usize>() -> Result<[u8; N], aws_lc_rs::error::Unspecified> {
    let mut buf = [0u8; N];
    SystemRandom::new().fill(&mut buf)?;
    Ok(buf)
}
