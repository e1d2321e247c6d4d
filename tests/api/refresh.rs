use std::collections::HashSet;
use std::time::Duration;

use futures::future::join_all;
use tonic::Code;

use crate::helpers::{PASSWORD, TestApp, assert_unauthenticated, spawn_app, spawn_app_with};

const BAD_REFRESH: &str = "invalid refresh token";

async fn app_with_grace(grace: Duration) -> TestApp {
    let app = spawn_app_with(|c| c.refresh_reuse_grace = grace).await;
    app.add_user("alice", &["reader"]).await;
    app
}

#[tokio::test]
async fn refresh_rotates_and_the_successor_works() {
    let app = spawn_app().await;
    app.add_user("alice", &["reader"]).await;
    let first = app.login("alice", PASSWORD).await.unwrap();
    let second = app.refresh(&first.refresh_token).await.unwrap();
    assert_ne!(second.refresh_token, first.refresh_token);
    let (_, claims) = app.verify(&second.access_token);
    assert_eq!(claims.preferred_username.as_deref(), Some("alice"));
    assert_eq!(claims.roles, vec!["reader"]);
    let third = app.refresh(&second.refresh_token).await.unwrap();
    assert_ne!(third.refresh_token, second.refresh_token);
}

#[tokio::test]
async fn reused_refresh_token_revokes_family() {
    let app = app_with_grace(Duration::ZERO).await;
    let first = app.login("alice", PASSWORD).await.unwrap();
    let second = app.refresh(&first.refresh_token).await.unwrap();
    let third = app.refresh(&second.refresh_token).await.unwrap();

    // Replaying an already-rotated token is reuse...
    assert_unauthenticated(app.refresh(&first.refresh_token).await, BAD_REFRESH);
    // ...which revokes every token of the family, including the newest.
    assert_unauthenticated(app.refresh(&third.refresh_token).await, BAD_REFRESH);
    // Other families are untouched.
    let other = app.login("alice", PASSWORD).await.unwrap();
    app.refresh(&other.refresh_token).await.unwrap();
}

#[tokio::test]
async fn previous_token_within_grace_returns_the_same_successor() {
    let app = app_with_grace(Duration::from_secs(30)).await;
    let first = app.login("alice", PASSWORD).await.unwrap();
    let second = app.refresh(&first.refresh_token).await.unwrap();
    // The client lost the response and retries with the same token.
    let retry = app.refresh(&first.refresh_token).await.unwrap();
    assert_eq!(
        retry.refresh_token, second.refresh_token,
        "same successor, never a new branch"
    );
    assert_ne!(
        app.verify(&retry.access_token).1.jti,
        app.verify(&second.access_token).1.jti
    );
    // The chain goes on from that one successor.
    let third = app.refresh(&second.refresh_token).await.unwrap();
    app.refresh(&third.refresh_token).await.unwrap();
}

#[tokio::test]
async fn grandparent_replay_within_grace_is_reuse() {
    let app = app_with_grace(Duration::from_secs(30)).await;
    let first = app.login("alice", PASSWORD).await.unwrap();
    let second = app.refresh(&first.refresh_token).await.unwrap();
    let third = app.refresh(&second.refresh_token).await.unwrap();
    // `first` is two rotations back: only the immediately previous token gets grace.
    assert_unauthenticated(app.refresh(&first.refresh_token).await, BAD_REFRESH);
    assert_unauthenticated(app.refresh(&third.refresh_token).await, BAD_REFRESH);
}

#[tokio::test]
async fn previous_token_after_grace_is_reuse() {
    let app = app_with_grace(Duration::from_millis(300)).await;
    let first = app.login("alice", PASSWORD).await.unwrap();
    let second = app.refresh(&first.refresh_token).await.unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_unauthenticated(app.refresh(&first.refresh_token).await, BAD_REFRESH);
    assert_unauthenticated(app.refresh(&second.refresh_token).await, BAD_REFRESH);
}

async fn race(app: &TestApp, token: &str, n: usize) -> Vec<Result<String, Code>> {
    join_all((0..n).map(|_| async {
        app.refresh(token)
            .await
            .map(|r| r.refresh_token)
            .map_err(|s| s.code())
    }))
    .await
}

#[tokio::test]
async fn concurrent_refresh_with_zero_grace_has_exactly_one_winner() {
    let app = app_with_grace(Duration::ZERO).await;
    for round in 0..50 {
        let tokens = app.login("alice", PASSWORD).await.unwrap();
        let results = race(&app, &tokens.refresh_token, 16).await;
        let winners: Vec<&String> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
        assert_eq!(winners.len(), 1, "round {round}: {results:?}");
        assert!(
            results
                .iter()
                .filter_map(|r| r.as_ref().err())
                .all(|c| *c == Code::Unauthenticated),
            "round {round}: {results:?}"
        );
        // The losers' presentations were reuse: the winner's successor is revoked too.
        assert_unauthenticated(app.refresh(winners[0]).await, BAD_REFRESH);
    }
}

#[tokio::test]
async fn concurrent_refresh_within_grace_all_win_with_one_successor() {
    let app = app_with_grace(Duration::from_secs(30)).await;
    for round in 0..10 {
        let tokens = app.login("alice", PASSWORD).await.unwrap();
        let results = race(&app, &tokens.refresh_token, 16).await;
        let successors: HashSet<&String> = results
            .iter()
            .map(|r| r.as_ref().expect("every presentation wins"))
            .collect();
        assert_eq!(
            successors.len(),
            1,
            "round {round}: one chain, not {}",
            successors.len()
        );
        let successor = successors.into_iter().next().unwrap();
        app.refresh(successor).await.unwrap();
    }
}

