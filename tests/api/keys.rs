//! Signing-key lifecycle end to end, driven by a manual clock: rotation with pre-publication,
//! retirement only after the tokens expired, replicas, concurrent rotation, algorithm change,
//! encryption at rest.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use authd::app::Application;
use authd::config::{Config, KeyEncryptionKey};
use authd::crypto::access_token::Claims;
use authd::domain::{ManualClock, Timestamp};
use authd::service::RotateOutcome;
use jsonwebtoken::jwk::JwkSet;

use crate::helpers::{PASSWORD, TestApp, spawn_on_with_clock, test_config};

const MINUTE: Duration = Duration::from_secs(60);

fn clock() -> ManualClock {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    ManualClock::new(Timestamp::from_unix_millis(
        i64::try_from(now.as_millis()).unwrap(),
    ))
}

async fn spawn(clock: &ManualClock, tweak: impl FnOnce(&mut Config)) -> TestApp {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let mut config = test_config(&dir);
    tweak(&mut config);
    let app = spawn_on_with_clock(dir, config, Arc::new(clock.clone())).await;
    app.add_user("alice", &["reader"]).await;
    app
}

/// A second process on the same database and clock.
async fn replica(app: &TestApp, clock: &ManualClock) -> TestApp {
    spawn_on_with_clock(
        Arc::clone(&app.dir),
        app.config.clone(),
        Arc::new(clock.clone()),
    )
    .await
}

async fn jwks(app: &TestApp) -> (JwkSet, Duration) {
    let (status, headers, body) = app.get("/.well-known/jwks.json").await;
    assert_eq!(status, 200);
    let max_age = headers["cache-control"]
        .to_str()
        .unwrap()
        .split("max-age=")
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    (
        serde_json::from_str(&body).unwrap(),
        Duration::from_secs(max_age),
    )
}

fn kids(set: &JwkSet) -> BTreeSet<String> {
    set.keys
        .iter()
        .map(|k| k.common.key_id.clone().unwrap())
        .collect()
}

async fn login(app: &TestApp) -> (String, String) {
    let token = app.login("alice", PASSWORD).await.unwrap().access_token;
    let kid = jsonwebtoken::decode_header(&token).unwrap().kid.unwrap();
    (token, kid)
}

/// Verifies with jsonwebtoken against a JWKS (exp is checked against the real clock, which
/// the manual clock started from; tests keep within the token lifetime where they verify).
fn verify(set: &JwkSet, token: &str) -> Claims {
    let header = jsonwebtoken::decode_header(token).unwrap();
    let jwk = set.find(header.kid.as_deref().unwrap()).expect("published");
    let mut validation = jsonwebtoken::Validation::new(header.alg);
    validation.validate_aud = false;
    jsonwebtoken::decode(
        token,
        &jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap(),
        &validation,
    )
    .unwrap()
    .claims
}

#[tokio::test]
async fn rotation_prepublishes_then_switches_and_retires_after_tokens_expire() {
    let clock = clock();
    let app = spawn(&clock, |_| {}).await;
    let prepublish = app.config.key_prepublish();
    assert_eq!(prepublish, 20 * MINUTE, "15m TTL + 5m JWKS max-age");
    let (old_token, old_kid) = login(&app).await;

    let keys = app.service.key_manager();
    let RotateOutcome::Scheduled { kid: new_kid, .. } = keys.rotate_now().await.unwrap() else {
        panic!("a rotation is scheduled");
    };
    // Published at once, not signing yet; a second rotation does not stack another key.
    assert_eq!(
        kids(&jwks(&app).await.0),
        BTreeSet::from([old_kid.clone(), new_kid.clone()])
    );
    assert_eq!(login(&app).await.1, old_kid);
    assert!(matches!(
        keys.rotate_now().await.unwrap(),
        RotateOutcome::AlreadyPending { kid, .. } if kid == new_kid
    ));

    clock.advance(prepublish - Duration::from_millis(1));
    assert_eq!(login(&app).await.1, old_kid);
    clock.advance(Duration::from_millis(1));
    let (new_token, kid) = login(&app).await;
    assert_eq!(kid, new_kid, "new tokens carry the new kid");

    // Old tokens still verify through the JWKS; the old key stays for their lifetime.
    let (set, _) = jwks(&app).await;
    assert_eq!(
        verify(&set, &old_token).preferred_username.as_deref(),
        Some("alice")
    );
    verify(&set, &new_token);
    // Retired at `prepublish`; its last tokens live 15m (+1m skew) after that.
    clock.advance(16 * MINUTE - Duration::from_millis(1));
    assert!(kids(&jwks(&app).await.0).contains(&old_kid));
    clock.advance(Duration::from_millis(1));
    assert_eq!(kids(&jwks(&app).await.0), BTreeSet::from([new_kid]));
}

