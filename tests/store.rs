//! The storage conformance suite: every test body is written once against `Arc<dyn Store>` and
//! runs on SQLite (a fresh file) and on PostgreSQL (a fresh database on the server named by
//! `AUTHD_TEST_POSTGRES_URL`; skipped with a printed reason when it is unset).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/postgres.rs"]
mod pg;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use authd::crypto::api_key::ApiKeySecret;
use authd::domain::{
    ApiKey, Charge, FailureCount, FamilyId, NewFamily, NewToken, Origin, RefreshPolicy, Rejection,
    Role, Rotation, SessionOrigin, Successor, ThrottlePolicy, Timestamp, TokenHash, User, UserId,
    Username, is_live,
};
use authd::store::{NewUser, Purged, RoleChange, Store, StoreError, StoredKey};

/// A store and whatever keeps its database alive.
struct Backend {
    store: Arc<dyn Store>,
    url: String,
    _sqlite: Option<tempfile::TempDir>,
    _postgres: Option<pg::TestDatabase>,
}

async fn sqlite() -> Backend {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("store.db").display());
    Backend {
        store: authd::store::open(&url).await.unwrap(),
        url,
        _sqlite: Some(dir),
        _postgres: None,
    }
}

/// A connection of the test's own to a PostgreSQL test database (to set or read what the
/// store does not expose).
async fn connect(url: &str) -> sqlx::postgres::PgConnection {
    <sqlx::postgres::PgConnection as sqlx::Connection>::connect(url)
        .await
        .unwrap()
}

async fn postgres(test: &str) -> Option<Backend> {
    let db = pg::TestDatabase::create(test).await?;
    Some(Backend {
        store: authd::store::open(&db.url).await.unwrap(),
        url: db.url.clone(),
        _sqlite: None,
        _postgres: Some(db),
    })
}

/// Instantiates each named test body for both backends.
macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod on_sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::sqlite().await).await;
                }
            )*
        }
        mod on_postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if let Some(backend) = super::postgres(stringify!($name)).await {
                        super::$name(backend).await;
                    }
                }
            )*
        }
    };
}

conformance!(
    ping_answers,
    created_user_can_be_found_and_listed,
    duplicate_user_is_refused,
    unknown_user_operations_say_not_found,
    password_hash_upgrade_only_replaces_the_expected_hash,
    roles_are_added_and_removed,
    refresh_token_rotates_once,
    unknown_token_is_rejected,
    grace_replay_returns_the_sealed_successor,
    reuse_after_rotation_revokes_the_family,
    idle_and_lifetime_expiry_refuse,
    concurrent_rotations_of_one_token_have_exactly_one_winner,
    concurrent_rotations_of_many_sessions_are_each_applied_once,
    closing_answers_every_queued_rotation_truthfully,
    disabling_a_user_revokes_its_families,
    password_change_revokes_families,
    deleting_a_user_deletes_its_families,
    revoke_family_is_idempotent,
    signing_keys_round_trip,
    purge_deletes_only_what_cannot_be_used,
    purge_works_in_batches,
    migrations_are_idempotent,
    revoke_family_of_any_token_ends_the_session,
    logout_racing_rotation_leaves_no_live_token,
    revoked_access_tokens_are_remembered_until_expiry,
    sessions_are_listed_with_their_origin_and_revoked,
    api_keys_round_trip_without_their_secret,
    login_attempts_are_charged_under_the_policy,
    concurrent_attempts_on_one_counter_are_charged_one_by_one,
    login_failure_counters_are_cleared_and_purged,
    audit_events_are_stored_listed_and_purged,
    rotations_store_their_audit_events_in_the_same_transaction,
    a_session_starts_with_its_login_event_and_clears_the_failure_counter,
);

// --- fixtures

const T0: Timestamp = Timestamp::from_unix_millis(1_700_000_000_000);
const MINUTE: Duration = Duration::from_secs(60);
const DAY: Duration = Duration::from_secs(24 * 3600);

fn at(minutes: u64) -> Timestamp {
    T0.saturating_add(MINUTE * u32::try_from(minutes).unwrap())
}

fn policy(grace: Duration) -> RefreshPolicy {
    RefreshPolicy {
        idle_ttl: DAY,
        max_lifetime: 30 * DAY,
        reuse_grace: grace,
    }
}

fn user(name: &str) -> User {
    User {
        id: UserId::generate(),
        username: Username::parse(name).unwrap(),
        roles: vec![Role::parse("reader").unwrap()],
        enabled: true,
        created_at: T0,
    }
}

fn name(n: &str) -> Username {
    Username::parse(n).unwrap()
}

async fn add_user(store: &dyn Store, n: &str) -> User {
    let user = user(n);
    store
        .create_user(&NewUser {
            user: user.clone(),
            password_hash: "$argon2id$v=19$m=256,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2g".into(),
        })
        .await
        .unwrap();
    user
}

