use std::time::Duration;

use crate::helpers::{PASSWORD, spawn_app_with};

async fn count(pool: &sqlx::SqlitePool, table: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}")))
        .fetch_one(pool)
        .await
        .unwrap()
}

/// The rows of `table` once they number `expected`, or after 10 s, whichever comes first.
async fn count_once_it_is(pool: &sqlx::SqlitePool, table: &str, expected: i64) -> i64 {
    let mut rows = count(pool, table).await;
    for _ in 0..200 {
        if rows == expected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        rows = count(pool, table).await;
    }
    rows
}

#[tokio::test]
async fn housekeeping_deletes_ended_sessions_while_serving_and_stops_with_the_server() {
    let app = spawn_app_with(|c| c.purge_interval = Duration::from_millis(50)).await;
    app.add_user("alice", &[]).await;
    app.add_user("bob", &[]).await;
    app.login("alice", PASSWORD).await.unwrap();
    let bob = app.login("bob", PASSWORD).await.unwrap();
    app.refresh(&bob.refresh_token).await.unwrap();
    // Disabling alice ends her session: the job may delete it.
    app.admin().await.set_enabled("alice", false).await.unwrap();

    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", app.db_path().display()))
        .await
        .unwrap();
    assert_eq!(
        count_once_it_is(&pool, "refresh_families", 1).await,
        1,
        "only bob's live session remains"
    );
    // What reuse detection needs of Bob's used token is kept, next to his newest one.
    assert_eq!(count(&pool, "refresh_tokens").await, 1);
    assert_eq!(count(&pool, "used_refresh_tokens").await, 1);
    // The job stops on the server's shutdown signal (stop() waits for the server task).
    app.stop().await;
}

#[tokio::test]
async fn housekeeping_purges_audit_events_past_their_retention_while_serving() {
    let app = spawn_app_with(|c| {
        c.maintenance_interval = Duration::from_millis(50);
        c.audit_retention = Duration::from_millis(1);
    })
    .await;
    app.add_user("alice", &[]).await;
    // The login is answered after its audit event is written: there is one to purge.
    app.login("alice", PASSWORD).await.unwrap();

    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", app.db_path().display()))
        .await
        .unwrap();
    assert_eq!(
        count_once_it_is(&pool, "audit_events", 0).await,
        0,
        "every audit event is older than the retention"
    );
    app.stop().await;
}
