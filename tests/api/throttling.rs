//! Login throttling per username, shared through the database: delays after repeated
//! failures, identical answers for existing and unknown names, reset on success, across a
//! restart, `unlock`, and the purge of forgotten counters.

use std::sync::Arc;
use std::time::Duration;

use authd::config::Config;
use authd::domain::{ManualClock, Timestamp};
use tonic::Code;

use crate::helpers::{PASSWORD, TestApp, spawn_on_with_clock, test_config};

const WRONG: &str = "not the password at all";

/// A server with a clock the test moves, and `free` failures before delays start.
async fn spawn_throttled(free: u32) -> (TestApp, ManualClock) {
    spawn_throttled_with(|c| c.throttle_free_failures = free).await
}

/// A server with a clock the test moves and the test configuration changed by `tweak`.
async fn spawn_throttled_with(tweak: impl FnOnce(&mut Config)) -> (TestApp, ManualClock) {
    let clock = ManualClock::new(Timestamp::from_unix_millis(1_800_000_000_000));
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let mut config = test_config(&dir);
    tweak(&mut config);
    let app = spawn_on_with_clock(dir, config, Arc::new(clock.clone())).await;
    (app, clock)
}

/// Code, message, details and metadata of a refusal, minus the HTTP `date` header (set by
/// the HTTP layer from the wall clock, it says nothing about the request).
fn fingerprint(status: &tonic::Status) -> (Code, String, Vec<u8>, Vec<(String, String)>) {
    let mut metadata: Vec<(String, String)> = status
        .metadata()
        .clone()
        .into_headers()
        .iter()
        .filter(|(k, _)| k.as_str() != "date")
        .map(|(k, v)| (k.to_string(), String::from_utf8_lossy(v.as_bytes()).into()))
        .collect();
    metadata.sort();
    (
        status.code(),
        status.message().to_owned(),
        status.details().to_vec(),
        metadata,
    )
}

/// The same refused login for the existing `alice` and the unknown `mallory`: asserts the
/// answers are byte-identical and returns their code.
async fn refused_alike(app: &TestApp, password: &str) -> Code {
    let known = app.login("alice", password).await.unwrap_err();
    let unknown = app.login("mallory", password).await.unwrap_err();
    assert_eq!(fingerprint(&known), fingerprint(&unknown), "{known:?}");
    known.code()
}

fn retry_after(status: &tonic::Status) -> u64 {
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    status
        .metadata()
        .get("retry-after")
        .expect("retry-after metadata")
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn throttling_starts_after_the_free_failures_doubles_and_resets_on_success() {
    let (app, clock) = spawn_throttled(3).await;
    app.add_user("alice", &[]).await;
    for _ in 0..3 {
        let status = app.login("alice", WRONG).await.unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated);
    }
    // Now even the right password is refused without being checked.
    let status = app.login("alice", PASSWORD).await.unwrap_err();
    assert_eq!(retry_after(&status), 1);
    assert_eq!(status.message(), "too many failed attempts; retry later");
    // Refused attempts do not count: still 1 s after the third failure.
    clock.advance(Duration::from_secs(1));
    assert_eq!(
        app.login("alice", WRONG).await.unwrap_err().code(),
        Code::Unauthenticated
    );
    // Fourth failure: the delay doubles.
    assert_eq!(
        retry_after(&app.login("alice", PASSWORD).await.unwrap_err()),
        2
    );
    clock.advance(Duration::from_millis(1500));
    assert_eq!(
        retry_after(&app.login("alice", PASSWORD).await.unwrap_err()),
        1
    );
    clock.advance(Duration::from_millis(500));
    app.login("alice", PASSWORD).await.unwrap();
    // The success reset the counter: three free failures again.
    for _ in 0..3 {
        assert_eq!(
            app.login("alice", WRONG).await.unwrap_err().code(),
            Code::Unauthenticated
        );
    }
    assert_eq!(
        retry_after(&app.login("alice", WRONG).await.unwrap_err()),
        1
    );
}

#[tokio::test]
async fn the_delay_is_capped_at_throttle_max_delay() {
    let (app, clock) = spawn_throttled_with(|c| {
        c.throttle_free_failures = 0;
        c.throttle_max_delay = Duration::from_secs(5);
    })
    .await;
    let mut seen = Vec::new();
    for _ in 0..6 {
        app.login("bob", WRONG).await.unwrap_err();
        let wait = retry_after(&app.login("bob", WRONG).await.unwrap_err());
        seen.push(wait);
        clock.advance(Duration::from_secs(wait));
    }
    assert_eq!(seen, [2, 4, 5, 5, 5, 5]);
}

