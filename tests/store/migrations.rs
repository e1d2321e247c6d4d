//! Migrations: idempotent on every backend, one numbered sequence in both dialects.

use super::*;

conformance!(migrations_are_idempotent,);

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

// --- 0010: live sessions move to the compact form (issue 24)

/// The migrations up to and including `last` of `dir` (`migrations/sqlite` or `…/postgres`):
/// a database as an earlier version of authd left it.
async fn migrator_up_to(dir: &str, last: i64) -> sqlx::migrate::Migrator {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut migrator = sqlx::migrate::Migrator::new(path.as_path()).await.unwrap();
    migrator.migrations = migrator
        .migrations
        .iter()
        .filter(|m| m.version <= last)
        .cloned()
        .collect::<Vec<_>>()
        .into();
    migrator
}

/// Three sessions of alice as version 0008 stored them: A rotated once at minute 1 (its first
/// token used, the second newest, sealed for a retry), B rotated twice, C never.
struct OldSessions {
    a: [TokenHash; 2],
    b: [TokenHash; 3],
    c: TokenHash,
}

/// Writes [`OldSessions`] into the 0008 schema over `$pool` (a SQLite or PostgreSQL pool).
macro_rules! write_old_sessions {
    ($pool:expr) => {{
        let pool = $pool;
        let alice = UserId::generate();
        sqlx::query(
            "INSERT INTO users (id, username, password_hash, roles, enabled, created_at, updated_at) \
             VALUES ($1, 'alice', 'x', '', TRUE, $2, $2)",
        )
        .bind(alice.as_str())
        .bind(at(0).unix_millis())
        .execute(pool)
        .await
        .unwrap();
        let sessions = OldSessions {
            a: [random_hash(), random_hash()],
            b: [random_hash(), random_hash(), random_hash()],
            c: random_hash(),
        };
        let chains: [(&str, &[TokenHash]); 3] = [
            ("0000000a-0000-4000-8000-000000000000", &sessions.a),
            ("0000000b-0000-4000-8000-000000000000", &sessions.b),
            ("0000000c-0000-4000-8000-000000000000", std::slice::from_ref(&sessions.c)),
        ];
        for (family, chain) in chains {
            sqlx::query(
                "INSERT INTO refresh_families \
                     (id, user_id, created_at, expires_at, source_addr, user_agent) \
                 VALUES ($1, $2, $3, $4, '192.0.2.7', 'old-agent/1')",
            )
            .bind(family)
            .bind(alice.as_str())
            .bind(at(0).unix_millis())
            .bind(at(0).saturating_add(30 * DAY).unix_millis())
            .execute(pool)
            .await
            .unwrap();
            for (i, hash) in chain.iter().enumerate() {
                let minute = u64::try_from(i).unwrap();
                let next = chain.get(i + 1);
                // Token i was issued at minute i, and used at minute i + 1 if it has a successor.
                sqlx::query(
                    "INSERT INTO refresh_tokens (hash, family_id, issued_at, expires_at, used_at, \
                         successor_hash, sealed_by_predecessor) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(&hash.0[..])
                .bind(family)
                .bind(at(minute).unix_millis())
                .bind(at(minute).saturating_add(DAY).unix_millis())
                .bind(next.map(|_| at(minute + 1).unix_millis()))
                .bind(next.map(|n| n.0.to_vec()))
                .bind((i > 0).then(|| vec![0xA0 + u8::try_from(i).unwrap(); 60]))
                .execute(pool)
                .await
                .unwrap();
            }
        }
        sessions
    }};
}

/// What must hold once a database holding [`OldSessions`] is migrated: every session is
/// listed and refreshes, a retry within the grace window gets the same sealed successor, and
/// a used token is still reuse.
async fn old_sessions_work_after_migrating(store: &dyn Store, old: OldSessions) {
    let p = policy(MINUTE);
    let listed = store.list_sessions(&name("alice"), at(2)).await.unwrap();
    assert_eq!(listed.len(), 3);
    let last_used: HashSet<_> = listed.iter().map(|s| s.last_used_at).collect();
    assert_eq!(last_used, HashSet::from([Some(at(1)), Some(at(2)), None]));
    assert!(
        listed
            .iter()
            .all(|s| s.origin.user_agent.as_deref() == Some("old-agent/1"))
    );

    // A: the immediately previous token within the grace window gets the same successor…
    let soon = at(1).saturating_add(Duration::from_secs(30));
    match outcome(store, &old.a[0], soon, &p).await {
        Rotation::Replayed {
            sealed_successor, ..
        } => assert_eq!(sealed_successor, vec![0xA1; 60]),
        other => panic!("expected the grace retry, got {other:?}"),
    }
    // …the newest token refreshes…
    let a2 = rotate(store, &old.a[1], soon, &p).await;
    // …and the first one, two behind now, is reuse: the family is revoked.
    assert!(matches!(
        outcome(store, &old.a[0], soon, &p).await,
        Rotation::ReuseDetected { .. }
    ));
    assert_eq!(
        rejected(&outcome(store, &a2, soon, &p).await),
        Some(Rejection::FamilyRevoked)
    );

    // B: a token used before the migration and outside the grace window is reuse.
    let later = at(10);
    assert!(matches!(
        outcome(store, &old.b[0], later, &p).await,
        Rotation::ReuseDetected { .. }
    ));
    assert_eq!(
        rejected(&outcome(store, &old.b[2], later, &p).await),
        Some(Rejection::FamilyRevoked)
    );

    // C: never refreshed; it refreshes, twice, and stays the one live session.
    let c = rotate(store, &old.c, later, &p).await;
    rotate(store, &c, later, &p).await;
    let listed = store.list_sessions(&name("alice"), later).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].last_used_at, Some(later));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_sessions_survive_the_compact_migration_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    let url = format!("sqlite://{}", path.display());
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(&path)
        .create_if_missing(true);
    let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
    migrator_up_to("migrations/sqlite", 8)
        .await
        .run(&pool)
        .await
        .unwrap();
    let old = write_old_sessions!(&pool);
    pool.close().await;

    let store = authd::store::open(&url).await.unwrap();
    old_sessions_work_after_migrating(store.as_ref(), old).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_sessions_survive_the_compact_migration_on_postgres() {
    let Some(db) = pg::TestDatabase::create("live_sessions_survive_the_compact_migration").await
    else {
        return;
    };
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    migrator_up_to("migrations/postgres", 8)
        .await
        .run(&pool)
        .await
        .unwrap();
    let old = write_old_sessions!(&pool);
    pool.close().await;

    let store = authd::store::open(&db.url).await.unwrap();
    old_sessions_work_after_migrating(store.as_ref(), old).await;
}