fn random_hash() -> TokenHash {
    let mut hash = [0u8; 32];
    hash[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    hash[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    TokenHash(hash)
}

fn token(now: Timestamp, policy: &RefreshPolicy) -> NewToken {
    NewToken {
        hash: random_hash(),
        issued_at: now,
        expires_at: now.saturating_add(policy.idle_ttl),
    }
}

/// A successor whose "sealed" form is recognisable: the store treats it as opaque bytes.
fn successor(now: Timestamp, policy: &RefreshPolicy) -> Successor {
    let token = token(now, policy);
    Successor {
        sealed: token.hash.0.to_vec(),
        token,
    }
}

/// Starts a family at `now` and returns its id and first token's hash.
async fn login(
    store: &dyn Store,
    user: &User,
    now: Timestamp,
    policy: &RefreshPolicy,
) -> (FamilyId, TokenHash) {
    let family = NewFamily {
        id: FamilyId::generate(),
        user: user.clone(),
        created_at: now,
        expires_at: now.saturating_add(policy.max_lifetime),
        origin: SessionOrigin::new(Some("192.0.2.7".into()), Some("test-agent/1")),
    };
    let first = token(now, policy);
    store.start_family(&family, &first, &[]).await.unwrap();
    (family.id, first.hash)
}

/// Rotates `presented` and returns the successor's hash, asserting it rotated.
async fn rotate(
    store: &dyn Store,
    presented: &TokenHash,
    now: Timestamp,
    policy: &RefreshPolicy,
) -> TokenHash {
    let next = successor(now, policy);
    match store
        .rotate_refresh(presented, &next, now, policy, &Origin::default())
        .await
    {
        Ok(Rotation::Rotated { .. }) => next.token.hash,
        other => panic!("expected a rotation, got {other:?}"),
    }
}

async fn outcome(
    store: &dyn Store,
    presented: &TokenHash,
    now: Timestamp,
    policy: &RefreshPolicy,
) -> Rotation {
    store
        .rotate_refresh(
            presented,
            &successor(now, policy),
            now,
            policy,
            &Origin::default(),
        )
        .await
        .unwrap()
}

fn rejected(r: &Rotation) -> Option<Rejection> {
    match r {
        Rotation::Rejected(why) => Some(*why),
        _ => None,
    }
}

// --- users

async fn ping_answers(b: Backend) {
    b.store.ping().await.unwrap();
}

async fn created_user_can_be_found_and_listed(b: Backend) {
    let s = b.store.as_ref();
    let bob = add_user(s, "bob").await;
    let alice = add_user(s, "alice").await;
    assert_eq!(
        s.find_user(&name("alice")).await.unwrap(),
        Some(alice.clone())
    );
    let creds = s.find_credentials(&name("bob")).await.unwrap().unwrap();
    assert_eq!(creds.user, bob);
    assert!(creds.password_hash.starts_with("$argon2id$"));
    assert_eq!(s.find_user(&name("carol")).await.unwrap(), None);
    assert!(s.find_credentials(&name("carol")).await.unwrap().is_none());
    let listed = s.list_users().await.unwrap();
    assert_eq!(listed, vec![alice, bob], "sorted by username");
}

async fn duplicate_user_is_refused(b: Backend) {
    let s = b.store.as_ref();
    add_user(s, "alice").await;
    let again = s
        .create_user(&NewUser {
            user: user("alice"),
            password_hash: "x".into(),
        })
        .await;
    assert!(matches!(again, Err(StoreError::DuplicateUser)), "{again:?}");
    assert_eq!(s.list_users().await.unwrap().len(), 1);
}

async fn unknown_user_operations_say_not_found(b: Backend) {
    let s = b.store.as_ref();
    let ghost = name("ghost");
    assert!(matches!(
        s.change_password(&ghost, "h", T0).await,
        Err(StoreError::UserNotFound)
    ));
    assert!(matches!(
        s.set_enabled(&ghost, false, T0).await,
        Err(StoreError::UserNotFound)
    ));
    assert!(matches!(
        s.delete_user(&ghost).await,
        Err(StoreError::UserNotFound)
    ));
    assert!(matches!(
        s.change_roles(&ghost, &RoleChange::default()).await,
        Err(StoreError::UserNotFound)
    ));
}

async fn password_hash_upgrade_only_replaces_the_expected_hash(b: Backend) {
    let s = b.store.as_ref();
    let alice = add_user(s, "alice").await;
    let old = s
        .find_credentials(&name("alice"))
        .await
        .unwrap()
        .unwrap()
        .password_hash;
    // A concurrent password change got there first: the upgrade must not overwrite it.
    s.upgrade_password_hash(&alice.id, "not-the-current-hash", "upgraded-1")
        .await
        .unwrap();
    let now = s.find_credentials(&name("alice")).await.unwrap().unwrap();
    assert_eq!(now.password_hash, old);
    s.upgrade_password_hash(&alice.id, &old, "upgraded-2")
        .await
        .unwrap();
    let now = s.find_credentials(&name("alice")).await.unwrap().unwrap();
    assert_eq!(now.password_hash, "upgraded-2");
}

async fn roles_are_added_and_removed(b: Backend) {
    let s = b.store.as_ref();
    add_user(s, "alice").await;
    let role = |r: &str| Role::parse(r).unwrap();
    let changed = s
        .change_roles(
            &name("alice"),
            &RoleChange {
                add: vec![role("writer"), role("admin"), role("writer")],
                remove: vec![role("reader")],
            },
        )
        .await
        .unwrap();
    assert_eq!(changed.roles, vec![role("admin"), role("writer")]);
    let stored = s.find_user(&name("alice")).await.unwrap().unwrap();
    assert_eq!(stored.roles, changed.roles);
}

// --- rotation

async fn refresh_token_rotates_once(b: Backend) {
    let s = b.store.as_ref();
    let p = policy(Duration::ZERO);
    let alice = add_user(s, "alice").await;
    let (family, first) = login(s, &alice, at(0), &p).await;
    let next = successor(at(1), &p);
    match s
        .rotate_refresh(&first, &next, at(1), &p, &Origin::default())
        .await
        .unwrap()
    {
        Rotation::Rotated { user, family_id } => {
            assert_eq!(user, alice);
            assert_eq!(family_id, family);
        }
        other => panic!("{other:?}"),
    }
    // The successor rotates in turn, and so on.
    let third = rotate(s, &next.token.hash, at(2), &p).await;
    rotate(s, &third, at(3), &p).await;
}

async fn unknown_token_is_rejected(b: Backend) {
    let s = b.store.as_ref();
    let p = policy(Duration::ZERO);
    let r = outcome(s, &random_hash(), at(0), &p).await;
    assert_eq!(rejected(&r), Some(Rejection::Unknown));
}

async fn grace_replay_returns_the_sealed_successor(b: Backend) {
    let s = b.store.as_ref();
    let p = policy(MINUTE);
    let alice = add_user(s, "alice").await;
    let (_, first) = login(s, &alice, at(0), &p).await;
    let next = successor(at(1), &p);
    s.rotate_refresh(&first, &next, at(1), &p, &Origin::default())
        .await
        .unwrap();
    // Within the grace window: the same successor, sealed, and nothing new stored.
    match outcome(s, &first, at(1), &p).await {
        Rotation::Replayed {
            sealed_successor, ..
        } => assert_eq!(sealed_successor, next.sealed),
        other => panic!("{other:?}"),
    }
    // The successor is still the family's newest token and rotates.
    let third = rotate(s, &next.token.hash, at(1), &p).await;
    // Now `first` is the grandparent: replaying it is reuse, even within the window.
    assert!(matches!(
        outcome(s, &first, at(1), &p).await,
        Rotation::ReuseDetected { .. }
    ));
    assert_eq!(
        rejected(&outcome(s, &third, at(1), &p).await),
        Some(Rejection::FamilyRevoked)
    );
}

async fn reuse_after_rotation_revokes_the_family(b: Backend) {
    let s = b.store.as_ref();
    let p = policy(Duration::ZERO);
    let alice = add_user(s, "alice").await;
    let (family, first) = login(s, &alice, at(0), &p).await;
    let (_, other_first) = login(s, &alice, at(0), &p).await;
    let second = rotate(s, &first, at(1), &p).await;
    let third = rotate(s, &second, at(2), &p).await;
    match outcome(s, &first, at(3), &p).await {
        Rotation::ReuseDetected { family_id, .. } => assert_eq!(family_id, family),
        other => panic!("{other:?}"),
    }
    // Every token of the family is refused now, the newest included.
    assert_eq!(
        rejected(&outcome(s, &third, at(3), &p).await),
        Some(Rejection::FamilyRevoked)
    );
    assert_eq!(
        rejected(&outcome(s, &first, at(3), &p).await),
        Some(Rejection::FamilyRevoked)
    );
    // Another family of the same user is untouched.
    rotate(s, &other_first, at(3), &p).await;
}

async fn idle_and_lifetime_expiry_refuse(b: Backend) {
    let s = b.store.as_ref();
    let p = policy(Duration::ZERO);
    let alice = add_user(s, "alice").await;
    let (_, idle) = login(s, &alice, at(0), &p).await;
    let idle_end = at(0).saturating_add(p.idle_ttl);
    assert_eq!(
        rejected(&outcome(s, &idle, idle_end, &p).await),
        Some(Rejection::IdleExpired)
    );
    // A family refreshed daily still ends at its absolute lifetime.
    let (_, mut current) = login(s, &alice, at(0), &p).await;
    let mut now = at(0);
    let end = at(0).saturating_add(p.max_lifetime);
    while now.saturating_add(DAY - MINUTE) < end {
        now = now.saturating_add(DAY - MINUTE);
        current = rotate(s, &current, now, &p).await;
    }
    assert_eq!(
        rejected(&outcome(s, &current, end, &p).await),
        Some(Rejection::FamilyExpired)
    );
}

async fn concurrent_rotations_of_one_token_have_exactly_one_winner(b: Backend) {
    let p = policy(Duration::ZERO);
    let alice = add_user(b.store.as_ref(), "alice").await;
    for round in 0..10 {
        let (_, first) = login(b.store.as_ref(), &alice, at(round), &p).await;
        let attempts = (0..16).map(|_| {
            let store = Arc::clone(&b.store);
            tokio::spawn(async move { outcome(store.as_ref(), &first, at(round + 1), &p).await })
        });
        let results = futures::future::join_all(attempts).await;
        let rotated = results
            .iter()
            .filter(|r| matches!(r.as_ref().unwrap(), Rotation::Rotated { .. }))
            .count();
        assert_eq!(rotated, 1, "round {round}: {results:?}");
        // The others are reuse or refused because of it; nothing else.
        for r in &results {
            assert!(
                matches!(
                    r.as_ref().unwrap(),
                    Rotation::Rotated { .. }
                        | Rotation::ReuseDetected { .. }
                        | Rotation::Rejected(Rejection::FamilyRevoked)
                ),
                "{r:?}"
            );
        }
    }
}

async fn concurrent_rotations_of_many_sessions_are_each_applied_once(b: Backend) {
    let p = policy(MINUTE);
    let alice = add_user(b.store.as_ref(), "alice").await;
    let mut firsts = Vec::new();
    for _ in 0..24 {
        firsts.push(login(b.store.as_ref(), &alice, at(0), &p).await.1);
    }
    // Every session's token presented three times, all at once: the writer (SQLite) or the
    // batcher (PostgreSQL) takes many sessions together, and a token's retries with it. Each
    // session rotates once; its retries, within the grace window, get that same successor.
    let attempts = firsts
        .iter()
        .flat_map(|first| std::iter::repeat_n(*first, 3))
        .map(|first| {
            let store = Arc::clone(&b.store);
            tokio::spawn(async move {
                let next = successor(at(1), &p);
                let rotation = store
                    .rotate_refresh(&first, &next, at(1), &p, &Origin::default())
                    .await
                    .unwrap();
                (first, next, rotation)
            })
        });
    let results: Vec<_> = futures::future::join_all(attempts)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    for first in &firsts {
        let mine: Vec<_> = results.iter().filter(|(f, ..)| f == first).collect();
        let winners: Vec<_> = mine
            .iter()
            .filter(|(_, _, r)| matches!(r, Rotation::Rotated { .. }))
            .collect();
        assert_eq!(winners.len(), 1, "{mine:?}");
        let (_, next, _) = winners[0];
        for (_, _, r) in &mine {
            match r {
                Rotation::Rotated { .. } => {}
                Rotation::Replayed {
                    sealed_successor, ..
                } => assert_eq!(sealed_successor, &next.sealed),
                other => panic!("{other:?}"),
            }
        }
        // The winner's successor is the session's newest token: it rotates.
        rotate(b.store.as_ref(), &next.token.hash, at(2), &p).await;
    }
    let refreshed = b
        .store
        .audit_events(Some("alice"), 1000)
        .await
        .unwrap()
        .iter()
        .filter(|e| e.kind.as_str() == "token_refreshed")
        .count();
    assert_eq!(refreshed, 24 * 3 + 24);
}

async fn closing_answers_every_queued_rotation_truthfully(b: Backend) {
    let p = policy(MINUTE);
    let alice = add_user(b.store.as_ref(), "alice").await;
    let mut firsts = Vec::new();
    for _ in 0..16 {
        firsts.push(login(b.store.as_ref(), &alice, at(0), &p).await.1);
    }
    let attempts: Vec<_> = firsts
        .iter()
        .map(|&first| {
            let store = Arc::clone(&b.store);
            tokio::spawn(async move {
                store
                    .rotate_refresh(&first, &successor(at(1), &p), at(1), &p, &Origin::default())
                    .await
            })
        })
        .collect();
    b.store.close().await;
    // Whatever the store answered is what it stored: a rotation it confirmed is there, one it
    // refused left nothing behind.
    let reopened = authd::store::open(&b.url).await.unwrap();
    for (first, attempt) in firsts.iter().zip(attempts) {
        let state = reopened
            .inspect_refresh(first)
            .await
            .unwrap()
            .unwrap()
            .state;
        match attempt.await.unwrap() {
            Ok(Rotation::Rotated { .. }) => assert!(state.used_at.is_some()),
            Err(StoreError::Unavailable(_)) => assert!(state.used_at.is_none()),
            other => panic!("{other:?}"),
        }
    }
    reopened.close().await;
}

async fn disabling_a_user_revokes_its_families(b: Backend) {
    let s = b.store.as_ref();
    let p = policy(Duration::ZERO);
    let alice = add_user(s, "alice").await;
    let (_, first) = login(s, &alice, at(0), &p).await;
    let disabled = s.set_enabled(&name("alice"), false, at(1)).await.unwrap();
    assert!(!disabled.enabled);
    assert!(!s.find_user(&name("alice")).await.unwrap().unwrap().enabled);
    assert!(rejected(&outcome(s, &first, at(2), &p).await).is_some());
    // Enabling again does not bring old families back.
    s.set_enabled(&name("alice"), true, at(3)).await.unwrap();
    assert_eq!(
        rejected(&outcome(s, &first, at(4), &p).await),
        Some(Rejection::FamilyRevoked)
    );
    let (_, fresh) = login(s, &alice, at(5), &p).await;
    rotate(s, &fresh, at(6), &p).await;
}

async fn password_change_revokes_families(b: Backend) {
    let s = b.store.as_ref();
    let p = policy(Duration::ZERO);
    let alice = add_user(s, "alice").await;
    let (_, first) = login(s, &alice, at(0), &p).await;
    let (_, second) = login(s, &alice, at(0), &p).await;
    s.change_password(&name("alice"), "new-hash", at(1))
        .await
        .unwrap();
    let creds = s.find_credentials(&name("alice")).await.unwrap().unwrap();
    assert_eq!(creds.password_hash, "new-hash");
    for t in [first, second] {
        assert_eq!(
            rejected(&outcome(s, &t, at(2), &p).await),
            Some(Rejection::FamilyRevoked)
        );
    }
}

async fn deleting_a_user_deletes_its_families(b: Backend) {
    let s = b.store.as_ref();
    let p = policy(Duration::ZERO);
    let alice = add_user(s, "alice").await;
    let (_, first) = login(s, &alice, at(0), &p).await;
    let deleted = s.delete_user(&name("alice")).await.unwrap();
    assert_eq!(deleted.id, alice.id);
    assert_eq!(s.find_user(&name("alice")).await.unwrap(), None);
    assert_eq!(
        rejected(&outcome(s, &first, at(1), &p).await),
        Some(Rejection::Unknown)
    );
    // The name can be taken again, by a different user.
    let again = add_user(s, "alice").await;
    assert_ne!(again.id, alice.id);
}

async fn revoke_family_is_idempotent(b: Backend) {
    let s = b.store.as_ref();
    let p = policy(MINUTE);
    let alice = add_user(s, "alice").await;
    let (family, first) = login(s, &alice, at(0), &p).await;
    let second = rotate(s, &first, at(1), &p).await;
    s.revoke_family(&family, at(1)).await.unwrap();
    s.revoke_family(&family, at(2)).await.unwrap();
    s.revoke_family(&FamilyId::generate(), at(2)).await.unwrap();
    // Not even the grace window survives a revocation.
    for t in [first, second] {
        assert_eq!(
            rejected(&outcome(s, &t, at(1), &p).await),
            Some(Rejection::FamilyRevoked)
        );
    }
}

async fn signing_keys_round_trip(b: Backend) {
    let s = b.store.as_ref();
    assert!(s.signing_keys().await.unwrap().is_empty());
    let key = |kid: &str, created: Timestamp, activates: Timestamp| StoredKey {
        kid: kid.into(),
        algorithm: "ES256".into(),
        private_key: vec![1, 2, 3, 0, 255],
        encrypted: false,
        created_at: created,
        activates_at: activates,
        retires_at: None,
    };
    // `None`: only into an empty table.
    assert!(
        s.insert_signing_key_if(&key("a", at(0), at(0)), None)
            .await
            .unwrap()
    );
    assert!(
        !s.insert_signing_key_if(&key("x", at(0), at(0)), None)
            .await
            .unwrap()
    );
    // A rotation: refused while a key activates after the given time...
    assert!(
        !s.insert_signing_key_if(
            &key("x", at(1), at(10)),
            Some(Timestamp::from_unix_millis(at(0).unix_millis() - 1))
        )
        .await
        .unwrap()
    );
    // ...accepted otherwise, retiring the older key when the new one activates.
    assert!(
        s.insert_signing_key_if(&key("b", at(1), at(10)), Some(at(0)))
            .await
            .unwrap()
    );
    assert!(
        !s.insert_signing_key_if(&key("c", at(2), at(12)), Some(at(2)))
            .await
            .unwrap(),
        "b is pending"
    );
    let keys = s.signing_keys().await.unwrap();
    let seen: Vec<_> = keys
        .iter()
        .map(|k| (k.kid.as_str(), k.activates_at, k.retires_at))
        .collect();
    assert_eq!(seen, vec![("a", at(0), Some(at(10))), ("b", at(10), None)]);
    assert_eq!(keys[0].private_key, vec![1, 2, 3, 0, 255]);
    assert_eq!(keys[0].algorithm, "ES256");
    assert!(!keys[0].encrypted);
    // Resealing replaces the private part only.
    s.reseal_signing_key("a", &[9, 9], true).await.unwrap();
    let keys = s.signing_keys().await.unwrap();
    assert_eq!(
        (keys[0].private_key.clone(), keys[0].encrypted),
        (vec![9, 9], true)
    );
    assert_eq!(keys[0].retires_at, Some(at(10)));
    // A duplicate kid is an error, never a silent overwrite.
    assert!(
        s.insert_signing_key_if(&key("a", at(20), at(30)), Some(at(20)))
            .await
            .is_err()
    );
}

// --- purge

async fn purge_deletes_only_what_cannot_be_used(b: Backend) {
    let s = b.store.as_ref();
    let p = policy(Duration::ZERO);
    let alice = add_user(s, "alice").await;
    // A live family with a used token (kept for reuse detection) and its newest token.
    let (_, live_first) = login(s, &alice, at(0), &p).await;
    let live_newest = rotate(s, &live_first, at(1), &p).await;
    // A revoked family, an idle-expired token, and a family past its lifetime.
    let (revoked, revoked_first) = login(s, &alice, at(0), &p).await;
    s.revoke_family(&revoked, at(1)).await.unwrap();
    let short = RefreshPolicy {
        idle_ttl: MINUTE,
        max_lifetime: 2 * MINUTE,
        reuse_grace: Duration::ZERO,
    };
    let (_, ended_first) = login(s, &alice, at(0), &short).await;

    let now = at(10);
    let purged = s.purge_expired(now, 1000).await.unwrap();
    assert_eq!(
        purged,
        Purged {
            tokens: 2,
            families: 2
        }
    );
    // A second run (or another replica at the same time) finds nothing more.
    assert_eq!(s.purge_expired(now, 1000).await.unwrap(), Purged::default());

    for gone in [revoked_first, ended_first] {
        assert_eq!(
            rejected(&outcome(s, &gone, now, &p).await),
            Some(Rejection::Unknown)
        );
    }
    // The used token of the live family is still recognised as reuse.
    assert!(matches!(
        outcome(s, &live_first, now, &p).await,
        Rotation::ReuseDetected { .. }
    ));
    assert_eq!(
        rejected(&outcome(s, &live_newest, now, &p).await),
        Some(Rejection::FamilyRevoked)
    );
}

async fn purge_works_in_batches(b: Backend) {
    let p = policy(Duration::ZERO);
    let alice = add_user(b.store.as_ref(), "alice").await;
    let families: Vec<FamilyId> =
        futures::future::join_all((0..25).map(|_| login(b.store.as_ref(), &alice, at(0), &p)))
            .await
            .into_iter()
            .map(|(f, _)| f)
            .collect();
    for f in &families {
        b.store.revoke_family(f, at(1)).await.unwrap();
    }
    // Two replicas purging at once, in batches of 4: every row goes exactly once.
    let (x, y) = tokio::join!(
        b.store.purge_expired(at(2), 4),
        b.store.purge_expired(at(2), 4)
    );
    let (x, y) = (x.unwrap(), y.unwrap());
    assert_eq!(
        b.store.purge_expired(at(2), 4).await.unwrap(),
        Purged::default()
    );
    assert_eq!(x.tokens + y.tokens, 25);
    assert_eq!(x.families + y.families, 25);
    let (_, fresh) = login(b.store.as_ref(), &alice, at(3), &p).await;
    rotate(b.store.as_ref(), &fresh, at(4), &p).await;
}

async fn migrations_are_idempotent(b: Backend) {
    add_user(b.store.as_ref(), "alice").await;
    // Several processes opening the same database at once each run the migrator; the lock
    // makes that safe, and the data survives.
    let opened = futures::future::join_all((0..3).map(|_| authd::store::open(&b.url))).await;
    for store in opened {
        let store = store.unwrap();
        assert!(store.find_user(&name("alice")).await.unwrap().is_some());
    }
}

#[test]
fn both_backends_have_the_same_migrations() {
    let names = |dir: &str| -> Vec<String> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
        let mut names: Vec<String> = std::fs::read_dir(&path)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    let sqlite = names("migrations/sqlite");
    let postgres = names("migrations/postgres");
    assert!(!sqlite.is_empty());
    assert_eq!(sqlite, postgres);
    let distinct: HashSet<&str> = sqlite
        .iter()
        .map(|n| n.split('_').next().unwrap_or_default())
        .collect();
    assert_eq!(
        distinct.len(),
        sqlite.len(),
        "one file per migration number"
    );
}

#[tokio::test]
async fn postgres_url_with_sslmode_require_connects_over_tls() {
    let Some(db) =
        pg::TestDatabase::create("postgres_url_with_sslmode_require_connects_over_tls").await
    else {
        return;
    };
    let url = format!(
        "{}{}sslmode=require",
        db.url,
        if db.url.contains('?') { '&' } else { '?' }
    );
    let store = authd::store::open(&url).await.unwrap();
    add_user(store.as_ref(), "alice").await;
    // The same URL, as the store's pool reads it, gives an encrypted session (rustls).
    let mut conn = connect(&url).await;
    let (ssl,): (bool,) =
        sqlx::query_as("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert!(ssl, "sslmode=require must use TLS");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_processes_migrating_a_fresh_database_at_once_apply_each_migration_once() {
    let Some(db) = pg::TestDatabase::create(
        "postgres_processes_migrating_a_fresh_database_at_once_apply_each_migration_once",
    )
    .await
    else {
        return;
    };
    // Four "replicas" start together on an empty database; sqlx's advisory lock serialises
    // their migrators.
    let opened = futures::future::join_all((0..4).map(|_| authd::store::open(&db.url))).await;
    for store in opened {
        store.unwrap().ping().await.unwrap();
    }
    let migrations = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/postgres"))
        .unwrap()
        .count();
    let mut conn = connect(&db.url).await;
    let (applied,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM _sqlx_migrations WHERE success")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(applied, i64::try_from(migrations).unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_password_change_racing_rotation_batches_ends_every_session_without_deadlock() {
    let Some(db) = pg::TestDatabase::create(
        "postgres_password_change_racing_rotation_batches_ends_every_session_without_deadlock",
    )
    .await
    else {
        return;
    };
    // A batch of rotations locks the families it touches in id order, and so must a password
    // change, which locks all of its user's families: taken in different orders, the two
    // deadlock, and PostgreSQL fails one after `deadlock_timeout` (retried, but a second late).
    let store = authd::store::open(&db.url).await.unwrap();
    let p = policy(MINUTE);
    let alice = add_user(store.as_ref(), "alice").await;
    for round in 0..8 {
        let mut tokens = Vec::new();
        for _ in 0..16 {
            tokens.push(login(store.as_ref(), &alice, at(round), &p).await.1);
        }
        let rotations = tokens.into_iter().map(|token| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let next = successor(at(round), &p);
                let rotation = store
                    .rotate_refresh(&token, &next, at(round), &p, &Origin::default())
                    .await
                    .unwrap();
                (next.token.hash, rotation)
            })
        });
        let change = {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let hash = "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2g";
                store.change_password(&name("alice"), hash, at(round)).await
            })
        };
        let rotations = futures::future::join_all(rotations).await;
        change.await.unwrap().unwrap();
        // Whichever came first, no session outlives the change: a successor issued before it
        // belongs to a family it revoked.
        for rotation in rotations {
            match rotation.unwrap() {
                (next, Rotation::Rotated { .. }) => assert_eq!(
                    rejected(&outcome(store.as_ref(), &next, at(round), &p).await),
                    Some(Rejection::FamilyRevoked)
                ),
                (_, Rotation::Rejected(Rejection::FamilyRevoked)) => {}
                (_, other) => panic!("{other:?}"),
            }
        }
    }
    let mut conn = connect(&db.url).await;
    // Statistics reach the view within a second of the transaction that counted them.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let deadlocks: i64 = sqlx::query_scalar(
        "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(deadlocks, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_serialization_failures_are_retried_and_rotation_stays_exclusive() {
    let Some(db) = pg::TestDatabase::create(
        "postgres_serialization_failures_are_retried_and_rotation_stays_exclusive",
    )
    .await
    else {
        return;
    };
    // Under SERIALIZABLE (CockroachDB's only level) concurrent rotations of one token make
    // PostgreSQL abort all but one with SQLSTATE 40001; the store must retry them, and the
    // retries must see the token used.
    let mut conn = connect(&db.url).await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "ALTER DATABASE {} SET default_transaction_isolation TO 'serializable'",
        db.url.rsplit('/').next().unwrap()
    )))
    .execute(&mut conn)
    .await
    .unwrap();
    drop(conn);
    let store = authd::store::open(&db.url).await.unwrap();
    concurrent_rotations_of_one_token_have_exactly_one_winner(Backend {
        store,
        url: db.url.clone(),
        _sqlite: None,
        _postgres: None,
    })
    .await;
}

