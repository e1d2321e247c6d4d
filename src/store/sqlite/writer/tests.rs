//! The rotation writer's own tests: batches applied directly on a connection, the
//! checkpointer, and closing.

use std::time::Duration;

use super::*;
use crate::domain::{
    NewFamily, NewToken, Origin, RefreshPolicy, SessionOrigin, Successor, User, UserId, Username,
};
use crate::store::sqlite::SqliteStore;
use crate::store::{AuditStore, NewUser, SessionStore, Store, UserStore};

const T0: Timestamp = Timestamp::from_unix_millis(1_800_000_000_000);

fn policy(grace: Duration) -> RefreshPolicy {
    RefreshPolicy {
        idle_ttl: Duration::from_secs(3600),
        max_lifetime: Duration::from_secs(86_400),
        reuse_grace: grace,
    }
}

fn token(n: u8) -> NewToken {
    NewToken {
        hash: TokenHash([n; 32]),
        issued_at: T0,
        expires_at: T0.saturating_add(Duration::from_secs(3600)),
    }
}

fn job(presented: u8, successor: u8, grace: Duration) -> RotationJob {
    RotationJob {
        presented: TokenHash([presented; 32]),
        successor: Successor {
            token: token(successor),
            sealed: vec![successor; 60],
        },
        now: T0,
        policy: policy(grace),
        origin: Origin::default(),
    }
}

fn connection(dir: &tempfile::TempDir) -> Connection {
    open(&dir.path().join("t.db"), WRITER_CACHE_SIZE).unwrap()
}

/// A store with one user and one family whose first token is `token(1)`.
async fn store_with_family() -> (SqliteStore, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    let store = SqliteStore::open(&url).await.unwrap();
    let user = User {
        id: UserId::generate(),
        username: Username::parse("alice").unwrap(),
        roles: vec![],
        enabled: true,
        created_at: T0,
    };
    store
        .create_user(&NewUser {
            user: user.clone(),
            password_hash: "unused".into(),
        })
        .await
        .unwrap();
    let family = NewFamily {
        id: FamilyId::generate(),
        user,
        created_at: T0,
        expires_at: T0.saturating_add(Duration::from_secs(86_400)),
        origin: SessionOrigin::default(),
    };
    store.start_family(&family, &token(1), &[]).await.unwrap();
    (store, dir)
}

#[tokio::test]
async fn one_token_twice_in_one_batch_has_one_winner_and_the_second_is_reuse() {
    let (_store, dir) = store_with_family().await;
    let jobs = [job(1, 2, Duration::ZERO), job(1, 3, Duration::ZERO)];
    let outcomes = rotate_batch(&mut connection(&dir), &jobs).unwrap();
    assert!(matches!(outcomes[0], Ok(Rotation::Rotated { .. })));
    assert!(matches!(outcomes[1], Ok(Rotation::ReuseDetected { .. })));
    // Reuse revoked the family, including the winner's successor.
    let after = rotate_batch(&mut connection(&dir), &[job(2, 4, Duration::ZERO)]).unwrap();
    assert!(matches!(
        after[0],
        Ok(Rotation::Rejected(Rejection::FamilyRevoked))
    ));
}

#[tokio::test]
async fn one_token_twice_in_one_batch_within_grace_returns_the_first_successor() {
    let (_store, dir) = store_with_family().await;
    let grace = Duration::from_secs(10);
    let jobs = [job(1, 2, grace), job(1, 3, grace)];
    let outcomes = rotate_batch(&mut connection(&dir), &jobs).unwrap();
    assert!(matches!(outcomes[0], Ok(Rotation::Rotated { .. })));
    match &outcomes[1] {
        Ok(Rotation::Replayed {
            sealed_successor, ..
        }) => assert_eq!(sealed_successor, &vec![2; 60]),
        other => panic!("expected the first successor back, got {other:?}"),
    }
    // The second presentation stored nothing: its would-be successor does not exist.
    let stray = rotate_batch(&mut connection(&dir), &[job(3, 5, grace)]).unwrap();
    assert!(matches!(
        stray[0],
        Ok(Rotation::Rejected(Rejection::Unknown))
    ));
}

#[tokio::test]
async fn a_chain_rotates_through_the_writer_and_concurrent_presentations_have_one_winner() {
    let (store, _dir) = store_with_family().await;
    let grace = Duration::ZERO;
    let rotate = |presented: u8, successor: u8| {
        let job = job(presented, successor, grace);
        let store = store.clone();
        async move {
            store
                .rotate_refresh(
                    &job.presented,
                    &job.successor,
                    job.now,
                    &job.policy,
                    &job.origin,
                )
                .await
        }
    };
    for n in 1..10u8 {
        let rotation = rotate(n, n + 1).await.unwrap();
        assert!(
            matches!(rotation, Rotation::Rotated { .. }),
            "{n}: {rotation:?}"
        );
    }
    // Sixteen callers present the newest token at once (queued together, so most likely
    // in one batch): exactly one rotates it.
    let concurrent = futures::future::join_all((0..16).map(|_| rotate(10, 11))).await;
    let winners = concurrent
        .iter()
        .filter(|r| matches!(r, Ok(Rotation::Rotated { .. })))
        .count();
    assert_eq!(winners, 1, "{concurrent:?}");
}

async fn add_family(store: &SqliteStore, first: u8) {
    let user = store
        .find_user(&Username::parse("alice").unwrap())
        .await
        .unwrap()
        .unwrap();
    let family = NewFamily {
        id: FamilyId::generate(),
        user,
        created_at: T0,
        expires_at: T0.saturating_add(Duration::from_secs(86_400)),
        origin: SessionOrigin::default(),
    };
    store
        .start_family(&family, &token(first), &[])
        .await
        .unwrap();
}

