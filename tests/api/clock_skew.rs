//! Issue 16 item 5: replicas' clocks differ a little. An access token minted by a replica
//! whose clock runs ahead carries `iat`/`nbf` in the other replicas' future; within
//! `clock_skew` (default 30 s) their Logout and Introspect take it as valid.

use std::sync::Arc;
use std::time::Duration;

use authd::domain::{Clock, ManualClock, SystemClock};

use crate::helpers::{PASSWORD, TestApp, spawn_on, spawn_on_with_clock, test_config};

/// Two servers on one database: `here` on the system clock, `ahead` 20 s in its future.
async fn replicas(clock_skew: Duration) -> (TestApp, TestApp) {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let mut config = test_config(&dir);
    config.clock_skew = clock_skew;
    let here = spawn_on(Arc::clone(&dir), config.clone()).await;
    let ahead = ManualClock::new(SystemClock.now().saturating_add(Duration::from_secs(20)));
    let ahead = spawn_on_with_clock(dir, config, Arc::new(ahead)).await;
    here.add_user("alice", &[]).await;
    (here, ahead)
}

/// Whether `at` reports `token` active, asked with `here`'s introspection credential (one
/// database: the two servers share it).
async fn active_at(at: &TestApp, here: &TestApp, token: &str) -> bool {
    let authorization = here.introspector_authorization().await;
    at.introspect_as(token, Some(authorization))
        .await
        .unwrap()
        .active
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_from_a_replica_running_ahead_is_active_within_clock_skew() {
    let (here, ahead) = replicas(Duration::from_secs(30)).await;
    let tokens = ahead.login("alice", PASSWORD).await.unwrap();
    assert!(here.is_active(&tokens.access_token).await);
    // And Logout of it here ends its session.
    here.logout("", &tokens.access_token).await.unwrap();
    assert!(!here.is_active(&tokens.access_token).await);
    assert!(!active_at(&ahead, &here, &tokens.access_token).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beyond_clock_skew_such_a_token_is_not_valid_yet() {
    let (here, ahead) = replicas(Duration::from_secs(5)).await;
    let tokens = ahead.login("alice", PASSWORD).await.unwrap();
    assert!(!here.is_active(&tokens.access_token).await);
    assert!(active_at(&ahead, &here, &tokens.access_token).await);
}

#[tokio::test]
async fn clock_skew_over_five_minutes_is_a_configuration_error() {
    let mut config = authd::config::Config {
        clock_skew: Duration::from_secs(301),
        ..authd::config::Config::default()
    };
    let e = config.validate().unwrap_err().to_string();
    assert!(e.contains("clock_skew must be at most 5m"), "{e}");
    config.clock_skew = Duration::from_secs(300);
    config.validate().unwrap();
}
