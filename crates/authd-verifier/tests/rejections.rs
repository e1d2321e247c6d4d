//! Every way a token must be refused, and the JWKS cache's fetching rules, against real
//! signatures (aws-lc-rs keys, jsonwebtoken signing) and a real HTTP JWKS server.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use authd_verifier::{JwkSet, Verifier, VerifierConfig, VerifyError};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{EncodingKey, Header};
use serde_json::{Value, json};

const ISS: &str = "https://auth.test";
const AUD: &str = "api";

struct Key {
    kid: String,
    pkcs8: Vec<u8>,
    jwk: Value,
}

fn key(kid: &str) -> Key {
    let pkcs8 =
        EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
            .unwrap()
            .as_ref()
            .to_vec();
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &pkcs8).unwrap();
    let raw = pair.public_key().as_ref().to_vec();
    let jwk = json!({
        "kty": "EC", "crv": "P-256", "kid": kid, "alg": "ES256", "use": "sig",
        "x": URL_SAFE_NO_PAD.encode(&raw[1..33]), "y": URL_SAFE_NO_PAD.encode(&raw[33..65]),
    });
    Key {
        kid: kid.into(),
        pkcs8,
        jwk,
    }
}

fn now() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap()
}

fn claims() -> Value {
    let t = now();
    json!({"iss": ISS, "sub": "user-1", "aud": AUD, "exp": t + 300, "iat": t, "nbf": t,
           "jti": "j", "roles": ["reader"], "preferred_username": "alice"})
}

fn header(k: &Key) -> Header {
    let mut h = Header::new(jsonwebtoken::Algorithm::ES256);
    h.typ = Some("at+jwt".into());
    h.kid = Some(k.kid.clone());
    h
}

fn sign(k: &Key, header: &Header, claims: &Value) -> String {
    jsonwebtoken::encode(header, claims, &EncodingKey::from_ec_der(&k.pkcs8)).unwrap()
}

fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(v.to_string())
}

