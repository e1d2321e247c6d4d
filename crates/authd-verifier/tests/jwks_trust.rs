//! What a verifier trusts from a JWKS (issue 16 item 7): a response is read up to the size
//! limit and no further; a cache past its max-age is not used when the refetch fails (keys the
//! issuer withdrew stop working); a JWK's `use`, `key_ops` and `alg` must fit a signature
//! with the token's algorithm; a token issued in the future is not valid yet. Real signatures
//! (aws-lc-rs keys, jsonwebtoken signing) and real HTTP servers on loopback.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use authd_verifier::{JwkSet, Verifier, VerifierConfig, VerifyError};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{EncodingKey, Header};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

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
           "jti": "j"})
}

fn token(k: &Key, claims: &Value) -> String {
    let mut h = Header::new(jsonwebtoken::Algorithm::ES256);
    h.typ = Some("at+jwt".into());
    h.kid = Some(k.kid.clone());
    jsonwebtoken::encode(&h, claims, &EncodingKey::from_ec_der(&k.pkcs8)).unwrap()
}

fn static_verifier(jwks: Vec<Value>) -> Verifier {
    let set: JwkSet = serde_json::from_value(json!({ "keys": jwks })).unwrap();
    Verifier::with_keys(VerifierConfig::new(ISS, [AUD]), set)
}

#[tokio::test]
async fn a_jwk_for_encryption_or_other_operations_or_another_alg_is_not_used() {
    let k = key("k1");
    let t = token(&k, &claims());
    let cases = [
        ("use", json!("enc")),
        ("key_ops", json!(["encrypt"])),
        ("alg", json!("ES384")),
    ];
    for (field, value) in cases {
        let mut jwk = k.jwk.clone();
        jwk[field] = value.clone();
        let v = static_verifier(vec![jwk]);
        assert_eq!(
            v.verify(&t).await,
            Err(VerifyError::KeyMismatch("k1".into())),
            "{field}: {value}"
        );
    }
    // Declared for signatures and verification, or not restricted at all: used.
    let mut jwk = k.jwk.clone();
    jwk["key_ops"] = json!(["verify"]);
    static_verifier(vec![jwk]).verify(&t).await.unwrap();
    let mut jwk = k.jwk.clone();
    let object = jwk.as_object_mut().unwrap();
    object.remove("use");
    object.remove("alg");
    static_verifier(vec![jwk]).verify(&t).await.unwrap();
}

#[tokio::test]
async fn a_token_issued_in_the_future_is_not_valid_yet_beyond_the_leeway() {
    let k = key("k1");
    let v = static_verifier(vec![k.jwk.clone()]);
    let mut c = claims();
    c.as_object_mut().unwrap().remove("nbf");
    c["iat"] = json!(now() + 120);
    assert_eq!(
        v.verify(&token(&k, &c)).await,
        Err(VerifyError::NotYetValid)
    );
    // Within the default 30 s leeway: a replica whose clock runs a little ahead.
    c["iat"] = json!(now() + 10);
    v.verify(&token(&k, &c)).await.unwrap();
}

/// A JWKS endpoint that can be made to fail, counting fetches.
struct FlakyJwks {
    url: String,
    failing: Arc<AtomicBool>,
    fetches: Arc<AtomicUsize>,
}

