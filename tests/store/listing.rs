//! The administrative listings as store queries (keyset pages in SQL): users by name with
//! their filters, every user's live sessions newest first, and audit events filtered newest
//! first, after an id, and the newest id.

use authd::domain::{AuditEvent, AuditKind};
use authd::store::{AuditQuery, SessionCursor, UserQuery};

use super::*;

conformance!(
    users_are_paged_by_name_with_every_filter_in_sql,
    live_sessions_of_everyone_are_paged_newest_first,
    audit_events_are_queried_newest_first_and_read_after_an_id,
);

fn names(rows: &[authd::store::UserRow]) -> Vec<&str> {
    rows.iter().map(|r| r.user.username.as_str()).collect()
}

async fn users_are_paged_by_name_with_every_filter_in_sql(b: Backend) {
    let s = b.store.as_ref();
    for n in ["dave", "alice", "carol", "bob", "erin", "frank"] {
        add_user(s, n).await;
    }
    s.change_roles(
        &name("carol"),
        &RoleChange {
            add: vec![Role::parse("ops").unwrap()],
            remove: vec![],
        },
    )
    .await
    .unwrap();
    s.change_roles(
        &name("frank"),
        &RoleChange {
            add: vec![Role::parse("a_b").unwrap()],
            remove: vec![],
        },
    )
    .await
    .unwrap();
    s.set_enabled(&name("dave"), false, T0).await.unwrap();
    for minutes in [1, 10, 20, 30] {
        charge(s, "erin", minutes).await.unwrap();
    }
    let page = |q: UserQuery| async move {
        s.list_users_page(&UserQuery { locked_at: 4, ..q })
            .await
            .unwrap()
    };

    let first = page(UserQuery {
        limit: 2,
        ..Default::default()
    })
    .await;
    assert_eq!(names(&first), ["alice", "bob"]);
    let next = page(UserQuery {
        after: Some("bob".into()),
        limit: 3,
        ..Default::default()
    })
    .await;
    assert_eq!(names(&next), ["carol", "dave", "erin"]);
    assert_eq!(
        next.iter().map(|r| r.locked).collect::<Vec<_>>(),
        [false, false, true]
    );
    let last = page(UserQuery {
        after: Some("erin".into()),
        limit: 3,
        ..Default::default()
    })
    .await;
    assert_eq!(names(&last), ["frank"]);

    let prefixed = page(UserQuery {
        name_prefix: Some("ca".into()),
        limit: 10,
        ..Default::default()
    })
    .await;
    assert_eq!(names(&prefixed), ["carol"]);
    let ops = page(UserQuery {
        role: Some(Role::parse("ops").unwrap()),
        limit: 10,
        ..Default::default()
    })
    .await;
    assert_eq!(names(&ops), ["carol"]);
    // `_` in a role is a character, not a LIKE wildcard; every user also holds `reader`.
    let wildcard = page(UserQuery {
        role: Some(Role::parse("axb").unwrap()),
        limit: 10,
        ..Default::default()
    })
    .await;
    assert!(wildcard.is_empty(), "{wildcard:?}");
    let underscored = page(UserQuery {
        role: Some(Role::parse("a_b").unwrap()),
        limit: 10,
        ..Default::default()
    })
    .await;
    assert_eq!(names(&underscored), ["frank"]);
    let readers = page(UserQuery {
        role: Some(Role::parse("reader").unwrap()),
        limit: 10,
        ..Default::default()
    })
    .await;
    assert_eq!(readers.len(), 6);
    let disabled = page(UserQuery {
        disabled_only: true,
        limit: 10,
        ..Default::default()
    })
    .await;
    assert_eq!(names(&disabled), ["dave"]);
    let locked = page(UserQuery {
        locked_only: true,
        limit: 10,
        ..Default::default()
    })
    .await;
    assert_eq!(names(&locked), ["erin"]);
    let not_yet = s
        .list_users_page(&UserQuery {
            locked_only: true,
            locked_at: 5,
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(not_yet.is_empty(), "erin has 4 failures, not 5");
}

async fn live_sessions_of_everyone_are_paged_newest_first(b: Backend) {
    let s = b.store.as_ref();
    let p = policy(MINUTE);
    let alice = add_user(s, "alice").await;
    let bob = add_user(s, "bob").await;
    let mut live = Vec::new();
    for minutes in 0..5 {
        live.push(login(s, &alice, at(minutes), &p).await.0);
        live.push(login(s, &bob, at(minutes), &p).await.0);
    }
    let (ended, _) = login(s, &bob, at(6), &p).await;
    s.revoke_family(&ended, at(7)).await.unwrap();
    let now = at(8);

    let mut seen = Vec::new();
    let mut after: Option<SessionCursor> = None;
    loop {
        let page = s.list_live_sessions(now, after.as_ref(), 3).await.unwrap();
        if page.is_empty() {
            break;
        }
        after = page.last().map(|last| SessionCursor {
            created_at: last.created_at,
            id: last.id.clone(),
        });
        seen.extend(page);
    }
    assert_eq!(seen.len(), live.len(), "each live session once: {seen:?}");
    let ids: HashSet<String> = seen.iter().map(|s| s.id.to_string()).collect();
    assert_eq!(ids, live.iter().map(ToString::to_string).collect());
    assert!(
        seen.windows(2).all(|w| w[0].created_at >= w[1].created_at),
        "newest first"
    );
    // Past the idle timeout nothing is live.
    let later = at(8).saturating_add(2 * DAY);
    assert!(
        s.list_live_sessions(later, None, 100)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn audit_events_are_queried_newest_first_and_read_after_an_id(b: Backend) {
    let s = b.store.as_ref();
    assert_eq!(s.latest_audit_id().await.unwrap(), 0);
    let events = [
        AuditEvent::new(AuditKind::LoginFailed, at(1)).username("alice"),
        AuditEvent::new(AuditKind::UserCreated, at(2)).username("bob"),
        AuditEvent::new(AuditKind::LoginFailed, at(3)).username("bob"),
        AuditEvent::new(AuditKind::LoginFailed, at(4)).username("alice"),
        AuditEvent::new(AuditKind::KeyRotated, at(5)),
    ];
    for e in &events {
        s.insert_audit_event(e).await.unwrap();
    }
    let all = s
        .query_audit(&AuditQuery {
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    let newest_first: Vec<AuditEvent> = events.iter().rev().cloned().collect();
    assert_eq!(
        all.iter().map(|r| r.event.clone()).collect::<Vec<_>>(),
        newest_first
    );
    assert!(all.windows(2).all(|w| w[0].id > w[1].id));
    assert_eq!(s.latest_audit_id().await.unwrap(), all[0].id);

    let failed = |q: AuditQuery| async move {
        s.query_audit(&AuditQuery {
            kind: Some(AuditKind::LoginFailed),
            limit: 100,
            ..q
        })
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.event.time)
        .collect::<Vec<_>>()
    };
    assert_eq!(failed(AuditQuery::default()).await, [at(4), at(3), at(1)]);
    let of_alice = failed(AuditQuery {
        username: Some("alice".into()),
        ..Default::default()
    })
    .await;
    assert_eq!(of_alice, [at(4), at(1)]);
    let ranged = failed(AuditQuery {
        from: Some(at(3)),
        to: Some(at(4)),
        ..Default::default()
    })
    .await;
    assert_eq!(ranged, [at(3)], "from inclusive, to exclusive");
    // Keyset: the page after the newest failure.
    let before = failed(AuditQuery {
        before_id: Some(all[1].id),
        ..Default::default()
    })
    .await;
    assert_eq!(before, [at(3), at(1)]);
    let page = s
        .query_audit(&AuditQuery {
            limit: 2,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(page.len(), 2);

    let after = s.audit_after(all[2].id, 100).await.unwrap();
    assert_eq!(
        after.iter().map(|r| r.event.clone()).collect::<Vec<_>>(),
        events[3..].to_vec(),
        "oldest first"
    );
    assert_eq!(s.audit_after(all[0].id, 100).await.unwrap(), vec![]);
    assert_eq!(s.audit_after(0, 2).await.unwrap().len(), 2);
}