#[tokio::test]
async fn unknown_and_existing_usernames_get_byte_identical_answers_at_every_step() {
    let (app, clock) = spawn_throttled(2).await;
    app.add_user("alice", &[]).await;
    // The same script against an existing and an unknown name, one step at a time.
    let steps: &[(Duration, &str)] = &[
        (Duration::ZERO, WRONG),             // failure 1
        (Duration::ZERO, WRONG),             // failure 2
        (Duration::ZERO, WRONG),             // throttled, retry after 1 s
        (Duration::from_millis(400), WRONG), // still throttled
        (Duration::from_millis(600), WRONG), // failure 3
        (Duration::ZERO, PASSWORD),          // throttled, retry after 2 s
        (Duration::from_secs(1), WRONG),     // throttled, retry after 1 s
        (Duration::from_secs(1), WRONG),     // failure 4
        (Duration::ZERO, WRONG),             // throttled, retry after 4 s
    ];
    let mut codes = Vec::new();
    for (advance, password) in steps {
        clock.advance(*advance);
        codes.push(refused_alike(&app, password).await);
    }
    assert_eq!(
        codes,
        [
            Code::Unauthenticated,
            Code::Unauthenticated,
            Code::ResourceExhausted,
            Code::ResourceExhausted,
            Code::Unauthenticated,
            Code::ResourceExhausted,
            Code::ResourceExhausted,
            Code::Unauthenticated,
            Code::ResourceExhausted,
        ]
    );
}

#[tokio::test]
async fn throttling_holds_across_a_restart() {
    let (app, clock) = spawn_throttled(2).await;
    app.add_user("alice", &[]).await;
    app.login("alice", WRONG).await.unwrap_err();
    app.login("alice", WRONG).await.unwrap_err();
    let (dir, config) = app.stop().await;

    let app = spawn_on_with_clock(dir, config, Arc::new(clock.clone())).await;
    assert_eq!(
        retry_after(&app.login("alice", PASSWORD).await.unwrap_err()),
        1
    );
    clock.advance(Duration::from_secs(1));
    app.login("alice", PASSWORD).await.unwrap();
}

#[tokio::test]
async fn unlock_clears_the_counter() {
    let (app, _clock) = spawn_throttled(1).await;
    app.add_user("alice", &[]).await;
    app.login("alice", WRONG).await.unwrap_err();
    retry_after(&app.login("alice", PASSWORD).await.unwrap_err());
    assert!(app.admin().await.unlock("ALICE").await.unwrap());
    app.login("alice", PASSWORD).await.unwrap();
    assert!(!app.admin().await.unlock("alice").await.unwrap());
}

#[tokio::test]
async fn counters_are_forgotten_and_purged_so_sprayed_names_do_not_accumulate() {
    let (app, clock) = spawn_throttled(5).await;
    for i in 0..25 {
        app.login(&format!("spray-{i}"), WRONG).await.unwrap_err();
    }
    let rows = || async {
        let pool = sqlx::SqlitePool::connect(&app.config.database_url)
            .await
            .unwrap();
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM login_throttle")
            .fetch_one(&pool)
            .await
            .unwrap();
        n
    };
    assert_eq!(rows().await, 25);
    // Nothing is forgotten yet.
    let purged = app.service.purge_expired(Duration::from_secs(3600)).await;
    assert_eq!(purged.unwrap().login_counters, 0);
    clock.advance(app.config.throttle_forget_after);
    let purged = app.service.purge_expired(Duration::from_secs(3600)).await;
    assert_eq!(purged.unwrap().login_counters, 25);
    assert_eq!(rows().await, 0);
}

/// The clock stands still while `n` logins with `password` on alice run at once: the codes.
async fn at_once(app: &TestApp, n: usize, password: &str) -> Vec<Code> {
    let attempts = (0..n).map(|_| app.login("alice", password));
    let results = futures::future::join_all(attempts).await;
    results
        .into_iter()
        .map(|r| r.err().map_or(Code::Ok, |e| e.code()))
        .collect()
}

fn count(codes: &[Code], code: Code) -> usize {
    codes.iter().filter(|c| **c == code).count()
}

#[tokio::test]
async fn concurrent_guesses_cannot_slip_past_the_throttle() {
    let (app, _clock) = spawn_throttled_with(|c| {
        c.throttle_free_failures = 100;
        c.throttle_max_failures = 4;
    })
    .await;
    app.add_user("alice", &[]).await;
    // Failures plus attempts in flight never pass the hard stop: however many guesses run
    // together, four passwords are checked; the rest are refused unchecked (retry soon while
    // the four are in flight, locked once they have failed).
    let codes = at_once(&app, 20, WRONG).await;
    assert_eq!(count(&codes, Code::Unauthenticated), 4, "{codes:?}");
    let refused = count(&codes, Code::ResourceExhausted) + count(&codes, Code::FailedPrecondition);
    assert_eq!(refused, 16, "{codes:?}");
    assert_eq!(
        app.login("alice", PASSWORD).await.unwrap_err().code(),
        Code::FailedPrecondition
    );
}