#[tokio::test]
async fn idle_timeout_expires_an_unused_token() {
    let app = spawn_app_with(|c| c.refresh_token_ttl = Duration::from_secs(2)).await;
    app.add_user("alice", &[]).await;
    let fresh = app.login("alice", PASSWORD).await.unwrap();
    let used = app.refresh(&fresh.refresh_token).await.unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_unauthenticated(app.refresh(&used.refresh_token).await, BAD_REFRESH);
}

#[tokio::test]
async fn family_lifetime_is_absolute_even_when_active() {
    let app = spawn_app_with(|c| {
        c.refresh_token_ttl = Duration::from_secs(2);
        c.refresh_token_max_lifetime = Duration::from_secs(3);
    })
    .await;
    app.add_user("alice", &[]).await;
    let mut token = app.login("alice", PASSWORD).await.unwrap().refresh_token;
    tokio::time::sleep(Duration::from_millis(1600)).await;
    token = app.refresh(&token).await.unwrap().refresh_token;
    tokio::time::sleep(Duration::from_millis(1600)).await;
    // Used 1.6 s ago (inside the 2 s idle timeout) but the family is 3.2 s old.
    assert_unauthenticated(app.refresh(&token).await, BAD_REFRESH);
}

#[tokio::test]
async fn disabled_or_deleted_users_families_stop_working() {
    let app = spawn_app().await;
    app.add_user("alice", &[]).await;
    app.add_user("bob", &[]).await;
    let admin = app.admin().await;
    let alice = app.login("alice", PASSWORD).await.unwrap();
    let bob = app.login("bob", PASSWORD).await.unwrap();

    admin.set_enabled("alice", false).await.unwrap();
    assert_unauthenticated(app.refresh(&alice.refresh_token).await, BAD_REFRESH);
    // Re-enabling does not bring old sessions back.
    admin.set_enabled("alice", true).await.unwrap();
    assert_unauthenticated(app.refresh(&alice.refresh_token).await, BAD_REFRESH);

    admin.delete("bob").await.unwrap();
    assert_unauthenticated(app.refresh(&bob.refresh_token).await, BAD_REFRESH);
    // A new user with the old name is a different user and does not inherit anything.
    app.add_user("bob", &[]).await;
    assert_unauthenticated(app.refresh(&bob.refresh_token).await, BAD_REFRESH);
}

#[tokio::test]
async fn changing_a_password_revokes_the_users_families() {
    let app = spawn_app().await;
    app.add_user("alice", &[]).await;
    let before = app.login("alice", PASSWORD).await.unwrap();
    let new_password = "a completely new passphrase";
    app.admin()
        .await
        .set_password("alice", new_password)
        .await
        .unwrap();
    assert_unauthenticated(app.refresh(&before.refresh_token).await, BAD_REFRESH);
    assert_unauthenticated(
        app.login("alice", PASSWORD).await,
        "invalid username or password",
    );
    let after = app.login("alice", new_password).await.unwrap();
    app.refresh(&after.refresh_token).await.unwrap();
}

#[tokio::test]
async fn unknown_malformed_and_empty_tokens() {
    let app = spawn_app().await;
    assert_unauthenticated(app.refresh("not-a-token").await, BAD_REFRESH);
    assert_unauthenticated(app.refresh(&"A".repeat(43)).await, BAD_REFRESH);
    assert_unauthenticated(app.refresh(&"x".repeat(5000)).await, BAD_REFRESH);
    let status = app.refresh("").await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn storage_failure_is_unavailable_never_success() {
    let app = spawn_app().await;
    app.add_user("alice", &[]).await;
    let tokens = app.login("alice", PASSWORD).await.unwrap();
    // Break the database under the running server.
    let pool = sqlx::SqlitePool::connect(&app.config.database_url)
        .await
        .unwrap();
    sqlx::query("ALTER TABLE refresh_tokens RENAME TO broken")
        .execute(&pool)
        .await
        .unwrap();

    let status = app.refresh(&tokens.refresh_token).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
    assert_eq!(status.message(), "service temporarily unavailable");
    let status = app.login("alice", PASSWORD).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);

    // Repaired, the same token still works: the failed call changed nothing.
    sqlx::query("ALTER TABLE broken RENAME TO refresh_tokens")
        .execute(&pool)
        .await
        .unwrap();
    app.refresh(&tokens.refresh_token).await.unwrap();
}

#[tokio::test]
async fn a_token_of_the_earlier_form_still_refreshes_after_an_upgrade() {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    let app = spawn_app().await;
    app.add_user("alice", &["reader"]).await;
    let issued = app.login("alice", PASSWORD).await.unwrap();
    // Tokens are 54 characters now: 8 bytes of issue time, then the 256-bit secret.
    assert_eq!(issued.refresh_token.len(), 54);

    // Turn the session's only token into one issued before the time-ordered form: 32 random
    // bytes (43 characters), stored under their full SHA-256.
    let secret = [42u8; 32];
    let legacy = URL_SAFE_NO_PAD.encode(secret);
    let key = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &secret);
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", app.db_path().display()))
        .await
        .unwrap();
    let changed = sqlx::query("UPDATE refresh_tokens SET hash = ?")
        .bind(key.as_ref())
        .execute(&pool)
        .await
        .unwrap()
        .rows_affected();
    assert_eq!(changed, 1);
    pool.close().await;

    // The old token is rotated into one of the new form, which works in turn…
    let next = app.refresh(&legacy).await.unwrap();
    assert_eq!(next.refresh_token.len(), 54);
    let (_, claims) = app.verify(&next.access_token);
    assert_eq!(claims.preferred_username.as_deref(), Some("alice"));
    app.refresh(&next.refresh_token).await.unwrap();
    // …and the old token, now used, is reuse: refused.
    assert_unauthenticated(app.refresh(&legacy).await, BAD_REFRESH);
}
