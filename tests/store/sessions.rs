//! Sessions: revocation, logout, introspection, listings, revoked access tokens, and the
//! audit events written with a login or a rotation.

use super::*;

conformance!(
    revoke_family_is_idempotent,
    revoke_family_of_any_token_ends_the_session,
    logout_racing_rotation_leaves_no_live_token,
    revoked_access_tokens_are_remembered_until_expiry,
    sessions_are_listed_with_their_origin_and_revoked,
    rotations_store_their_audit_events_in_the_same_transaction,
    a_quiet_rotation_records_no_event_but_reuse_is_always_recorded,
    a_session_starts_with_its_login_event_and_clears_the_failure_counter,
    access_standing_sees_logout_ended_sessions_users_and_password_changes,
);

async fn revoke_family_is_idempotent(b: Backend) {
    let s = b.store.as_ref();
    let p = policy(MINUTE);
    let alice = add_user(s, "alice").await;
    let (family, first) = login(s, &alice, at(0), &p).await;
    let second = rotate(s, &first, at(1), &p).await;
    s.revoke_family(&family, at(1)).await.unwrap();
    s.revoke_family(&family, at(2)).await.unwrap();
    s.revoke_family(&FamilyId::generate(), at(2)).await.unwrap();
    // Not even the grace window survives a revocation.
    for t in [first, second] {
        assert_eq!(
            rejected(&outcome(s, &t, at(1), &p).await),
            Some(Rejection::FamilyRevoked)
        );
    }
}

async fn revoke_family_of_any_token_ends_the_session(b: Backend) {
    let s = b.store.as_ref();
    let p = policy(MINUTE);
    let alice = add_user(s, "alice").await;
    let (family, first) = login(s, &alice, at(0), &p).await;
    let second = rotate(s, &first, at(1), &p).await;
    let found = s.inspect_refresh(&second).await.unwrap().unwrap();
    assert!(is_live(&found.state, at(2)));
    assert_eq!(found.issued_at, at(1));
    assert!(!is_live(
        &s.inspect_refresh(&first).await.unwrap().unwrap().state,
        at(2)
    ));
    // The old, rotated token names the session too.
    assert_eq!(
        s.revoke_family_of(&first, at(2)).await.unwrap(),
        Some(family.clone())
    );
    assert_eq!(
        s.revoke_family_of(&first, at(3)).await.unwrap(),
        Some(family)
    );
    assert_eq!(
        s.revoke_family_of(&random_hash(), at(3)).await.unwrap(),
        None
    );
    assert!(!is_live(
        &s.inspect_refresh(&second).await.unwrap().unwrap().state,
        at(3)
    ));
    assert_eq!(
        rejected(&outcome(s, &second, at(3), &p).await),
        Some(Rejection::FamilyRevoked)
    );
    assert!(s.inspect_refresh(&random_hash()).await.unwrap().is_none());
}

async fn logout_racing_rotation_leaves_no_live_token(b: Backend) {
    let p = policy(Duration::ZERO);
    let alice = add_user(b.store.as_ref(), "alice").await;
    for round in 0..20 {
        let (_, first) = login(b.store.as_ref(), &alice, at(round), &p).await;
        let succ = successor(at(round + 1), &p);
        let next = succ.token.hash;
        let (s1, s2) = (Arc::clone(&b.store), Arc::clone(&b.store));
        let rotation = tokio::spawn(async move {
            s1.rotate_refresh(&first, &succ, at(round + 1), &p, &Origin::default())
                .await
                .unwrap()
        });
        let logout =
            tokio::spawn(async move { s2.revoke_family_of(&first, at(round + 1)).await.unwrap() });
        let (rotation, logout) = (rotation.await.unwrap(), logout.await.unwrap());
        assert!(logout.is_some());
        match rotation {
            Rotation::Rotated { .. } => {
                let state = b.store.inspect_refresh(&next).await.unwrap().unwrap().state;
                assert!(!is_live(&state, at(round + 1)), "round {round}");
            }
            Rotation::Rejected(Rejection::FamilyRevoked) => {
                assert!(b.store.inspect_refresh(&next).await.unwrap().is_none());
            }
            other => panic!("round {round}: {other:?}"),
        }
    }
}

async fn revoked_access_tokens_are_remembered_until_expiry(b: Backend) {
    let s = b.store.as_ref();
    assert!(!s.is_access_token_revoked("jti-1").await.unwrap());
    s.revoke_access_token("jti-1", at(15)).await.unwrap();
    // Idempotent.
    s.revoke_access_token("jti-1", at(15)).await.unwrap();
    assert!(s.is_access_token_revoked("jti-1").await.unwrap());
    assert!(!s.is_access_token_revoked("jti-2").await.unwrap());
    // Until the retention job deletes it after its expiry (`retention.rs`).
}