// --- logout, sessions, API keys (issue 7)

async fn revoke_family_of_any_token_ends_the_session(b: Backend) {
    let s = b.store.as_ref();
    let p = policy(MINUTE);
    let alice = add_user(s, "alice").await;
    let (family, first) = login(s, &alice, at(0), &p).await;
    let second = rotate(s, &first, at(1), &p).await;
    let found = s.inspect_refresh(&second).await.unwrap().unwrap();
    assert!(is_live(&found.state, at(2)));
    assert_eq!(found.issued_at, at(1));
    assert!(!is_live(
        &s.inspect_refresh(&first).await.unwrap().unwrap().state,
        at(2)
    ));
    // The old, rotated token names the session too.
    assert_eq!(
        s.revoke_family_of(&first, at(2)).await.unwrap(),
        Some(family.clone())
    );
    assert_eq!(
        s.revoke_family_of(&first, at(3)).await.unwrap(),
        Some(family)
    );
    assert_eq!(
        s.revoke_family_of(&random_hash(), at(3)).await.unwrap(),
        None
    );
    assert!(!is_live(
        &s.inspect_refresh(&second).await.unwrap().unwrap().state,
        at(3)
    ));
    assert_eq!(
        rejected(&outcome(s, &second, at(3), &p).await),
        Some(Rejection::FamilyRevoked)
    );
    assert!(s.inspect_refresh(&random_hash()).await.unwrap().is_none());
}

