//! Micro-benchmarks of the CPU work behind a login and a refresh: `cargo bench --bench crypto`.
//!
//! - `argon2id_verify`: one verification at the *configured* parameters (the same layered
//!   configuration `authd serve` reads: `AUTHD_ARGON2_MEMORY_KIB`, `…_ITERATIONS`,
//!   `…_PARALLELISM`, defaults m=19456 KiB, t=2, p=1) on one core. Its inverse is the physical
//!   limit of logins per second per core.
//! - `sign_access_token`: one RFC 9068 access token, ES256 and EdDSA.
//! - `refresh_token`: what a refresh costs in crypto before the store is asked: parse the
//!   presented token, generate the successor, hash both, seal the successor.
//! - `verify_access_token`: what a resource server pays per request with the verifier crate
//!   (`authd-verifier`, keys already fetched): header checks, signature, claims.

#![allow(clippy::unwrap_used, clippy::expect_used)] // benchmarks may panic on the unexpected

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
use argon2::{Algorithm, Argon2, Params, Version};
use authd::config::{Config, Overrides};
use authd::crypto::access_token::{ACCESS_TOKEN_TYP, Claims};
use authd::crypto::keys::{SigningAlgorithm, SigningKey};
use authd::crypto::refresh_token::RefreshToken;
use authd::domain::Timestamp;
use divan::Bencher;

const PASSWORD: &[u8] = b"correct horse battery staple";
/// When the benchmark's refresh tokens are issued (it only sets their time prefix).
const ISSUED: Timestamp = Timestamp::from_unix_millis(1_800_000_000_000);

fn main() {
    divan::main();
}

fn configured_argon2() -> Argon2<'static> {
    let config = Config::load(None, &Overrides::default()).expect("configuration loads");
    let p = config.argon2();
    eprintln!(
        "argon2id parameters: m={} KiB, t={}, p={}",
        p.memory_kib, p.iterations, p.parallelism
    );
    let params = Params::new(p.memory_kib, p.iterations, p.parallelism, None).unwrap();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// One argon2id verification of a correct password, as a login of a known user does.
#[divan::bench(sample_count = 20, sample_size = 1)]
fn argon2id_verify(bencher: Bencher) {
    let argon2 = configured_argon2();
    let phc = argon2.hash_password(PASSWORD).unwrap().to_string();
    bencher.bench_local(|| {
        let parsed = PasswordHash::new(&phc).unwrap();
        argon2.verify_password(divan::black_box(PASSWORD), &parsed)
    });
}

fn claims() -> Claims {
    Claims {
        iss: "http://localhost:8080".into(),
        sub: "0192f7c4-8a5e-7c3b-9a1d-3f2e4b5c6d7e".into(),
        aud: vec!["authd".into()],
        exp: 1_800_000_900,
        iat: 1_800_000_000,
        nbf: Some(1_800_000_000),
        jti: "q1w2e3r4t5y6u7i8o9p0aa".into(),
        roles: vec!["admin".into(), "user".into()],
        preferred_username: Some("alice".into()),
        key_id: None,
        sid: Some("0192f7c4-0000-7000-8000-000000000001".into()),
        client_id: Some("authd".into()),
    }
}

/// One access token signed, claims serialised and all (what every login and refresh does).
#[divan::bench(args = [SigningAlgorithm::ES256, SigningAlgorithm::EdDSA])]
fn sign_access_token(bencher: Bencher, alg: SigningAlgorithm) {
    let now = Timestamp::from_unix_millis(1_800_000_000_000);
    let key = SigningKey::from_stored(&SigningKey::generate(alg, now).unwrap(), None).unwrap();
    let claims = claims();
    bencher.bench_local(|| {
        key.sign(ACCESS_TOKEN_TYP, divan::black_box(&claims))
            .unwrap()
    });
}

mod refresh_token {
    use super::*;

    /// 256 bits from the OS CSPRNG.
    #[divan::bench]
    fn generate() -> RefreshToken {
        RefreshToken::generate(ISSUED).unwrap()
    }

    /// SHA-256, the stored form.
    #[divan::bench]
    fn hash(bencher: Bencher) {
        let token = RefreshToken::generate(ISSUED).unwrap();
        bencher.bench_local(|| divan::black_box(&token).hash());
    }

    /// HKDF-SHA256 key derivation and AES-256-GCM sealing of the successor.
    #[divan::bench]
    fn seal_successor(bencher: Bencher) {
        let presented = RefreshToken::generate(ISSUED).unwrap();
        let successor = RefreshToken::generate(ISSUED).unwrap();
        bencher.bench_local(|| {
            presented
                .seal_successor(divan::black_box(&successor))
                .unwrap()
        });
    }

    /// Everything a refresh does in crypto before asking the store: parse the presented
    /// token, hash it, generate, hash and seal the successor.
    #[divan::bench]
    fn per_refresh(bencher: Bencher) {
        let presented = RefreshToken::generate(ISSUED).unwrap().expose();
        bencher.bench_local(|| {
            let presented = RefreshToken::parse(divan::black_box(&presented)).unwrap();
            let successor = RefreshToken::generate(ISSUED).unwrap();
            (
                presented.hash(),
                successor.hash(),
                presented.seal_successor(&successor).unwrap(),
            )
        });
    }
}

/// One access token verified by `authd-verifier` (JWKS already cached), ES256 and EdDSA.
#[divan::bench(args = [SigningAlgorithm::ES256, SigningAlgorithm::EdDSA])]
fn verify_access_token(bencher: Bencher, alg: SigningAlgorithm) {
    use authd_verifier::{JwkSet, Verifier, VerifierConfig};
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    let now = Timestamp::from_unix_millis(i64::try_from(now.as_millis()).unwrap());
    let key = SigningKey::from_stored(&SigningKey::generate(alg, now).unwrap(), None).unwrap();
    let claims = Claims {
        exp: now.unix_seconds() + 3600,
        iat: now.unix_seconds(),
        nbf: Some(now.unix_seconds()),
        ..claims()
    };
    let token = key.sign(ACCESS_TOKEN_TYP, &claims).unwrap();
    let keys: JwkSet = serde_json::from_value(serde_json::json!({
        "keys": [key.public.to_jwk(&key.kid, key.algorithm)]
    }))
    .unwrap();
    let verifier = Verifier::with_keys(VerifierConfig::new(claims.iss.clone(), ["authd"]), keys);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    bencher.bench_local(|| {
        runtime
            .block_on(verifier.verify(divan::black_box(&token)))
            .unwrap()
    });
}