async fn sessions_are_listed_with_their_origin_and_revoked(b: Backend) {
    let s = b.store.as_ref();
    let p = policy(MINUTE);
    let alice = add_user(s, "alice").await;
    let bob = add_user(s, "bob").await;
    let (older, first) = login(s, &alice, at(0), &p).await;
    let (newer, _) = login(s, &alice, at(1), &p).await;
    let (bobs, _) = login(s, &bob, at(1), &p).await;
    rotate(s, &first, at(2), &p).await;
    let listed = s.list_sessions(&name("alice"), at(3)).await.unwrap();
    let ids: Vec<_> = listed.iter().map(|x| x.id.clone()).collect();
    assert_eq!(ids, vec![newer.clone(), older.clone()], "newest first");
    assert_eq!(listed[1].last_used_at, Some(at(2)));
    assert_eq!(listed[0].last_used_at, None);
    assert_eq!(listed[0].origin.source_addr.as_deref(), Some("192.0.2.7"));
    assert_eq!(listed[0].origin.user_agent.as_deref(), Some("test-agent/1"));
    assert_eq!(listed[0].user.id, alice.id);
    // Idle-expired sessions are not listed (idle timeout: one day).
    assert_eq!(
        s.list_sessions(&name("alice"), at(1441))
            .await
            .unwrap()
            .len(),
        1
    );

    assert_eq!(
        s.find_session(&older).await.unwrap().unwrap().created_at,
        at(0)
    );
    assert!(
        s.find_session(&FamilyId::generate())
            .await
            .unwrap()
            .is_none()
    );
    s.revoke_family(&older, at(3)).await.unwrap();
    assert_eq!(
        s.list_sessions(&name("alice"), at(3)).await.unwrap().len(),
        1
    );
    let (user, count) = s.revoke_sessions_of(&name("alice"), at(4)).await.unwrap();
    assert_eq!((user.id, count), (alice.id, 1));
    assert!(
        s.list_sessions(&name("alice"), at(4))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        s.list_sessions(&name("bob"), at(4)).await.unwrap()[0].id,
        bobs
    );
    assert!(matches!(
        s.list_sessions(&name("nobody"), at(4)).await,
        Err(StoreError::UserNotFound)
    ));
    assert!(matches!(
        s.revoke_sessions_of(&name("nobody"), at(4)).await,
        Err(StoreError::UserNotFound)
    ));
}

async fn rotations_store_their_audit_events_in_the_same_transaction(b: Backend) {
    let s = b.store.as_ref();
    let p = policy(MINUTE);
    let alice = add_user(s, "alice").await;
    let (family, first) = login(s, &alice, at(0), &p).await;
    let origin = Origin {
        source: Some("198.51.100.4".into()),
        request_id: Some("req-42".into()),
        quiet: false,
    };
    let rotate_from = |presented: TokenHash| {
        let origin = origin.clone();
        async move {
            s.rotate_refresh(&presented, &successor(at(1), &p), at(1), &p, &origin)
                .await
                .unwrap()
        }
    };
    let kinds = || async {
        s.audit_events(Some("alice"), 100)
            .await
            .unwrap()
            .into_iter()
            .map(|e| {
                assert_eq!(e.source, origin.source);
                assert_eq!(e.request_id, origin.request_id);
                assert_eq!(e.user_id.as_deref(), Some(alice.id.as_str()));
                assert!(e.detail.unwrap().starts_with(&format!("family={family}")));
                e.kind.as_str()
            })
            .collect::<Vec<_>>()
    };
    // A refusal names no user and records nothing.
    assert!(rejected(&rotate_from(random_hash()).await).is_some());
    assert!(kinds().await.is_empty());
    // A rotation, then a retry within the grace window: one event each.
    assert!(matches!(rotate_from(first).await, Rotation::Rotated { .. }));
    assert!(matches!(
        rotate_from(first).await,
        Rotation::Replayed { .. }
    ));
    assert_eq!(kinds().await, ["token_refreshed", "token_refreshed"]);
    // Past the window, presenting it again is reuse: two more, in order.
    let late = at(10);
    let r = s
        .rotate_refresh(&first, &successor(late, &p), late, &p, &origin)
        .await
        .unwrap();
    assert!(matches!(r, Rotation::ReuseDetected { .. }));
    assert_eq!(
        kinds().await,
        [
            "token_refreshed",
            "token_refreshed",
            "refresh_reuse_detected",
            "family_revoked"
        ]
    );
}

