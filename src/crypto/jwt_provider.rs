//! jsonwebtoken's crypto provider, with signers parsed once per key.
//!
//! jsonwebtoken 11 builds a signer from the key's PKCS#8 bytes for every token it signs; for
//! P-256 that parses the key and checks it (a scalar multiplication), which costs twice the
//! signature itself (BENCHMARKS.md, "Where a refresh's time goes now"). The provider installed
//! here keeps each key's parsed aws-lc key pair and hands jsonwebtoken a signer over it; every
//! other algorithm, all verification and the JWK utilities are the aws-lc provider's. The
//! signatures are aws-lc's, made exactly as jsonwebtoken's own aws-lc signers make them.
//!
//! Parsed keys are kept for the life of the process (a handful: keys rotate every few weeks),
//! under the SHA-256 of their PKCS#8 bytes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair};
use jsonwebtoken::crypto::{CryptoProvider, JwtSigner, aws_lc};
use jsonwebtoken::errors::{ErrorKind, Result};
use jsonwebtoken::signature::{Error as SignatureError, Signer};
use jsonwebtoken::{Algorithm, EncodingKey};

/// Installs the provider as jsonwebtoken's process default, once. Call it before the first
/// token is signed or verified: jsonwebtoken settles on its default at first use, and after
/// that this does nothing (tokens are still signed correctly, only without the cache).
pub fn install() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        static PROVIDER: OnceLock<CryptoProvider> = OnceLock::new();
        let provider = PROVIDER.get_or_init(|| CryptoProvider {
            signer_factory,
            verifier_factory: aws_lc::DEFAULT_PROVIDER.verifier_factory,
            key_utils: aws_lc::DEFAULT_PROVIDER.key_utils.clone(),
        });
        if provider.install_default().is_err() {
            tracing::debug!(
                "jsonwebtoken's crypto provider was already chosen; signers are not cached"
            );
        }
    });
}

enum ParsedKey {
    Es256(EcdsaKeyPair),
    EdDsa(Ed25519KeyPair),
}

type Cache = Mutex<HashMap<[u8; 32], Arc<ParsedKey>>>;

/// Parsed keys by the SHA-256 of their PKCS#8 bytes.
static CACHE: OnceLock<Cache> = OnceLock::new();

fn signer_factory(algorithm: &Algorithm, key: &EncodingKey) -> Result<Box<dyn JwtSigner>> {
    if !matches!(algorithm, Algorithm::ES256 | Algorithm::EdDSA) {
        return (aws_lc::DEFAULT_PROVIDER.signer_factory)(algorithm, key);
    }
    let cache = CACHE.get_or_init(Cache::default);
    let id: [u8; 32] = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, key.as_bytes())
        .as_ref()
        .try_into()
        .map_err(|_| ErrorKind::InvalidKeyFormat)?;
    let cached = cache.lock().ok().and_then(|keys| keys.get(&id).cloned());
    let parsed = match cached {
        Some(parsed) => parsed,
        None => {
            let parsed = Arc::new(match algorithm {
                Algorithm::ES256 => ParsedKey::Es256(
                    EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, key.as_bytes())
                        .map_err(|_| ErrorKind::InvalidEcdsaKey)?,
                ),
                _ => ParsedKey::EdDsa(
                    Ed25519KeyPair::from_pkcs8(key.as_bytes())
                        .map_err(|_| ErrorKind::InvalidEddsaKey)?,
                ),
            });
            if let Ok(mut keys) = cache.lock() {
                keys.insert(id, Arc::clone(&parsed));
            }
            parsed
        }
    };
    // A key parsed for one algorithm never signs for the other.
    match (algorithm, parsed.as_ref()) {
        (Algorithm::ES256, ParsedKey::Es256(_)) | (Algorithm::EdDSA, ParsedKey::EdDsa(_)) => {
            Ok(Box::new(CachedSigner {
                algorithm: *algorithm,
                key: parsed,
            }))
        }
        _ => Err(ErrorKind::InvalidAlgorithm.into()),
    }
}

struct CachedSigner {
    algorithm: Algorithm,
    key: Arc<ParsedKey>,
}

impl Signer<Vec<u8>> for CachedSigner {
    fn try_sign(&self, message: &[u8]) -> std::result::Result<Vec<u8>, SignatureError> {
        match self.key.as_ref() {
            ParsedKey::Es256(pair) => pair
                .sign(&SystemRandom::new(), message)
                .map(|signature| signature.as_ref().to_vec())
                .map_err(SignatureError::from_source),
            ParsedKey::EdDsa(pair) => Ok(pair.sign(message).as_ref().to_vec()),
        }
    }
}

impl JwtSigner for CachedSigner {
    fn algorithm(&self) -> Algorithm {
        self.algorithm
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    use super::*;
    use crate::crypto::keys::{SigningAlgorithm, SigningKey};
    use crate::domain::Timestamp;

    fn cached(der: &[u8]) -> bool {
        let id: [u8; 32] = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der)
            .as_ref()
            .try_into()
            .unwrap();
        CACHE
            .get()
            .is_some_and(|cache| cache.lock().unwrap().contains_key(&id))
    }

    #[test]
    fn signers_are_parsed_once_and_their_signatures_verify() {
        let now = Timestamp::from_unix_millis(1_800_000_000_000);
        for alg in [SigningAlgorithm::ES256, SigningAlgorithm::EdDSA] {
            let stored = SigningKey::generate(alg, now).unwrap();
            let public = SigningKey::from_stored(&stored, None).unwrap().public;
            let encoding = match alg {
                SigningAlgorithm::ES256 => EncodingKey::from_ec_der(&stored.private_key),
                SigningAlgorithm::EdDSA => EncodingKey::from_ed_der(&stored.private_key),
            };
            let message = b"header.claims";
            for _ in 0..2 {
                let signer = signer_factory(&alg.jwt_algorithm(), &encoding).unwrap();
                assert!(cached(&stored.private_key), "{alg:?}: key not cached");
                assert_eq!(signer.algorithm(), alg.jwt_algorithm());
                let signature = URL_SAFE_NO_PAD.encode(signer.try_sign(message).unwrap());
                assert!(
                    jsonwebtoken::crypto::verify(
                        &signature,
                        message,
                        &public.decoding_key().unwrap(),
                        alg.jwt_algorithm(),
                    )
                    .unwrap(),
                    "{alg:?}: signature does not verify"
                );
            }
            // A key is never used for an algorithm it was not parsed for.
            let other = match alg {
                SigningAlgorithm::ES256 => Algorithm::EdDSA,
                SigningAlgorithm::EdDSA => Algorithm::ES256,
            };
            assert!(signer_factory(&other, &encoding).is_err());
        }
    }
}
