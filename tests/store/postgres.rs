//! PostgreSQL only: TLS, concurrent migrators, lock order against rotation batches, and
//! retried serialization failures.

use super::*;

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
    crate::rotation::concurrent_rotations_of_one_token_have_exactly_one_winner(Backend {
        store,
        url: db.url.clone(),
        _sqlite: None,
        _postgres: None,
    })
    .await;
}