async fn logout_racing_rotation_leaves_no_live_token(b: Backend) {
    let p = policy(Duration::ZERO);
    let alice = add_user(b.store.as_ref(), "alice").await;
    for round in 0..20 {
        let (_, first) = login(b.store.as_ref(), &alice, at(round), &p).await;
        let succ = successor(at(round + 1), &p);
        let next = succ.token.hash;
        let (s1, s2) = (Arc::clone(&b.store), Arc::clone(&b.store));
        let rotation = tokio::spawn(async move {
            s1.rotate_refresh(&first, &succ, at(round + 1), &p, &Origin::default())
                .await
                .unwrap()
        });
        let logout =
            tokio::spawn(async move { s2.revoke_family_of(&first, at(round + 1)).await.unwrap() });
        let (rotation, logout) = (rotation.await.unwrap(), logout.await.unwrap());
        assert!(logout.is_some());
        match rotation {
            Rotation::Rotated { .. } => {
                let state = b.store.inspect_refresh(&next).await.unwrap().unwrap().state;
                assert!(!is_live(&state, at(round + 1)), "round {round}");
            }
            Rotation::Rejected(Rejection::FamilyRevoked) => {
                assert!(b.store.inspect_refresh(&next).await.unwrap().is_none());
            }
            other => panic!("round {round}: {other:?}"),
        }
    }
}

