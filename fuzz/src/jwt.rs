//! Keys made fresh for each fuzzing process (so no input can carry a valid signature by
//! chance), a verifier that trusts exactly them, and signing of arbitrary header and claims
//! bytes with them.

use std::sync::OnceLock;

use authd_verifier::{JwkSet, Verifier, VerifierConfig};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

pub const ISSUER: &str = "https://issuer.test";
pub const AUDIENCE: &str = "api";
/// "Now" for every verification: fixed, so runs are reproducible.
pub const NOW: i64 = 1_700_000_000;
/// The verifier's default leeway on `exp` and `nbf`.
pub const LEEWAY: i64 = 30;

pub struct Keys {
    pub es256: EcdsaKeyPair,
    pub ed25519: Ed25519KeyPair,
    /// The public JWKS (`kid` "es" and "ed").
    pub jwks: serde_json::Value,
}

/// Which of our keys signs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signer {
    Es256,
    Ed25519,
}

pub fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let es256 = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).expect("P-256 key");
        let ed25519 = Ed25519KeyPair::generate().expect("Ed25519 key");
        let point = es256.public_key().as_ref();
        let jwks = serde_json::json!({ "keys": [
            { "kty": "EC", "crv": "P-256", "kid": "es", "alg": "ES256", "use": "sig",
              "x": b64(&point[1..33]), "y": b64(&point[33..65]) },
            { "kty": "OKP", "crv": "Ed25519", "kid": "ed", "alg": "EdDSA", "use": "sig",
              "x": b64(ed25519.public_key().as_ref()) },
        ]});
        Keys {
            es256,
            ed25519,
            jwks,
        }
    })
}

pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

pub fn config() -> VerifierConfig {
    VerifierConfig::new(ISSUER, [AUDIENCE])
}

/// A verifier trusting exactly `jwks`.
pub fn verifier_with(jwks: JwkSet) -> Verifier {
    Verifier::with_keys(config(), jwks)
}

/// A verifier trusting exactly our two keys.
pub fn verifier() -> &'static Verifier {
    static VERIFIER: OnceLock<Verifier> = OnceLock::new();
    VERIFIER.get_or_init(|| {
        let set = serde_json::from_value(keys().jwks.clone()).expect("our JWKS parses");
        verifier_with(set)
    })
}

/// The raw signature of `message` by `signer`.
pub fn sign(signer: Signer, message: &[u8]) -> Vec<u8> {
    let keys = keys();
    match signer {
        Signer::Es256 => keys
            .es256
            .sign(&SystemRandom::new(), message)
            .expect("ECDSA signs")
            .as_ref()
            .to_vec(),
        Signer::Ed25519 => keys.ed25519.sign(message).as_ref().to_vec(),
    }
}

/// A compact JWS over exactly these header and payload bytes.
pub fn token(signer: Signer, header: &[u8], payload: &[u8]) -> String {
    let input = format!("{}.{}", b64(header), b64(payload));
    let signature = sign(signer, input.as_bytes());
    format!("{input}.{}", b64(&signature))
}

/// A token every check accepts, signed by `signer`.
pub fn genuine(signer: Signer) -> String {
    let (alg, kid) = match signer {
        Signer::Es256 => ("ES256", "es"),
        Signer::Ed25519 => ("EdDSA", "ed"),
    };
    let header = serde_json::json!({ "alg": alg, "typ": "at+jwt", "kid": kid });
    let claims = serde_json::json!({
        "iss": ISSUER, "sub": "user-1", "aud": AUDIENCE, "exp": NOW + 600, "iat": NOW,
        "jti": "jti-1", "roles": ["user"],
    });
    token(
        signer,
        header.to_string().as_bytes(),
        claims.to_string().as_bytes(),
    )
}

/// Runs a future that never waits (a verifier over a fixed key set does no I/O).
pub fn now_or_never<T>(f: impl std::future::Future<Output = T>) -> T {
    futures::executor::block_on(f)
}
