//! `StatsStore`: rows and bytes per table, live sessions, the oldest audit event.

use super::*;

conformance!(stats_count_what_is_kept,);

async fn stats_count_what_is_kept(b: Backend) {
    use authd::domain::{AuditEvent, AuditKind};
    let s = b.store.as_ref();
    let empty = s.stats(at(0)).await.unwrap();
    let rows = |stats: &authd::store::StoreStats, table: &str| {
        stats.tables.iter().find(|t| t.table == table).unwrap().rows
    };
    assert_eq!(rows(&empty, "users"), 0);
    assert_eq!(empty.live_sessions, 0);
    assert_eq!(empty.oldest_audit_event, None);

    let p = policy(Duration::ZERO);
    let alice = add_user(s, "alice").await;
    let (_, first) = login(s, &alice, at(0), &p).await;
    rotate(s, &first, at(1), &p).await;
    let (ended, _) = login(s, &alice, at(2), &p).await;
    s.revoke_family(&ended, at(3)).await.unwrap();
    s.insert_audit_event(&AuditEvent::new(AuditKind::UserCreated, at(5)))
        .await
        .unwrap();

    let stats = s.stats(at(10)).await.unwrap();
    assert_eq!(rows(&stats, "users"), 1);
    assert_eq!(rows(&stats, "refresh_families"), 2);
    // Each family's newest token, and what is kept of the one used token.
    assert_eq!(rows(&stats, "refresh_tokens"), 2);
    assert_eq!(rows(&stats, "used_refresh_tokens"), 1);
    assert_eq!(stats.live_sessions, 1, "the revoked one is not live");
    // The rotation was audited too: the oldest event is whichever came first.
    let oldest = s.audit_events(None, 1000).await.unwrap()[0].time;
    assert!(oldest <= at(5));
    assert_eq!(stats.oldest_audit_event, Some(oldest));
    assert_eq!(stats.tables.len(), authd::store::stats::TABLES.len());
    for table in &stats.tables {
        let bytes = table.bytes.expect("the size of every table is known");
        assert!(bytes > 0, "{table:?}");
    }
    assert!(stats.database_bytes.unwrap() > 0);
    // Past the sessions' absolute lifetime, none is live.
    assert_eq!(s.stats(at(60 * 24 * 31)).await.unwrap().live_sessions, 0);
}
