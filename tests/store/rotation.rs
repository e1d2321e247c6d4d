//! Refresh rotation: the rules of `decide` applied atomically, under concurrency and at close.

use super::*;

conformance!(
    refresh_token_rotates_once,
    unknown_token_is_rejected,
    grace_replay_returns_the_sealed_successor,
    reuse_after_rotation_revokes_the_family,
    idle_and_lifetime_expiry_refuse,
    concurrent_rotations_of_one_token_have_exactly_one_winner,
    concurrent_rotations_of_many_sessions_are_each_applied_once,
    closing_answers_every_queued_rotation_truthfully,
);

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

pub(crate) async fn concurrent_rotations_of_one_token_have_exactly_one_winner(b: Backend) {
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