#[tokio::test]
async fn verifiers_caching_the_jwks_never_meet_a_key_they_could_not_have_seen() {
    let clock = clock();
    let app = spawn(&clock, |c| {
        c.key_rotation_interval = Duration::from_secs(3600)
    })
    .await;
    let other = replica(&app, &clock).await;
    let replicas = [&app, &other];
    let ttl = app.config.access_token_ttl;

    let mut cache: Option<(Timestamp, Duration, BTreeSet<String>)> = None;
    let mut issued: Vec<(Timestamp, String)> = Vec::new();
    let mut kids_seen = BTreeSet::new();
    let start = authd::domain::Clock::now(&clock);
    for step in 0..200 {
        clock.advance(MINUTE);
        let now = authd::domain::Clock::now(&clock);
        // Each replica's key job: the second sees the first one's rotation a minute late.
        other.service.key_manager().maintain().await.unwrap();
        app.service.key_manager().maintain().await.unwrap();

        // A verifier refetches only when its cached copy is older than max-age; it may ask
        // either replica.
        let serving = replicas[step % 2];
        let stale = cache
            .as_ref()
            .is_none_or(|(at, age, _)| now.since(*at) >= *age);
        if stale {
            let (set, max_age) = jwks(serving).await;
            cache = Some((now, max_age, kids(&set)));
        }
        let (_, kid) = login(replicas[(step / 2) % 2]).await;
        let cached = &cache.as_ref().unwrap().2;
        assert!(
            cached.contains(&kid),
            "minute {step}: token kid {kid} not in the cached JWKS {cached:?}"
        );
        kids_seen.insert(kid.clone());
        issued.push((now, kid));

        // Every token still valid can be verified with what any replica publishes now.
        for replica in replicas {
            let published = kids(&jwks(replica).await.0);
            for (at, kid) in &issued {
                if now < at.saturating_add(ttl) {
                    assert!(
                        published.contains(kid),
                        "minute {step}: live token's key {kid} unpublished"
                    );
                }
            }
        }
    }
    assert!(
        kids_seen.len() >= 3,
        "keys rotated every hour over {:?}: {kids_seen:?}",
        authd::domain::Clock::now(&clock).since(start)
    );
}

#[tokio::test]
async fn concurrent_rotations_add_one_key() {
    let clock = clock();
    let app = spawn(&clock, |c| {
        c.key_rotation_interval = Duration::from_secs(3600)
    })
    .await;
    let other = replica(&app, &clock).await;
    let (a, b) = (app.service.key_manager(), other.service.key_manager());

    let (x, y) = tokio::join!(a.rotate_now(), b.rotate_now());
    let outcomes = [x.unwrap(), y.unwrap()];
    let scheduled = outcomes
        .iter()
        .filter(|o| matches!(o, RotateOutcome::Scheduled { .. }))
        .count();
    assert_eq!(scheduled, 1, "{outcomes:?}");
    assert_eq!(a.ring().keys().len(), 2);

    // Both replicas find the scheduled rotation due at the same moment: one key between them.
    // The pending key activates 20m from now; the next rotation is due 1h after that,
    // one pre-publication period early.
    clock.advance(Duration::from_secs(3600));
    let (x, y) = tokio::join!(a.maintain(), b.maintain());
    let created = [x.unwrap(), y.unwrap()].into_iter().flatten().count();
    assert_eq!(created, 1);
    b.reload().await.unwrap();
    assert_eq!(b.ring().keys().len(), 3);
}

