//! JWKS documents, as a resource server's verifier fetches them (`serde_json` into a
//! `JwkSet`, then keys found by `kid`): arbitrary keys, curves, parameters and duplicates.
//!
//! Properties: parsing and key selection never panic; a genuine token (signed by this
//! process's own ES256 or Ed25519 key) is accepted only when the document holds exactly that
//! public key under its `kid` (any other key would be a forgery); a token of whatever shape
//! signed by someone else is never accepted.
#![no_main]

use authd_fuzz::jwt::{self, NOW, Signer, now_or_never};
use authd_verifier::JwkSet;
use libfuzzer_sys::fuzz_target;

/// A key parameter's bytes, read leniently (padding or not, trailing bits, leading zeros), so
/// another spelling of the same number compares equal.
fn number(v: Option<&serde_json::Value>) -> Option<Vec<u8>> {
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    let lenient = GeneralPurpose::new(
        &base64::alphabet::URL_SAFE,
        GeneralPurposeConfig::new()
            .with_decode_padding_mode(DecodePaddingMode::Indifferent)
            .with_decode_allow_trailing_bits(true),
    );
    let bytes = base64::Engine::decode(&lenient, v?.as_str()?).ok()?;
    let first = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    Some(bytes[first..].to_vec())
}

/// The public numbers (x, y) of the key with `kid` in a JWKS document: the first one, which
/// is the one `JwkSet::find` gives the verifier.
fn numbers(jwks: &serde_json::Value, kid: &str) -> Option<(Option<Vec<u8>>, Option<Vec<u8>>)> {
    let key = jwks["keys"].as_array()?.iter().find(|k| k["kid"] == kid)?;
    Some((number(key.get("x")), number(key.get("y"))))
}

fuzz_target!(|data: &[u8]| {
    let Ok(set) = serde_json::from_slice::<JwkSet>(data) else {
        return;
    };
    let raw: serde_json::Value = serde_json::from_slice(data).expect("parsed once");
    let verifier = jwt::verifier_with(set);
    for (signer, kid) in [(Signer::Es256, "es"), (Signer::Ed25519, "ed")] {
        let token = jwt::genuine(signer);
        if now_or_never(verifier.verify_at(&token, NOW)).is_ok() {
            assert_eq!(
                numbers(&raw, kid),
                numbers(&jwt::keys().jwks, kid),
                "a token verified under someone else's key"
            );
        }
    }
});