fn verifier(keys: &[&Key]) -> Verifier {
    let set: JwkSet = serde_json::from_value(
        json!({"keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>()}),
    )
    .unwrap();
    Verifier::with_keys(VerifierConfig::new(ISS, [AUD]), set)
}

async fn refused(v: &Verifier, token: &str) -> VerifyError {
    v.verify(token).await.expect_err("must be refused")
}

#[tokio::test]
async fn a_good_token_verifies_with_typed_claims() {
    let k = key("k1");
    let c = verifier(&[&k])
        .verify(&sign(&k, &header(&k), &claims()))
        .await
        .unwrap();
    assert_eq!(c.sub, "user-1");
    assert_eq!(c.aud, vec![AUD]);
    assert!(c.has_role("reader"));
    assert_eq!(c.preferred_username.as_deref(), Some("alice"));
}

#[tokio::test]
async fn alg_none_is_refused_in_any_letter_case() {
    let k = key("k1");
    let v = verifier(&[&k]);
    for alg in ["none", "None", "NONE", "nOnE"] {
        let h = json!({"alg": alg, "typ": "at+jwt", "kid": "k1"});
        for sig in ["", "AAAA"] {
            let token = format!("{}.{}.{sig}", b64(&h), b64(&claims()));
            assert_eq!(
                refused(&v, &token).await,
                VerifyError::DisallowedAlgorithm(alg.into())
            );
        }
    }
}

#[tokio::test]
async fn hs256_signed_with_the_public_key_is_refused() {
    let k = key("k1");
    let v = verifier(&[&k]);
    let mut h = header(&k);
    h.alg = jsonwebtoken::Algorithm::HS256;
    for secret in [
        k.jwk.to_string().into_bytes(),
        k.jwk["x"].as_str().unwrap().as_bytes().to_vec(),
    ] {
        let token =
            jsonwebtoken::encode(&h, &claims(), &EncodingKey::from_secret(&secret)).unwrap();
        assert_eq!(
            refused(&v, &token).await,
            VerifyError::DisallowedAlgorithm("HS256".into())
        );
    }
}

#[tokio::test]
async fn unknown_kid_is_refused() {
    let k = key("k1");
    let other = key("k2");
    let token = sign(&other, &header(&other), &claims());
    assert_eq!(
        refused(&verifier(&[&k]), &token).await,
        VerifyError::UnknownKey("k2".into())
    );
}

#[tokio::test]
async fn a_known_kid_with_another_keys_signature_is_refused() {
    let k = key("k1");
    let forger = key("k1");
    let token = sign(&forger, &header(&forger), &claims());
    assert_eq!(
        refused(&verifier(&[&k]), &token).await,
        VerifyError::BadSignature
    );
}

#[tokio::test]
async fn jku_x5u_jwk_and_x5c_headers_are_refused() {
    let k = key("k1");
    let v = verifier(&[&k]);
    let mut h = header(&k);
    h.jku = Some("https://evil.test/jwks.json".into());
    assert_eq!(
        refused(&v, &sign(&k, &h, &claims())).await,
        VerifyError::ForbiddenHeader("jku".into())
    );
    let mut h = header(&k);
    h.x5u = Some("https://evil.test/cert.pem".into());
    assert_eq!(
        refused(&v, &sign(&k, &h, &claims())).await,
        VerifyError::ForbiddenHeader("x5u".into())
    );
    for (name, value) in [("jwk", k.jwk.clone()), ("x5c", json!(["MIIB"]))] {
        let mut raw = json!({"alg": "ES256", "typ": "at+jwt", "kid": "k1"});
        raw[name] = value;
        let token = format!("{}.{}.AAAA", b64(&raw), b64(&claims()));
        assert_eq!(
            refused(&v, &token).await,
            VerifyError::ForbiddenHeader(name.into())
        );
    }
}

#[tokio::test]
async fn wrong_or_missing_typ_is_refused() {
    let k = key("k1");
    let v = verifier(&[&k]);
    for typ in [Some("JWT"), Some("id+jwt"), None] {
        let mut h = header(&k);
        h.typ = typ.map(Into::into);
        assert!(matches!(
            refused(&v, &sign(&k, &h, &claims())).await,
            VerifyError::WrongType(_)
        ));
    }
    let mut h = header(&k);
    h.typ = Some("application/at+jwt".into());
    v.verify(&sign(&k, &h, &claims())).await.unwrap();
}

#[tokio::test]
async fn wrong_audience_or_issuer_is_refused() {
    let k = key("k1");
    let v = verifier(&[&k]);
    let mut c = claims();
    c["aud"] = json!("other-api");
    assert!(matches!(
        refused(&v, &sign(&k, &header(&k), &c)).await,
        VerifyError::WrongAudience(_)
    ));
    let mut c = claims();
    c["iss"] = json!("https://evil.test");
    assert!(matches!(
        refused(&v, &sign(&k, &header(&k), &c)).await,
        VerifyError::WrongIssuer(_)
    ));
    let mut c = claims();
    c.as_object_mut().unwrap().remove("aud");
    assert!(matches!(
        refused(&v, &sign(&k, &header(&k), &c)).await,
        VerifyError::InvalidClaims(_)
    ));
}

#[tokio::test]
async fn expired_and_not_yet_valid_tokens_are_refused_beyond_the_leeway() {
    let k = key("k1");
    let v = verifier(&[&k]);
    let t = now();
    let mut c = claims();
    c["exp"] = json!(t - 120);
    assert_eq!(
        refused(&v, &sign(&k, &header(&k), &c)).await,
        VerifyError::Expired
    );
    let mut c = claims();
    c["nbf"] = json!(t + 120);
    assert_eq!(
        refused(&v, &sign(&k, &header(&k), &c)).await,
        VerifyError::NotYetValid
    );
    // Within the 30 s leeway, small skew is tolerated.
    let mut c = claims();
    c["exp"] = json!(t - 5);
    v.verify(&sign(&k, &header(&k), &c)).await.unwrap();
}

#[tokio::test]
async fn exp_as_a_string_is_refused() {
    let k = key("k1");
    let v = verifier(&[&k]);
    let mut c = claims();
    c["exp"] = json!((now() + 300).to_string());
    assert!(matches!(
        refused(&v, &sign(&k, &header(&k), &c)).await,
        VerifyError::InvalidClaims(_)
    ));
}

#[tokio::test]
async fn tokens_over_8_kib_are_refused_before_parsing() {
    let k = key("k1");
    let v = verifier(&[&k]);
    let mut c = claims();
    c["roles"] = json!(vec!["r".repeat(100); 90]);
    let token = sign(&k, &header(&k), &c);
    assert!(token.len() > 8 * 1024);
    assert_eq!(refused(&v, &token).await, VerifyError::TooLarge);
    assert_eq!(refused(&v, &"a".repeat(9000)).await, VerifyError::TooLarge);
}

#[tokio::test]
async fn garbage_is_malformed() {
    let k = key("k1");
    let v = verifier(&[&k]);
    for token in ["", "abc", "a.b", "a.b.c.d", "!!.b.c"] {
        assert!(matches!(
            refused(&v, token).await,
            VerifyError::Malformed | VerifyError::MalformedHeader
        ));
    }
}

/// A JWKS server whose key set can change, counting fetches.
struct JwksServer {
    url: String,
    keys: Arc<std::sync::Mutex<Vec<Value>>>,
    fetches: Arc<AtomicUsize>,
}

async fn jwks_server(keys: Vec<Value>, max_age: u64) -> JwksServer {
    let keys = Arc::new(std::sync::Mutex::new(keys));
    let fetches = Arc::new(AtomicUsize::new(0));
    let (k, f) = (Arc::clone(&keys), Arc::clone(&fetches));
    let app = axum::Router::new().route(
        "/jwks.json",
        axum::routing::get(move || {
            let (k, f) = (Arc::clone(&k), Arc::clone(&f));
            async move {
                f.fetch_add(1, Ordering::SeqCst);
                let body = json!({"keys": *k.lock().unwrap()}).to_string();
                (
                    [("cache-control", format!("public, max-age={max_age}"))],
                    body,
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    JwksServer { url, keys, fetches }
}

#[tokio::test]
async fn jwks_is_cached_for_max_age_and_unknown_kids_refetch_at_most_once_per_interval() {
    let k1 = key("k1");
    let server = jwks_server(vec![k1.jwk.clone()], 3600).await;
    let mut config = VerifierConfig::new(ISS, [AUD]);
    config.min_refresh_interval = Duration::from_secs(3600);
    let v = Verifier::with_jwks_url(config, &server.url).unwrap();
    for _ in 0..3 {
        v.verify(&sign(&k1, &header(&k1), &claims())).await.unwrap();
    }
    assert_eq!(
        server.fetches.load(Ordering::SeqCst),
        1,
        "cached for max-age"
    );
    // Unknown kids: the first fetch was less than the interval ago, so no refetch at all.
    let k2 = key("k2");
    for _ in 0..5 {
        let token = sign(&k2, &header(&k2), &claims());
        assert_eq!(
            refused(&v, &token).await,
            VerifyError::UnknownKey("k2".into())
        );
    }
    assert_eq!(server.fetches.load(Ordering::SeqCst), 1, "rate-limited");
}

#[tokio::test]
async fn an_unknown_kid_triggers_a_refetch_that_finds_a_new_key() {
    let k1 = key("k1");
    let server = jwks_server(vec![k1.jwk.clone()], 3600).await;
    let mut config = VerifierConfig::new(ISS, [AUD]);
    config.min_refresh_interval = Duration::ZERO;
    let v = Verifier::with_jwks_url(config, &server.url).unwrap();
    v.verify(&sign(&k1, &header(&k1), &claims())).await.unwrap();
    let k2 = key("k2");
    server.keys.lock().unwrap().push(k2.jwk.clone());
    v.verify(&sign(&k2, &header(&k2), &claims())).await.unwrap();
    assert_eq!(server.fetches.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn max_age_zero_means_refetch_each_time() {
    let k1 = key("k1");
    let server = jwks_server(vec![k1.jwk.clone()], 0).await;
    let mut config = VerifierConfig::new(ISS, [AUD]);
    config.min_refresh_interval = Duration::ZERO;
    let v = Verifier::with_jwks_url(config, &server.url).unwrap();
    v.verify(&sign(&k1, &header(&k1), &claims())).await.unwrap();
    v.verify(&sign(&k1, &header(&k1), &claims())).await.unwrap();
    assert_eq!(server.fetches.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn unreachable_jwks_is_keys_unavailable() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
    drop(listener);
    let v = Verifier::with_jwks_url(VerifierConfig::new(ISS, [AUD]), url).unwrap();
    let k = key("k1");
    assert!(matches!(
        refused(&v, &sign(&k, &header(&k), &claims())).await,
        VerifyError::KeysUnavailable(_)
    ));
}

#[tokio::test]
async fn verify_at_judges_exp_and_nbf_by_the_given_clock_and_leeway() {
    let k = key("k1");
    let v = verifier(&[&k]);
    let t = now();
    let token = sign(&k, &header(&k), &claims()); // nbf t, exp t + 300
    // Leeway 30 s: accepted until exp + 30 (exclusive), from nbf - 30.
    v.verify_at(&token, t + 329).await.unwrap();
    assert_eq!(
        v.verify_at(&token, t + 330).await,
        Err(VerifyError::Expired)
    );
    v.verify_at(&token, t - 30).await.unwrap();
    assert_eq!(
        v.verify_at(&token, t - 31).await,
        Err(VerifyError::NotYetValid)
    );
}

#[tokio::test]
async fn tokens_without_jti_or_iat_are_refused() {
    let k = key("k1");
    let v = verifier(&[&k]);
    for claim in ["jti", "iat", "sub"] {
        let mut c = claims();
        c.as_object_mut().unwrap().remove(claim);
        assert!(
            matches!(
                refused(&v, &sign(&k, &header(&k), &c)).await,
                VerifyError::InvalidClaims(_)
            ),
            "{claim}"
        );
    }
}