#[tokio::test]
async fn changing_the_algorithm_takes_effect_through_a_rotation() {
    let clock = clock();
    let app = spawn(&clock, |_| {}).await;
    let (token, _) = login(&app).await;
    assert_eq!(
        jsonwebtoken::decode_header(&token).unwrap().alg,
        jsonwebtoken::Algorithm::ES256
    );
    let (dir, mut config) = app.stop().await;
    config.signing_algorithm = authd::crypto::keys::SigningAlgorithm::EdDSA;
    let app = spawn_on_with_clock(dir, config, Arc::new(clock.clone())).await;
    // The existing key keeps signing until a rotation.
    let (token, _) = login(&app).await;
    assert_eq!(
        jsonwebtoken::decode_header(&token).unwrap().alg,
        jsonwebtoken::Algorithm::ES256
    );
    app.service.key_manager().rotate_now().await.unwrap();
    clock.advance(app.config.key_prepublish());
    let (token, _) = login(&app).await;
    assert_eq!(
        jsonwebtoken::decode_header(&token).unwrap().alg,
        jsonwebtoken::Algorithm::EdDSA
    );
    verify(&jwks(&app).await.0, &token);
}

async fn stored_keys(app: &TestApp) -> Vec<(Vec<u8>, bool)> {
    let pool = sqlx::SqlitePool::connect(&app.config.database_url)
        .await
        .unwrap();
    sqlx::query_as("SELECT private_key, encrypted FROM signing_keys")
        .fetch_all(&pool)
        .await
        .unwrap()
}

fn is_plain_pkcs8(blob: &[u8]) -> bool {
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
    EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, blob).is_ok()
}

#[tokio::test]
async fn private_keys_are_encrypted_at_rest_when_a_key_encryption_key_is_set() {
    use base64::Engine;
    let kek = base64::engine::general_purpose::STANDARD.encode([42u8; 32]);
    let clock = clock();
    // Start without encryption: the key is stored in the clear...
    let app = spawn(&clock, |_| {}).await;
    let (token, _) = login(&app).await;
    assert!(
        stored_keys(&app)
            .await
            .iter()
            .all(|(k, enc)| !enc && is_plain_pkcs8(k))
    );
    let (dir, mut config) = app.stop().await;

    // ...and is encrypted by the first start that has a key encryption key.
    config.key_encryption_key = Some(KeyEncryptionKey::new(kek.clone()));
    let app = spawn_on_with_clock(dir, config.clone(), Arc::new(clock.clone())).await;
    app.service.key_manager().rotate_now().await.unwrap();
    let stored = stored_keys(&app).await;
    assert_eq!(stored.len(), 2);
    assert!(stored.iter().all(|(k, enc)| *enc && !is_plain_pkcs8(k)));
    verify(&jwks(&app).await.0, &token);
    let (_, kid) = login(&app).await;
    let (dir, config) = app.stop().await;

    // Without the key, or with another one, authd refuses to start, saying why.
    let mut without = config.clone();
    without.key_encryption_key = None;
    let Err(e) = Application::build(without).await else {
        panic!("must not start without the key");
    };
    assert!(e.to_string().contains("AUTHD_KEY_ENCRYPTION_KEY"), "{e}");
    let mut wrong = config.clone();
    let other = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
    wrong.key_encryption_key = Some(KeyEncryptionKey::new(other));
    let Err(e) = Application::build(wrong).await else {
        panic!("must not start with a wrong key");
    };
    assert!(e.to_string().contains("cannot decrypt"), "{e}");

    // With the right key, the same keys sign again.
    let app = spawn_on_with_clock(dir, config, Arc::new(clock.clone())).await;
    assert_eq!(login(&app).await.1, kid);
    assert!(format!("{:?}", app.config).contains("<redacted>"));
    assert!(!format!("{:?}", app.config).contains(&kek));
}

#[tokio::test]
async fn replicas_pick_up_keys_created_elsewhere_on_reload() {
    let clock = clock();
    let app = spawn(&clock, |_| {}).await;
    let other = replica(&app, &clock).await;
    let RotateOutcome::Scheduled { kid, .. } =
        app.service.key_manager().rotate_now().await.unwrap()
    else {
        panic!("scheduled");
    };
    assert!(!kids(&jwks(&other).await.0).contains(&kid));
    // What the key job does every minute.
    other.service.key_manager().maintain().await.unwrap();
    assert!(kids(&jwks(&other).await.0).contains(&kid));
}