async fn a_session_starts_with_its_login_event_and_clears_the_failure_counter(b: Backend) {
    use authd::domain::{AuditEvent, AuditKind};
    let s = b.store.as_ref();
    let p = policy(MINUTE);
    let alice = add_user(s, "alice").await;
    let logins = || async {
        s.audit_events(Some("alice"), 100)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.kind.as_str())
            .collect::<Vec<_>>()
    };
    // The login's attempt was charged before its password was checked.
    assert_eq!(charge(s, "alice", 1).await, charged(1, 1));
    let family = NewFamily {
        id: FamilyId::generate(),
        user: alice.clone(),
        created_at: at(2),
        expires_at: at(2).saturating_add(p.max_lifetime),
        origin: SessionOrigin::default(),
    };
    let succeeded = [AuditEvent::new(AuditKind::LoginSucceeded, at(2))
        .username("alice")
        .user(&alice)];
    s.start_family(&family, &token(at(2), &p), &succeeded)
        .await
        .unwrap();
    assert_eq!(s.login_failures(&name("alice")).await.unwrap(), None);
    assert_eq!(logins().await, ["login_succeeded"]);
    assert_eq!(
        s.list_sessions(&name("alice"), at(3)).await.unwrap().len(),
        1
    );

    // All or nothing: a session that cannot be stored (its id is taken) clears no counter and
    // records no login.
    assert_eq!(charge(s, "alice", 3).await, charged(1, 3));
    assert!(
        s.start_family(&family, &token(at(4), &p), &succeeded)
            .await
            .is_err()
    );
    assert!(s.login_failures(&name("alice")).await.unwrap().is_some());
    assert_eq!(logins().await, ["login_succeeded"]);
}

async fn a_quiet_rotation_records_no_event_but_reuse_is_always_recorded(b: Backend) {
    let s = b.store.as_ref();
    let p = policy(Duration::ZERO);
    let alice = add_user(s, "alice").await;
    let (_, first) = login(s, &alice, at(0), &p).await;
    let quiet = Origin {
        quiet: true,
        ..Origin::default()
    };
    let r = s
        .rotate_refresh(&first, &successor(at(1), &p), at(1), &p, &quiet)
        .await
        .unwrap();
    assert!(matches!(r, Rotation::Rotated { .. }));
    let kinds = || async {
        s.audit_events(None, 100)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.kind.as_str())
            .collect::<Vec<_>>()
    };
    assert!(kinds().await.is_empty(), "a quiet rotation records nothing");
    let r = s
        .rotate_refresh(&first, &successor(at(2), &p), at(2), &p, &quiet)
        .await
        .unwrap();
    assert!(matches!(r, Rotation::ReuseDetected { .. }));
    assert_eq!(kinds().await, ["refresh_reuse_detected", "family_revoked"]);
}

/// Issue 16: what Introspect reads about an access token in one query — its `jti` logged out,
/// its session ended (revoke, logout of the refresh token, reuse), its user disabled, deleted,
/// or its password changed.
async fn access_standing_sees_logout_ended_sessions_users_and_password_changes(b: Backend) {
    let s = b.store.as_ref();
    let p = policy(Duration::ZERO);
    let alice = add_user(s, "alice").await;
    let (family, first) = login(s, &alice, at(0), &p).await;
    let standing = |family: Option<FamilyId>, jti: &'static str, now| {
        let id = alice.id.clone();
        async move {
            s.access_standing(&id, jti, family.as_ref(), now)
                .await
                .unwrap()
        }
    };
    let live = standing(Some(family.clone()), "j1", at(1)).await.unwrap();
    assert!(!live.revoked && live.user_enabled && live.session_live);
    assert_eq!(live.password_changed_at, None);
    // An unknown session, or none named, is not live.
    let other = standing(Some(FamilyId::generate()), "j1", at(1)).await;
    assert!(!other.unwrap().session_live);
    assert!(!standing(None, "j1", at(1)).await.unwrap().session_live);
    // Past the family's absolute lifetime (policy: 30 days) the session has ended.
    let ended = standing(Some(family.clone()), "j1", at(30 * 24 * 60)).await;
    assert!(!ended.unwrap().session_live);

    // A logout records the jti.
    s.revoke_access_token("j1", at(5)).await.unwrap();
    assert!(
        standing(Some(family.clone()), "j1", at(1))
            .await
            .unwrap()
            .revoked
    );
    assert!(
        !standing(Some(family.clone()), "j2", at(1))
            .await
            .unwrap()
            .revoked
    );

    // Reuse detection ends the session.
    rotate(s, &first, at(1), &p).await;
    outcome(s, &first, at(2), &p).await;
    assert!(
        !standing(Some(family), "j2", at(2))
            .await
            .unwrap()
            .session_live
    );

    // Logout with only the refresh token ends it too.
    let (family, first) = login(s, &alice, at(3), &p).await;
    assert!(
        standing(Some(family.clone()), "j2", at(3))
            .await
            .unwrap()
            .session_live
    );
    s.revoke_family_of(&first, at(3)).await.unwrap();
    assert!(
        !standing(Some(family), "j2", at(3))
            .await
            .unwrap()
            .session_live
    );

    // A password change is remembered, with its time.
    s.change_password(
        &alice.username,
        "$argon2id$v=19$m=256,t=1,p=1$bmV3$bmV3",
        at(4),
    )
    .await
    .unwrap();
    let changed = standing(None, "j2", at(4)).await.unwrap();
    assert_eq!(changed.password_changed_at, Some(at(4)));

    // Disabling, then deleting the user.
    s.set_enabled(&alice.username, false, at(5)).await.unwrap();
    assert!(!standing(None, "j2", at(5)).await.unwrap().user_enabled);
    s.delete_user(&alice.username).await.unwrap();
    assert!(standing(None, "j2", at(6)).await.is_none());
}