#[tokio::test]
async fn one_batch_rotates_many_families_and_records_one_event_each() {
    let (store, dir) = store_with_family().await;
    for first in [11, 21, 31] {
        add_family(&store, first).await;
    }
    // Four families, one unknown token in between: one round, every outcome in order.
    let jobs = [
        job(1, 2, Duration::ZERO),
        job(11, 12, Duration::ZERO),
        job(99, 100, Duration::ZERO),
        job(21, 22, Duration::ZERO),
        job(31, 32, Duration::ZERO),
    ];
    let outcomes = rotate_batch(&mut connection(&dir), &jobs).unwrap();
    let rotated = |i: usize| matches!(outcomes[i], Ok(Rotation::Rotated { .. }));
    assert!(
        rotated(0) && rotated(1) && rotated(3) && rotated(4),
        "{outcomes:?}"
    );
    assert!(matches!(
        outcomes[2],
        Ok(Rotation::Rejected(Rejection::Unknown))
    ));
    let events = store.audit_events(None, 100).await.unwrap();
    assert_eq!(events.len(), 4, "{events:?}");
    // Every successor was stored and rotates in turn; the presented tokens are used.
    let next = [job(2, 3, Duration::ZERO), job(12, 13, Duration::ZERO)];
    let outcomes = rotate_batch(&mut connection(&dir), &next).unwrap();
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o, Ok(Rotation::Rotated { .. })))
    );
}

#[tokio::test]
async fn two_tokens_of_one_family_in_one_batch_see_each_others_writes() {
    let (store, dir) = store_with_family().await;
    rotate_batch(&mut connection(&dir), &[job(1, 2, Duration::ZERO)]).unwrap();
    // The old token is replayed (reuse: the family is revoked), then the newest token is
    // presented in the same batch: it must see the revocation, as if it came later.
    let jobs = [job(1, 5, Duration::ZERO), job(2, 3, Duration::ZERO)];
    let outcomes = rotate_batch(&mut connection(&dir), &jobs).unwrap();
    assert!(matches!(outcomes[0], Ok(Rotation::ReuseDetected { .. })));
    assert!(matches!(
        outcomes[1],
        Ok(Rotation::Rejected(Rejection::FamilyRevoked))
    ));
    let kinds: Vec<_> = store
        .audit_events(None, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind.as_str())
        .collect();
    assert_eq!(
        kinds,
        [
            "token_refreshed",
            "refresh_reuse_detected",
            "family_revoked"
        ]
    );
}

#[tokio::test]
async fn the_checkpointer_copies_the_wal_into_the_database() {
    let (store, dir) = store_with_family().await;
    let database = dir.path().join("t.db");
    let size = || std::fs::metadata(&database).unwrap().len();
    let before = size();
    // Only the writer commits here, and far below its own checkpoint threshold: the
    // database file grows only if the checkpointer copies the WAL into it.
    let hash = |n: u32| TokenHash([n.to_le_bytes(); 8].concat().try_into().unwrap());
    let mut presented = TokenHash([1; 32]);
    for n in 0..=u32::try_from(CHECKPOINT_EVERY).unwrap() {
        let successor = Successor {
            token: NewToken {
                hash: hash(n),
                ..token(0)
            },
            sealed: vec![0; 60],
        };
        let rotation = store
            .rotate_refresh(
                &presented,
                &successor,
                T0,
                &policy(Duration::ZERO),
                &Origin::default(),
            )
            .await
            .unwrap();
        assert!(matches!(rotation, Rotation::Rotated { .. }), "{rotation:?}");
        presented = successor.token.hash;
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while size() <= before {
        assert!(
            Instant::now() < deadline,
            "the database file stayed at {} bytes",
            size()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn closing_the_store_folds_the_wal_into_the_database_and_stops_the_writer() {
    let (store, dir) = store_with_family().await;
    let job = job(1, 2, Duration::ZERO);
    let rotate = || {
        store.rotate_refresh(
            &job.presented,
            &job.successor,
            job.now,
            &job.policy,
            &job.origin,
        )
    };
    assert!(matches!(rotate().await, Ok(Rotation::Rotated { .. })));
    let wal = dir.path().join("t.db-wal");
    assert!(wal.exists());
    store.close().await;
    assert!(!wal.exists(), "the WAL outlived the last connection");
    assert!(matches!(rotate().await, Err(StoreError::Unavailable(_))));
    // Nothing was lost: a new store sees the rotation (the token is used now).
    let reopened = SqliteStore::open(&format!("sqlite://{}", dir.path().join("t.db").display()))
        .await
        .unwrap();
    let inspected = reopened
        .inspect_refresh(&job.presented)
        .await
        .unwrap()
        .unwrap();
    assert!(inspected.state.used_at.is_some());
}

#[tokio::test]
async fn a_failed_write_rolls_the_whole_batch_back() {
    let (store, dir) = store_with_family().await;
    add_family(&store, 11).await;
    add_family(&store, 12).await;
    // The second successor's key is already another family's newest token: its insert
    // fails, and with it the batch, so the first rotation is not applied either.
    let jobs = [job(1, 2, Duration::ZERO), job(11, 12, Duration::ZERO)];
    assert!(rotate_batch(&mut connection(&dir), &jobs).is_err());
    let again = rotate_batch(&mut connection(&dir), &[job(1, 2, Duration::ZERO)]).unwrap();
    assert!(
        matches!(again[0], Ok(Rotation::Rotated { .. })),
        "{again:?}"
    );
    assert_eq!(store.audit_events(None, 100).await.unwrap().len(), 1);
}