async fn revoked_access_tokens_are_remembered_until_expiry(b: Backend) {
    let s = b.store.as_ref();
    assert!(!s.is_access_token_revoked("jti-1").await.unwrap());
    s.revoke_access_token("jti-1", at(15), at(0)).await.unwrap();
    s.revoke_access_token("jti-1", at(15), at(1)).await.unwrap();
    assert!(s.is_access_token_revoked("jti-1").await.unwrap());
    // The next revocation after its expiry purges it (lazily).
    s.revoke_access_token("jti-2", at(30), at(15))
        .await
        .unwrap();
    assert!(!s.is_access_token_revoked("jti-1").await.unwrap());
    assert!(s.is_access_token_revoked("jti-2").await.unwrap());
}

async fn sessions_are_listed_with_their_origin_and_revoked(b: Backend) {
    let s = b.store.as_ref();
    let p = policy(MINUTE);
    let alice = add_user(s, "alice").await;
    let bob = add_user(s, "bob").await;
    let (older, first) = login(s, &alice, at(0), &p).await;
    let (newer, _) = login(s, &alice, at(1), &p).await;
    let (bobs, _) = login(s, &bob, at(1), &p).await;
    rotate(s, &first, at(2), &p).await;
    let listed = s.list_sessions(&name("alice"), at(3)).await.unwrap();
    let ids: Vec<_> = listed.iter().map(|x| x.id.clone()).collect();
    assert_eq!(ids, vec![newer.clone(), older.clone()], "newest first");
    assert_eq!(listed[1].last_used_at, Some(at(2)));
    assert_eq!(listed[0].last_used_at, None);
    assert_eq!(listed[0].origin.source_addr.as_deref(), Some("192.0.2.7"));
    assert_eq!(listed[0].origin.user_agent.as_deref(), Some("test-agent/1"));
    assert_eq!(listed[0].user.id, alice.id);
    // Idle-expired sessions are not listed (idle timeout: one day).
    assert_eq!(
        s.list_sessions(&name("alice"), at(1441))
            .await
            .unwrap()
            .len(),
        1
    );

    assert_eq!(
        s.find_session(&older).await.unwrap().unwrap().created_at,
        at(0)
    );
    assert!(
        s.find_session(&FamilyId::generate())
            .await
            .unwrap()
            .is_none()
    );
    s.revoke_family(&older, at(3)).await.unwrap();
    assert_eq!(
        s.list_sessions(&name("alice"), at(3)).await.unwrap().len(),
        1
    );
    let (user, count) = s.revoke_sessions_of(&name("alice"), at(4)).await.unwrap();
    assert_eq!((user.id, count), (alice.id, 1));
    assert!(
        s.list_sessions(&name("alice"), at(4))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        s.list_sessions(&name("bob"), at(4)).await.unwrap()[0].id,
        bobs
    );
    assert!(matches!(
        s.list_sessions(&name("nobody"), at(4)).await,
        Err(StoreError::UserNotFound)
    ));
    assert!(matches!(
        s.revoke_sessions_of(&name("nobody"), at(4)).await,
        Err(StoreError::UserNotFound)
    ));
}

