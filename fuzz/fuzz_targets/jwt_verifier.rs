//! The access-token verifier (crates/authd-verifier): header, claims and signature encodings.
//!
//! The first byte picks a mode. Mode 0: the rest is a whole token; the keys are made fresh for
//! this process, so no input can be validly signed and every one must be refused. Modes 1 and
//! 2: the rest is header bytes and claims bytes (split at the first 0xFF), signed with our
//! ES256 or Ed25519 key. Properties: a token is accepted only if its header names a pinned
//! algorithm exactly, `typ` at+jwt, a `kid`, none of jku/x5u/jwk/x5c/crit, and its claims
//! have our issuer, our audience, and are inside `exp`/`nbf` (with the leeway); and once any
//! bit of its signature bytes is changed it is refused.
#![no_main]

use authd_fuzz::jwt::{self, AUDIENCE, ISSUER, LEEWAY, NOW, Signer, b64, now_or_never};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let verifier = jwt::verifier();
    let signer = match mode % 3 {
        0 => {
            let token = String::from_utf8_lossy(rest);
            let verdict = now_or_never(verifier.verify_at(&token, NOW));
            assert!(
                verdict.is_err(),
                "a token we never signed was accepted: {token}"
            );
            return;
        }
        1 => Signer::Es256,
        _ => Signer::Ed25519,
    };
    let (header, payload) = match rest.iter().position(|&b| b == 0xFF) {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, &b"{}"[..]),
    };
    let token = jwt::token(signer, header, payload);
    let Ok(claims) = now_or_never(verifier.verify_at(&token, NOW)) else {
        return;
    };

    // Accepted: every rule must have held.
    let header: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(header).expect("an accepted header is JSON");
    let alg = header.get("alg").and_then(|a| a.as_str());
    let kid = header.get("kid").and_then(|k| k.as_str());
    match signer {
        Signer::Es256 => assert_eq!((alg, kid), (Some("ES256"), Some("es"))),
        Signer::Ed25519 => assert_eq!((alg, kid), (Some("EdDSA"), Some("ed"))),
    }
    let typ = header.get("typ").and_then(|t| t.as_str()).unwrap_or("");
    assert!(
        typ.eq_ignore_ascii_case("at+jwt") || typ.eq_ignore_ascii_case("application/at+jwt"),
        "typ {typ:?} accepted"
    );
    for forbidden in ["jku", "x5u", "jwk", "x5c", "crit"] {
        assert!(!header.contains_key(forbidden), "{forbidden} accepted");
    }
    assert_eq!(claims.iss, ISSUER);
    assert!(
        claims.aud.iter().any(|a| a == AUDIENCE),
        "audience {:?}",
        claims.aud
    );
    assert!(NOW - LEEWAY < claims.exp, "expired token accepted");
    assert!(
        claims.nbf.is_none_or(|nbf| nbf <= NOW + LEEWAY),
        "future nbf accepted"
    );

    // Any changed bit of the signature bytes is refused.
    let (input, signature) = token.rsplit_once('.').expect("three parts");
    let mut bytes = URL_SAFE_NO_PAD.decode(signature).expect("our encoding");
    let bit = usize::from(mode / 3) % (bytes.len() * 8);
    bytes[bit / 8] ^= 1 << (bit % 8);
    let tampered = format!("{input}.{}", b64(&bytes));
    assert!(
        now_or_never(verifier.verify_at(&tampered, NOW)).is_err(),
        "a token with a changed signature was accepted"
    );
    // So is the signature cut short or extended.
    bytes[bit / 8] ^= 1 << (bit % 8);
    for changed in [
        &bytes[..bytes.len() - 1],
        &[bytes.as_slice(), &[0]].concat()[..],
    ] {
        let tampered = format!("{input}.{}", b64(changed));
        assert!(now_or_never(verifier.verify_at(&tampered, NOW)).is_err());
    }
});
