//! Issue 16 item 2 (the part the benchmark line measures): a Logout of a token that exists
//! nowhere reads and answers; it never waits for SQLite's write lock, which the rotation
//! writer (every refresh) needs.

use authd::crypto::refresh_token::RefreshToken;
use authd::domain::{Clock, SystemClock};

use crate::helpers::{PASSWORD, spawn_app};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_of_an_unknown_token_does_not_wait_for_the_write_lock() {
    let app = spawn_app().await;
    app.add_user("alice", &[]).await;
    let session = app.login("alice", PASSWORD).await.unwrap();
    // Another connection holds the write lock (as a long write would).
    let pool = sqlx::SqlitePool::connect(&app.config.database_url)
        .await
        .unwrap();
    let mut writer = pool.acquire().await.unwrap();
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut *writer)
        .await
        .unwrap();
    let never_issued = RefreshToken::generate(SystemClock.now()).unwrap().expose();
    // Before: BEGIN IMMEDIATE waited out the 5 s busy timeout, then failed UNAVAILABLE.
    app.logout(&never_issued, "").await.unwrap();
    app.logout("not a token at all", "").await.unwrap();
    sqlx::query("ROLLBACK").execute(&mut *writer).await.unwrap();
    drop(writer);
    // A real session is still ended by Logout.
    app.logout(&session.refresh_token, "").await.unwrap();
    assert!(app.refresh(&session.refresh_token).await.is_err());
}