async fn api_keys_round_trip_without_their_secret(b: Backend) {
    let s = b.store.as_ref();
    let alice = add_user(s, "alice").await;
    let secret = ApiKeySecret::generate().unwrap();
    let key = ApiKey {
        id: secret.id().clone(),
        user_id: alice.id.clone(),
        name: "ci".into(),
        roles: vec![Role::parse("ops").unwrap()],
        created_at: at(0),
        expires_at: Some(at(60)),
        last_used_at: None,
        revoked_at: None,
    };
    s.create_api_key(&key, &secret.hash()).await.unwrap();
    let found = s.find_api_key(secret.id()).await.unwrap().unwrap();
    assert_eq!(found.key, key);
    assert_eq!(found.owner.id, alice.id);
    assert!(found.secret_hash.matches(&secret.hash()));
    s.touch_api_key(secret.id(), at(5)).await.unwrap();
    let listed = s.list_api_keys(Some(&name("alice"))).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].key.last_used_at, Some(at(5)));
    assert_eq!(listed[0].username, name("alice"));
    assert_eq!(s.list_api_keys(None).await.unwrap().len(), 1);
    assert!(matches!(
        s.list_api_keys(Some(&name("nobody"))).await,
        Err(StoreError::UserNotFound)
    ));
    assert!(s.revoke_api_key(secret.id(), at(6)).await.unwrap());
    assert!(s.revoke_api_key(secret.id(), at(7)).await.unwrap());
    let revoked = s.find_api_key(secret.id()).await.unwrap().unwrap();
    assert_eq!(
        revoked.key.revoked_at,
        Some(at(6)),
        "the first revocation stands"
    );
    let other = ApiKeySecret::generate().unwrap();
    assert!(!s.revoke_api_key(other.id(), at(7)).await.unwrap());
    assert!(s.find_api_key(other.id()).await.unwrap().is_none());
    // A key of an unknown user is refused.
    let orphan = ApiKey {
        id: other.id().clone(),
        user_id: UserId::generate(),
        ..key
    };
    assert!(matches!(
        s.create_api_key(&orphan, &other.hash()).await,
        Err(StoreError::UserNotFound)
    ));
    // Keys go with their user.
    s.delete_user(&name("alice")).await.unwrap();
    assert!(s.find_api_key(secret.id()).await.unwrap().is_none());
}

