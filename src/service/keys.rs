//! Loading the key ring at start, creating the first key when the database has none.

use crate::crypto::keys::{KeyError, KeyRing, SigningAlgorithm, SigningKey};
use crate::domain::Timestamp;
use crate::store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum KeySetupError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("no signing key is active")]
    NoActiveKey,
}

/// Loads every stored key; if none can sign at `now`, generates one with `alg` and stores it.
///
/// Two processes starting at once on an empty database may each store a key; both then pick
/// the same signer by [`KeyRing::signing_key`]'s rule once they reload.
///
/// # Errors
/// When the store fails or a stored key is unusable.
pub async fn load_or_create_keys(
    store: &dyn Store,
    alg: SigningAlgorithm,
    now: Timestamp,
) -> Result<KeyRing, KeySetupError> {
    let ring = KeyRing::from_stored(&store.signing_keys().await?)?;
    if ring.signing_key(now).is_some() {
        return Ok(ring);
    }
    let stored = SigningKey::generate(alg, now)?;
    store.insert_signing_key(&stored).await?;
    tracing::info!(kid = %stored.kid, algorithm = alg.as_str(), "generated a new signing key");
    let ring = KeyRing::from_stored(&store.signing_keys().await?)?;
    if ring.signing_key(now).is_none() {
        return Err(KeySetupError::NoActiveKey);
    }
    Ok(ring)
}
