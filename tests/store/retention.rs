//! Retention: what each kind of expired row is, and the batching loop.

use authd::domain::{AuditEvent, AuditKind, AuditRetention};
use authd::service::housekeeping::{
    drop_expired_sealed_copies, purge_ended_sessions, purge_expired_records,
};
use authd::store::{Expired, Purged, purge_all};

use super::*;

conformance!(
    purge_deletes_only_what_cannot_be_used,
    purge_works_in_batches,
    expired_access_token_revocations_are_purged,
    purge_all_repeats_batches_until_one_is_short,
    audit_events_are_kept_per_event_class,
    sealed_copies_go_once_the_grace_window_has_passed,
);

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
    let purged = purge_ended_sessions(s, now, 1000).await.unwrap();
    assert_eq!(
        purged,
        Purged {
            refresh_tokens: 2,
            families: 2,
            ..Purged::default()
        }
    );
    // A second run (or another replica at the same time) finds nothing more.
    assert_eq!(
        purge_ended_sessions(s, now, 1000).await.unwrap(),
        Purged::default()
    );

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
        purge_ended_sessions(b.store.as_ref(), at(2), 4),
        purge_ended_sessions(b.store.as_ref(), at(2), 4)
    );
    let (x, y) = (x.unwrap(), y.unwrap());
    assert_eq!(
        purge_ended_sessions(b.store.as_ref(), at(2), 4)
            .await
            .unwrap(),
        Purged::default()
    );
    assert_eq!(x.refresh_tokens + y.refresh_tokens, 25);
    assert_eq!(x.families + y.families, 25);
    let (_, fresh) = login(b.store.as_ref(), &alice, at(3), &p).await;
    rotate(b.store.as_ref(), &fresh, at(4), &p).await;
}

async fn expired_access_token_revocations_are_purged(b: Backend) {
    let s = b.store.as_ref();
    s.revoke_access_token("jti-1", at(15)).await.unwrap();
    s.revoke_access_token("jti-2", at(30)).await.unwrap();
    // Nothing has expired yet.
    let purged = purge_ended_sessions(s, at(14), 1000).await.unwrap();
    assert_eq!(purged.revoked_access_tokens, 0);
    // At its `exp` a token is no longer accepted anywhere: its revocation may go.
    let purged = purge_ended_sessions(s, at(15), 1000).await.unwrap();
    assert_eq!(purged.revoked_access_tokens, 1);
    assert!(!s.is_access_token_revoked("jti-1").await.unwrap());
    assert!(s.is_access_token_revoked("jti-2").await.unwrap());
}

async fn purge_all_repeats_batches_until_one_is_short(b: Backend) {
    let s = b.store.as_ref();
    for n in 0..7 {
        s.revoke_access_token(&format!("jti-{n}"), at(1))
            .await
            .unwrap();
    }
    let expired = Expired::RevokedAccessTokens { now: at(1) };
    // One batch deletes at most its size; the loop goes on until a batch comes back short.
    assert_eq!(s.purge_batch(expired, 3).await.unwrap(), 3);
    assert_eq!(purge_all(s, expired, 2).await.unwrap(), 4);
    assert_eq!(purge_all(s, expired, 2).await.unwrap(), 0);
}

async fn audit_events_are_kept_per_event_class(b: Backend) {
    let s = b.store.as_ref();
    for (kind, minute) in [
        (AuditKind::TokenRefreshed, 0),
        (AuditKind::TokenRefreshed, 9),
        (AuditKind::LoginFailed, 0),
        (AuditKind::UserCreated, 0),
        (AuditKind::UserCreated, 9),
    ] {
        s.insert_audit_event(&AuditEvent::new(kind, at(minute)))
            .await
            .unwrap();
    }
    // Kept 5 minutes by default; refreshes 2 minutes; failed logins a day.
    let retention =
        AuditRetention::parse(5 * MINUTE, "token_refreshed=2m, login_failed=1d").unwrap();
    let purged = purge_expired_records(s, at(10), &throttle(), &retention, 1000)
        .await
        .unwrap();
    assert_eq!(purged.audit_events, 2);
    let kept: Vec<(AuditKind, Timestamp)> = s
        .audit_events(None, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.kind, e.time))
        .collect();
    assert_eq!(
        kept,
        vec![
            (AuditKind::TokenRefreshed, at(9)),
            (AuditKind::LoginFailed, at(0)),
            (AuditKind::UserCreated, at(9)),
        ]
    );
    // One retention for every class: the single statement over all of them.
    let purged = purge_expired_records(s, at(10), &throttle(), &(MINUTE / 2).into(), 1000)
        .await
        .unwrap();
    assert_eq!(purged.audit_events, 3);
}

async fn sealed_copies_go_once_the_grace_window_has_passed(b: Backend) {
    let s = b.store.as_ref();
    let p = policy(MINUTE);
    let alice = add_user(s, "alice").await;
    let (_, first) = login(s, &alice, at(0), &p).await;
    let second = rotate(s, &first, at(1), &p).await;
    // Within the window the copy is needed: nothing goes.
    assert_eq!(
        drop_expired_sealed_copies(s, at(2), MINUTE, 1000)
            .await
            .unwrap(),
        0
    );
    assert!(matches!(
        outcome(s, &first, at(2), &p).await,
        Rotation::Replayed { .. }
    ));
    // Past it, the copy goes, and the old token is reuse.
    assert_eq!(
        drop_expired_sealed_copies(s, at(3), MINUTE, 1000)
            .await
            .unwrap(),
        1
    );
    assert!(matches!(
        outcome(s, &first, at(3), &p).await,
        Rotation::ReuseDetected { .. }
    ));
    assert_eq!(
        rejected(&outcome(s, &second, at(3), &p).await),
        Some(Rejection::FamilyRevoked)
    );
}