// --- login throttling and audit trail

/// Two free failures, then 1 s doubling up to 4 minutes; counters forgotten after an hour;
/// locked at 4 failures.
fn throttle() -> ThrottlePolicy {
    ThrottlePolicy {
        free_failures: 2,
        max_delay: 4 * MINUTE,
        forget_after: 60 * MINUTE,
        max_failures: 4,
    }
}

async fn charge(s: &dyn Store, username: &str, minutes: u64) -> Charge {
    s.charge_login_attempt(&name(username), &throttle(), at(minutes))
        .await
        .unwrap()
}

fn charged(failures: u32, minutes: u64) -> Charge {
    Charge::Charged(FailureCount {
        consecutive_failures: failures,
        last_failure_at: at(minutes),
    })
}

async fn login_attempts_are_charged_under_the_policy(b: Backend) {
    let s = b.store.as_ref();
    let carol = name("carol");
    assert_eq!(s.login_failures(&carol).await.unwrap(), None);
    // The first attempt creates the counter; the free failures cost no delay.
    assert_eq!(charge(s, "carol", 1).await, charged(1, 1));
    assert_eq!(charge(s, "carol", 1).await, charged(2, 1));
    assert_eq!(
        s.login_failures(&carol).await.unwrap(),
        Some(FailureCount {
            consecutive_failures: 2,
            last_failure_at: at(1)
        })
    );
    // Then a delay: an attempt inside it is refused and changes nothing.
    assert_eq!(
        charge(s, "carol", 1).await,
        Charge::Throttled {
            retry_after_secs: 1
        }
    );
    assert_eq!(
        s.login_failures(&carol)
            .await
            .unwrap()
            .map(|c| c.consecutive_failures),
        Some(2)
    );
    assert_eq!(charge(s, "carol", 2).await, charged(3, 2));
    // A counter whose last failure is older than `forget_after` starts again at 1.
    assert_eq!(charge(s, "carol", 70).await, charged(1, 70));
    // At `max_failures` the name locks: nothing more is charged, however long the wait.
    for (minute, failures) in [(71, 2), (72, 3), (73, 4)] {
        assert_eq!(charge(s, "carol", minute).await, charged(failures, minute));
    }
    assert_eq!(charge(s, "carol", 74).await, Charge::Locked);
    assert_eq!(charge(s, "carol", 10_000).await, Charge::Locked);
    assert_eq!(s.locked_usernames(4).await.unwrap(), ["carol"]);
    assert!(s.locked_usernames(5).await.unwrap().is_empty());
    assert_eq!(
        s.login_failures(&carol).await.unwrap(),
        Some(FailureCount {
            consecutive_failures: 4,
            last_failure_at: at(73)
        })
    );
    assert!(s.clear_login_failures(&carol).await.unwrap());
    assert_eq!(charge(s, "carol", 10_001).await, charged(1, 10_001));
    // Counters are per name, whether or not such a user exists.
    assert_eq!(s.login_failures(&name("dave")).await.unwrap(), None);
}

