//! The audit trail: stored, listed oldest first, purged.

use authd::store::Expired;

use super::*;

conformance!(audit_events_are_stored_listed_and_purged,);

async fn audit_events_are_stored_listed_and_purged(b: Backend) {
    use authd::domain::{AuditEvent, AuditKind};
    let s = b.store.as_ref();
    let alice = add_user(s, "alice").await;
    let events = [
        AuditEvent::new(AuditKind::LoginFailed, at(1)).username("alice"),
        AuditEvent::new(AuditKind::LoginSucceeded, at(2))
            .user(&alice)
            .source(Some("127.0.0.1".into()))
            .request_id("req-1")
            .detail("family=f"),
        AuditEvent::new(AuditKind::UserCreated, at(3)).username("bob"),
        AuditEvent::new(AuditKind::KeyRotated, at(40)),
    ];
    for e in &events {
        s.insert_audit_event(e).await.unwrap();
    }
    let all = s.audit_events(None, 100).await.unwrap();
    assert_eq!(all.len(), 4);
    assert_eq!(all, events.to_vec(), "oldest first, every field kept");
    let newest_two = s.audit_events(None, 2).await.unwrap();
    assert_eq!(newest_two, events[2..].to_vec());
    let of_alice = s.audit_events(Some("alice"), 100).await.unwrap();
    assert_eq!(of_alice, events[..2].to_vec());
    let old = Expired::AuditEvents { before: at(10) };
    assert_eq!(s.purge_batch(old, 2).await.unwrap(), 2);
    assert_eq!(s.purge_batch(old, 2).await.unwrap(), 1);
    assert_eq!(
        s.audit_events(None, 100).await.unwrap(),
        events[3..].to_vec()
    );
}