/// Issue 16: attempts in flight are not failures. With the default policy (5 free failures),
/// sixteen right passwords at once all succeed.
#[tokio::test]
async fn sixteen_parallel_right_passwords_all_succeed() {
    let (app, _clock) = spawn_throttled_with(|_| {}).await;
    assert_eq!(app.config.throttle_free_failures, 5);
    app.add_user("alice", &[]).await;
    let codes = at_once(&app, 16, PASSWORD).await;
    assert_eq!(count(&codes, Code::Ok), 16, "{codes:?}");
}

/// Issue 16: sixteen wrong passwords at once are sixteen failures, each counted (parallel
/// guesses cannot share one count). Free failures are many here so that no delay starts
/// while they run: the order in which they finish must not matter to the count.
#[tokio::test]
async fn sixteen_parallel_wrong_passwords_count_sixteen_failures() {
    let (app, _clock) = spawn_throttled(100).await;
    app.add_user("alice", &[]).await;
    let codes = at_once(&app, 16, WRONG).await;
    assert_eq!(count(&codes, Code::Unauthenticated), 16, "{codes:?}");
    let admin = app.admin().await;
    assert_eq!(admin.locked(16).await.unwrap(), ["alice"], "16 failures");
    assert!(admin.locked(17).await.unwrap().is_empty());
}

#[tokio::test]
async fn simultaneous_logins_of_one_account_all_succeed() {
    // Each attempt is charged before its password is checked, so all 24 can be in the counter
    // at once: with that many free failures, none may be refused for arriving together.
    let (app, _clock) = spawn_throttled(24).await;
    app.add_user("alice", &[]).await;
    let logins = (0..24).map(|_| app.login("alice", PASSWORD));
    let results = futures::future::join_all(logins).await;
    let refused: Vec<Code> = results
        .iter()
        .filter_map(|r| r.as_ref().err().map(tonic::Status::code))
        .collect();
    assert!(refused.is_empty(), "{refused:?}");
    app.login("alice", PASSWORD).await.unwrap();
}

#[tokio::test]
async fn a_name_locks_after_max_failures_until_unlocked_whatever_the_wait() {
    let (app, clock) = spawn_throttled_with(|c| {
        c.throttle_free_failures = 100;
        c.throttle_max_failures = 4;
    })
    .await;
    app.add_user("alice", &[]).await;
    // The same script for an existing and an unknown name: four failures, then locked, with
    // byte-identical answers.
    let mut codes = Vec::new();
    for password in [WRONG, WRONG, WRONG, WRONG, PASSWORD] {
        codes.push(refused_alike(&app, password).await);
    }
    assert_eq!(
        codes,
        [
            Code::Unauthenticated,
            Code::Unauthenticated,
            Code::Unauthenticated,
            Code::Unauthenticated,
            Code::FailedPrecondition,
        ]
    );
    let locked = app.login("alice", PASSWORD).await.unwrap_err();
    assert_eq!(
        locked.message(),
        "too many failed attempts; locked until an administrator unlocks it"
    );
    assert!(locked.metadata().get("retry-after").is_none());
    // The failure that locked it says so in the audit trail (alice's events, oldest first).
    let failures: Vec<String> = app
        .admin()
        .await
        .audit_tail(Some("alice"), 100)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == authd::domain::AuditKind::LoginFailed)
        .filter_map(|e| e.detail)
        .collect();
    assert_eq!(failures.len(), 4);
    assert!(
        failures[2].ends_with("consecutive_failures=3"),
        "{failures:?}"
    );
    assert!(
        failures[3].ends_with("consecutive_failures=4; locked"),
        "{failures:?}"
    );
    // Neither waiting past `throttle_forget_after` nor housekeeping ends the lock.
    clock.advance(app.config.throttle_forget_after * 2);
    let purged = app.service.purge_expired(Duration::from_secs(3600)).await;
    assert_eq!(purged.unwrap().login_counters, 0);
    assert_eq!(
        app.login("alice", PASSWORD).await.unwrap_err().code(),
        Code::FailedPrecondition
    );
    // An administrator does.
    assert!(app.admin().await.unlock("alice").await.unwrap());
    app.login("alice", PASSWORD).await.unwrap();
}