async fn flaky_jwks(keys: Vec<Value>, max_age: u64) -> FlakyJwks {
    let failing = Arc::new(AtomicBool::new(false));
    let fetches = Arc::new(AtomicUsize::new(0));
    let (fail, count) = (Arc::clone(&failing), Arc::clone(&fetches));
    let body = json!({ "keys": keys }).to_string();
    let app = axum::Router::new().route(
        "/jwks.json",
        axum::routing::get(move || {
            let (fail, count, body) = (Arc::clone(&fail), Arc::clone(&count), body.clone());
            async move {
                count.fetch_add(1, Ordering::SeqCst);
                if fail.load(Ordering::SeqCst) {
                    return (http::StatusCode::SERVICE_UNAVAILABLE, String::new());
                }
                (http::StatusCode::OK, body)
            }
        }),
    );
    let app = app.layer(axum::middleware::map_response(
        move |mut r: axum::response::Response| async move {
            r.headers_mut().insert(
                "cache-control",
                format!("public, max-age={max_age}").parse().unwrap(),
            );
            r
        },
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    FlakyJwks {
        url,
        failing,
        fetches,
    }
}

#[tokio::test]
async fn cached_keys_are_not_trusted_past_max_age_when_the_refetch_fails() {
    let k = key("k1");
    let server = flaky_jwks(vec![k.jwk.clone()], 1).await;
    let mut config = VerifierConfig::new(ISS, [AUD]);
    config.min_refresh_interval = Duration::ZERO;
    let v = Verifier::with_jwks_url(config, &server.url).unwrap();
    let t = token(&k, &claims());
    v.verify(&t).await.unwrap();
    // The issuer becomes unreachable (or is kept from the verifier) and the cache ages out:
    // the key may have been withdrawn meanwhile, so it is not trusted on the old copy.
    server.failing.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(matches!(
        v.verify(&t).await,
        Err(VerifyError::KeysUnavailable(_))
    ));
    assert_eq!(server.fetches.load(Ordering::SeqCst), 2);
    // Once the JWKS answers again, the key (still published) works again.
    server.failing.store(false, Ordering::SeqCst);
    v.verify(&t).await.unwrap();
}

#[tokio::test]
async fn a_failed_refetch_for_an_unknown_kid_keeps_a_fresh_cache_in_use() {
    let k = key("k1");
    let server = flaky_jwks(vec![k.jwk.clone()], 3600).await;
    let mut config = VerifierConfig::new(ISS, [AUD]);
    config.min_refresh_interval = Duration::ZERO;
    let v = Verifier::with_jwks_url(config, &server.url).unwrap();
    v.verify(&token(&k, &claims())).await.unwrap();
    server.failing.store(true, Ordering::SeqCst);
    let other = key("k2");
    assert!(v.verify(&token(&other, &claims())).await.is_err());
    v.verify(&token(&k, &claims())).await.unwrap();
}

/// An HTTP server whose JWKS response never ends, counting the bytes it managed to send.
async fn endless_jwks() -> (String, Arc<AtomicUsize>) {
    let sent = Arc::new(AtomicUsize::new(0));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
    let counter = Arc::clone(&sent);
    tokio::spawn(async move {
        loop {
            let (mut socket, _) = listener.accept().await.unwrap();
            let counter = Arc::clone(&counter);
            tokio::spawn(async move {
                let mut request = [0u8; 4096];
                let _ = socket.read(&mut request).await;
                let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
                            connection: close\r\n\r\n{\"keys\":[";
                if socket.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                let chunk = vec![b' '; 16 * 1024];
                while socket.write_all(&chunk).await.is_ok() {
                    counter.fetch_add(chunk.len(), Ordering::SeqCst);
                }
            });
        }
    });
    (url, sent)
}

#[tokio::test]
async fn an_oversized_jwks_is_cut_off_at_the_limit_not_read_whole() {
    let (url, sent) = endless_jwks().await;
    let v = Verifier::with_jwks_url(VerifierConfig::new(ISS, [AUD]), url).unwrap();
    let k = key("k1");
    let started = std::time::Instant::now();
    let refused = v.verify(&token(&k, &claims())).await;
    let took = started.elapsed();
    assert!(
        matches!(&refused, Err(VerifyError::KeysUnavailable(m)) if m.contains("larger than")),
        "{refused:?}"
    );
    // Reading the whole (endless) body would have run into the 10 s client timeout, with
    // gigabytes sent over loopback by then; stopping at 64 KiB leaves the server blocked on
    // full socket buffers, a few MiB at most.
    let sent = sent.load(Ordering::SeqCst);
    println!("refused after {took:?}; the server sent {sent} bytes");
    assert!(sent < 64 * 1024 * 1024, "{sent} bytes were read");
}