/// Twelve attempts on `who` at once: how many got through, and the counter they left.
async fn simultaneous_attempts(
    store: &Arc<dyn Store>,
    policy: ThrottlePolicy,
    who: &'static str,
) -> (u32, Option<u32>) {
    let attempts: Vec<_> = (0..12)
        .map(|_| {
            let s = Arc::clone(store);
            tokio::spawn(async move {
                s.charge_login_attempt(&name(who), &policy, at(1))
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut through = 0;
    for attempt in attempts {
        through += u32::from(matches!(attempt.await.unwrap(), Charge::Charged(_)));
    }
    let stored = store.login_failures(&name(who)).await.unwrap();
    (through, stored.map(|c| c.consecutive_failures))
}

/// Simultaneous attempts on one name are charged one after another: exactly as many get
/// through as the policy lets through, and none is refused for losing a race.
async fn concurrent_attempts_on_one_counter_are_charged_one_by_one(b: Backend) {
    let lenient = ThrottlePolicy {
        free_failures: 100,
        max_failures: 100,
        ..throttle()
    };
    assert_eq!(
        simultaneous_attempts(&b.store, lenient, "carol").await,
        (12, Some(12))
    );
    assert_eq!(
        simultaneous_attempts(&b.store, throttle(), "dave").await,
        (2, Some(2))
    );
}

async fn login_failure_counters_are_cleared_and_purged(b: Backend) {
    let s = b.store.as_ref();
    for (n, minute) in [("a1", 1), ("a2", 2), ("a3", 3), ("b1", 50)] {
        assert_eq!(charge(s, n, minute).await, charged(1, minute));
    }
    // a2 is locked (at 3 failures, say), whatever its age.
    for minute in [2, 3] {
        assert!(matches!(charge(s, "a2", minute).await, Charge::Charged(_)));
    }
    assert!(s.clear_login_failures(&name("a3")).await.unwrap());
    assert!(!s.clear_login_failures(&name("a3")).await.unwrap());
    // Bounded batches: at most `limit` rows per call, only those older than `before`, and
    // never a locked one.
    assert_eq!(s.purge_login_failures(at(10), 3, 1).await.unwrap(), 1);
    assert_eq!(s.purge_login_failures(at(10), 3, 100).await.unwrap(), 0);
    assert!(s.login_failures(&name("a2")).await.unwrap().is_some());
    assert!(s.login_failures(&name("b1")).await.unwrap().is_some());
    // Unlocked by a higher limit, it goes too.
    assert_eq!(s.purge_login_failures(at(10), 4, 100).await.unwrap(), 1);
    assert_eq!(s.login_failures(&name("a2")).await.unwrap(), None);
}

async fn audit_events_are_stored_listed_and_purged(b: Backend) {
    use authd::domain::{AuditEvent, AuditKind};
    let s = b.store.as_ref();
    let alice = add_user(s, "alice").await;
    let events = [
        AuditEvent::new(AuditKind::LoginFailed, at(1)).username("alice"),
        AuditEvent::new(AuditKind::LoginSucceeded, at(2))
            .user(&alice)
            .source(Some("127.0.0.1".into()))
            .request_id("req-1")
            .detail("family=f"),
        AuditEvent::new(AuditKind::UserCreated, at(3)).username("bob"),
        AuditEvent::new(AuditKind::KeyRotated, at(40)),
    ];
    for e in &events {
        s.insert_audit_event(e).await.unwrap();
    }
    let all = s.audit_events(None, 100).await.unwrap();
    assert_eq!(all.len(), 4);
    assert_eq!(all, events.to_vec(), "oldest first, every field kept");
    let newest_two = s.audit_events(None, 2).await.unwrap();
    assert_eq!(newest_two, events[2..].to_vec());
    let of_alice = s.audit_events(Some("alice"), 100).await.unwrap();
    assert_eq!(of_alice, events[..2].to_vec());
    assert_eq!(s.purge_audit_events(at(10), 2).await.unwrap(), 2);
    assert_eq!(s.purge_audit_events(at(10), 2).await.unwrap(), 1);
    assert_eq!(
        s.audit_events(None, 100).await.unwrap(),
        events[3..].to_vec()
    );
}

async fn rotations_store_their_audit_events_in_the_same_transaction(b: Backend) {
    let s = b.store.as_ref();
    let p = policy(MINUTE);
    let alice = add_user(s, "alice").await;
    let (family, first) = login(s, &alice, at(0), &p).await;
    let origin = Origin {
        source: Some("198.51.100.4".into()),
        request_id: Some("req-42".into()),
    };
    let rotate_from = |presented: TokenHash| {
        let origin = origin.clone();
        async move {
            s.rotate_refresh(&presented, &successor(at(1), &p), at(1), &p, &origin)
                .await
                .unwrap()
        }
    };
    let kinds = || async {
        s.audit_events(Some("alice"), 100)
            .await
            .unwrap()
            .into_iter()
            .map(|e| {
                assert_eq!(e.source, origin.source);
                assert_eq!(e.request_id, origin.request_id);
                assert_eq!(e.user_id.as_deref(), Some(alice.id.as_str()));
                assert!(e.detail.unwrap().starts_with(&format!("family={family}")));
                e.kind.as_str()
            })
            .collect::<Vec<_>>()
    };
    // A refusal names no user and records nothing.
    assert!(rejected(&rotate_from(random_hash()).await).is_some());
    assert!(kinds().await.is_empty());
    // A rotation, then a retry within the grace window: one event each.
    assert!(matches!(rotate_from(first).await, Rotation::Rotated { .. }));
    assert!(matches!(
        rotate_from(first).await,
        Rotation::Replayed { .. }
    ));
    assert_eq!(kinds().await, ["token_refreshed", "token_refreshed"]);
    // Past the window, presenting it again is reuse: two more, in order.
    let late = at(10);
    let r = s
        .rotate_refresh(&first, &successor(late, &p), late, &p, &origin)
        .await
        .unwrap();
    assert!(matches!(r, Rotation::ReuseDetected { .. }));
    assert_eq!(
        kinds().await,
        [
            "token_refreshed",
            "token_refreshed",
            "refresh_reuse_detected",
            "family_revoked"
        ]
    );
}

async fn a_session_starts_with_its_login_event_and_clears_the_failure_counter(b: Backend) {
    use authd::domain::{AuditEvent, AuditKind};
    let s = b.store.as_ref();
    let p = policy(MINUTE);
    let alice = add_user(s, "alice").await;
    let logins = || async {
        s.audit_events(Some("alice"), 100)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.kind.as_str())
            .collect::<Vec<_>>()
    };
    // The login's attempt was charged before its password was checked.
    assert_eq!(charge(s, "alice", 1).await, charged(1, 1));
    let family = NewFamily {
        id: FamilyId::generate(),
        user: alice.clone(),
        created_at: at(2),
        expires_at: at(2).saturating_add(p.max_lifetime),
        origin: SessionOrigin::default(),
    };
    let succeeded = [AuditEvent::new(AuditKind::LoginSucceeded, at(2))
        .username("alice")
        .user(&alice)];
    s.start_family(&family, &token(at(2), &p), &succeeded)
        .await
        .unwrap();
    assert_eq!(s.login_failures(&name("alice")).await.unwrap(), None);
    assert_eq!(logins().await, ["login_succeeded"]);
    assert_eq!(
        s.list_sessions(&name("alice"), at(3)).await.unwrap().len(),
        1
    );

    // All or nothing: a session that cannot be stored (its id is taken) clears no counter and
    // records no login.
    assert_eq!(charge(s, "alice", 3).await, charged(1, 3));
    assert!(
        s.start_family(&family, &token(at(4), &p), &succeeded)
            .await
            .is_err()
    );
    assert!(s.login_failures(&name("alice")).await.unwrap().is_some());
    assert_eq!(logins().await, ["login_succeeded"]);
}
