//! `RetireSigningKey` (the emergency path over the API) and the audit trail: `QueryAudit`
//! filtered by type, user and time range in newest-first pages, and `FollowAudit` streaming
//! events as they are stored; on SQLite and PostgreSQL.

use std::collections::BTreeSet;
use std::time::Duration;

use authd::grpc::pb;
use tonic::Code;

use crate::admin_authz::{access_token, admin_client, with_bearer};
use crate::admin_users::on_both;
use crate::helpers::{PASSWORD, TestApp};

on_both!(
    retires_a_key_at_once,
    retiring_a_key_over_the_api_stops_its_tokens_at_once_and_is_audited,
    on_postgres_retiring_a_key_over_the_api_stops_its_tokens_at_once
);
on_both!(
    queries_audit_pages,
    audit_queries_filter_by_type_user_and_time_newest_first_in_pages,
    on_postgres_audit_queries_filter_by_type_user_and_time_newest_first_in_pages
);
on_both!(
    follows_audit,
    follow_audit_streams_new_events_as_they_are_stored,
    on_postgres_follow_audit_streams_new_events_as_they_are_stored
);

async fn retires_a_key_at_once(app: TestApp) {
    app.add_user("root", &["admin"]).await;
    app.add_user("bob", &[]).await;
    let token = access_token(&app, "root").await;
    let bobs = app.login("bob", PASSWORD).await.unwrap().access_token;
    assert!(app.is_active(&bobs).await);
    let mut admin = admin_client(&app);
    let keys = admin
        .list_signing_keys(with_bearer(pb::ListSigningKeysRequest {}, &token))
        .await
        .unwrap()
        .into_inner()
        .keys;
    let active = keys
        .iter()
        .find(|k| k.state == "active")
        .unwrap()
        .kid
        .clone();

    let unknown = admin
        .retire_signing_key(with_bearer(
            pb::RetireSigningKeyRequest {
                kid: "no-such-kid".into(),
            },
            &token,
        ))
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound, "{unknown:?}");

    let done = admin
        .retire_signing_key(with_bearer(
            pb::RetireSigningKeyRequest {
                kid: active.clone(),
            },
            &token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(done.retired, active);
    assert_ne!(done.replacement, active);
    // This server reloaded at once: the key is unpublished and its tokens are inactive.
    let jwks = app.get_json("/.well-known/jwks.json").await;
    let published: BTreeSet<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert!(!published.contains(active.as_str()), "{published:?}");
    assert!(published.contains(done.replacement.as_str()));
    assert!(!app.is_active(&bobs).await);
    // New logins sign with the replacement.
    let fresh = app.login("bob", PASSWORD).await.unwrap().access_token;
    assert_eq!(
        app.verify(&fresh).0.kid.as_deref(),
        Some(done.replacement.as_str())
    );

    let events = app.admin().await.audit_tail(None, 100).await.unwrap();
    let retired = events
        .iter()
        .find(|e| {
            e.detail
                .as_deref()
                .is_some_and(|d| d.contains("reason=emergency"))
        })
        .expect("the retirement is audited");
    assert!(
        retired
            .detail
            .as_deref()
            .unwrap()
            .starts_with("by=user:root"),
        "{retired:?}"
    );
}

async fn queries_audit_pages(app: TestApp) {
    app.add_user("root", &["admin"]).await;
    let token = access_token(&app, "root").await;
    for i in 0..9 {
        app.add_user(&format!("user{i}"), &[]).await;
    }
    for _ in 0..3 {
        let _ = app.login("user1", "wrong password, long enough").await;
    }
    let admin = admin_client(&app);
    let query = |request: pb::QueryAuditRequest| {
        let mut admin = admin.clone();
        let token = token.clone();
        async move {
            admin
                .query_audit(with_bearer(request, &token))
                .await
                .map(tonic::Response::into_inner)
        }
    };

    // Every user_created event, 4 per page, newest first, each once.
    let mut seen = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = query(pb::QueryAuditRequest {
            event_type: "user_created".into(),
            page_size: 4,
            page_token: page_token.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
        assert!(page.events.len() <= 4);
        assert!(page.events.iter().all(|e| e.event_type == "user_created"));
        seen.extend(page.events);
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    assert_eq!(seen.len(), 10, "root and user0..user8");
    assert!(seen.windows(2).all(|w| w[0].id > w[1].id), "newest first");
    assert_eq!(seen.last().unwrap().username, "root");

    // By user and type.
    let failures = query(pb::QueryAuditRequest {
        event_type: "login_failed".into(),
        username: "user1".into(),
        page_size: 100,
        ..Default::default()
    })
    .await
    .unwrap();
    assert_eq!(failures.events.len(), 3, "{failures:?}");

    // A time range: from the newest user_created event's time on, the older ones are out.
    let newest = &seen[0];
    let since = query(pb::QueryAuditRequest {
        event_type: "user_created".into(),
        from_ms: newest.time_ms,
        page_size: 100,
        ..Default::default()
    })
    .await
    .unwrap();
    assert!(since.events.iter().all(|e| e.time_ms >= newest.time_ms));
    assert!(since.events.iter().any(|e| e.id == newest.id));
    let before = query(pb::QueryAuditRequest {
        event_type: "user_created".into(),
        to_ms: newest.time_ms,
        page_size: 100,
        ..Default::default()
    })
    .await
    .unwrap();
    assert!(before.events.iter().all(|e| e.time_ms < newest.time_ms));

    // The tail form (no paging) is oldest first and filters alike.
    let tail = query(pb::QueryAuditRequest {
        event_type: "user_created".into(),
        limit: 3,
        ..Default::default()
    })
    .await
    .unwrap();
    let tail_ids: Vec<i64> = tail.events.iter().map(|e| e.id).collect();
    let newest_three: Vec<i64> = seen[..3].iter().rev().map(|e| e.id).collect();
    assert_eq!(tail_ids, newest_three);

    for bad in [
        pb::QueryAuditRequest {
            event_type: "no_such_event".into(),
            ..Default::default()
        },
        pb::QueryAuditRequest {
            from_ms: 20,
            to_ms: 10,
            ..Default::default()
        },
        pb::QueryAuditRequest {
            page_size: 5,
            page_token: "bm90IGFuIGlk".into(),
            ..Default::default()
        },
    ] {
        let refused = query(bad.clone()).await.unwrap_err();
        assert_eq!(
            refused.code(),
            Code::InvalidArgument,
            "{bad:?}: {refused:?}"
        );
    }
}

/// The next event of a stream, within 10 s.
async fn next(stream: &mut tonic::Streaming<pb::AuditEvent>) -> pb::AuditEvent {
    tokio::time::timeout(Duration::from_secs(10), stream.message())
        .await
        .expect("an event within 10 s")
        .unwrap()
        .expect("the stream stays open")
}

async fn follows_audit(app: TestApp) {
    app.add_user("root", &["admin"]).await;
    app.add_user("early", &[]).await;
    let token = access_token(&app, "root").await;
    let mut admin = admin_client(&app);
    let mut all = admin
        .follow_audit(with_bearer(pb::FollowAuditRequest::default(), &token))
        .await
        .unwrap()
        .into_inner();
    let mut created = admin
        .follow_audit(with_bearer(
            pb::FollowAuditRequest {
                event_type: "user_created".into(),
                ..Default::default()
            },
            &token,
        ))
        .await
        .unwrap()
        .into_inner();
    // Written after the streams started, through another path (the service, as the CLI or
    // another replica would): the stream polls the database, not this process.
    let _ = app.login("early", "wrong password, long enough").await;
    app.add_user("late", &[]).await;

    let first = next(&mut all).await;
    assert_eq!(first.event_type, "login_failed", "from now on: {first:?}");
    let second = next(&mut all).await;
    assert_eq!(
        (second.event_type.as_str(), second.username.as_str()),
        ("user_created", "late")
    );
    assert!(second.id > first.id);
    let only = next(&mut created).await;
    assert_eq!(only.username, "late");

    // Resuming after an id replays what came after it.
    let mut resumed = admin
        .follow_audit(with_bearer(
            pb::FollowAuditRequest {
                after_id: first.id,
                ..Default::default()
            },
            &token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(next(&mut resumed).await.id, second.id);
}
