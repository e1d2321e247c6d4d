//! The audit trail: one event per kind of action, with user, source and request id, never a
//! secret; and the purge after the retention period.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use authd::config::Config;
use authd::domain::{AuditKind, ManualClock, Timestamp};
use authd::grpc::pb::{PasswordCredential, TokenRequest};

use crate::helpers::{PASSWORD, spawn_app_with, spawn_on_with_clock, test_config};

#[tokio::test]
async fn every_event_type_is_recorded_without_secrets() {
    let app = spawn_app_with(|c| {
        c.throttle_free_failures = 1;
        c.throttle_max_failures = 2;
        // Routine rotations are not audited by default; this test wants every kind.
        c.audit_refresh = "all".into();
    })
    .await;
    let admin = app.admin().await;
    admin
        .add("alice", PASSWORD, &["reader".into()])
        .await
        .unwrap(); // user_created
    admin
        .change_roles("alice", &["writer".into()], &[])
        .await
        .unwrap(); // user_changed

    // login_succeeded, with the client's request id.
    let mut request = tonic::Request::new(TokenRequest {
        credential: Some(
            authd::grpc::pb::token_request::Credential::PasswordCredential(PasswordCredential {
                username: "alice".into(),
                password: PASSWORD.into(),
            }),
        ),
    });
    request
        .metadata_mut()
        .insert("x-request-id", "req-canary-42".parse().unwrap());
    let tokens = app
        .client
        .clone()
        .token(request)
        .await
        .unwrap()
        .into_inner();
    let rotated = app.refresh(&tokens.refresh_token).await.unwrap(); // token_refreshed
    app.refresh(&rotated.refresh_token).await.unwrap();
    // Reusing the first token after the grace of its successor: reuse + family revoked.
    app.refresh(&tokens.refresh_token).await.unwrap_err();

    app.login("alice", "a wrong password here")
        .await
        .unwrap_err(); // login_failed
    app.login("alice", PASSWORD).await.unwrap_err(); // login_throttled
    // A second failure after the 1 s delay locks the name.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    app.login("alice", "a wrong password here")
        .await
        .unwrap_err();
    app.login("alice", PASSWORD).await.unwrap_err(); // login_locked
    admin.unlock("alice").await.unwrap(); // user_unlocked
    admin
        .set_password("alice", "another long password")
        .await
        .unwrap(); // password_changed
    let keys = app.api_keys().await;
    let key = keys.create("alice", "audit", &[], None).await.unwrap(); // api_key_created
    keys.revoke(key.key.id.as_str()).await.unwrap(); // api_key_revoked
    admin.set_enabled("alice", false).await.unwrap(); // user_disabled
    admin.set_enabled("alice", true).await.unwrap(); // user_enabled
    app.service
        .auditor()
        .key_rotated(
            "kid-123",
            Timestamp::from_unix_millis(1),
            Some("cli".into()),
            "r1",
        )
        .await; // key_rotated
    admin.delete("alice").await.unwrap(); // user_deleted

    let events = admin.audit_tail(None, 1000).await.unwrap();
    let kinds: BTreeSet<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    let all: BTreeSet<&str> = AuditKind::ALL.iter().map(|k| k.as_str()).collect();
    assert_eq!(kinds, all);

    let success = events
        .iter()
        .find(|e| e.kind == AuditKind::LoginSucceeded)
        .unwrap();
    assert_eq!(success.request_id.as_deref(), Some("req-canary-42"));
    assert_eq!(success.source.as_deref(), Some("127.0.0.1"));
    assert_eq!(success.username.as_deref(), Some("alice"));
    assert!(success.user_id.is_some());
    let created = events
        .iter()
        .find(|e| e.kind == AuditKind::UserCreated)
        .unwrap();
    assert_eq!(created.source.as_deref(), Some("cli"));
    assert!(events.iter().all(|e| e.request_id.is_some()));

    let everything = format!("{events:?}");
    for secret in [
        PASSWORD,
        "another long password",
        &tokens.refresh_token,
        &tokens.access_token,
        &rotated.refresh_token,
    ] {
        assert!(!everything.contains(secret), "a secret in the audit trail");
    }
    assert!(!everything.contains("argon2"), "a hash in the audit trail");

    // The per-user view and the limit.
    let last_two = admin.audit_tail(Some("ALICE"), 2).await.unwrap();
    let kinds: Vec<_> = last_two.iter().map(|e| e.kind).collect();
    assert_eq!(kinds, [AuditKind::UserEnabled, AuditKind::UserDeleted]);
}

#[tokio::test]
async fn audit_events_past_the_retention_are_purged() {
    let clock = ManualClock::new(Timestamp::from_unix_millis(1_800_000_000_000));
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let config = Config {
        audit_retention: Duration::from_secs(3600),
        ..test_config(&dir)
    };
    let app = spawn_on_with_clock(dir, config, Arc::new(clock.clone())).await;
    for i in 0..3 {
        app.login(&format!("nobody-{i}"), "a wrong password")
            .await
            .unwrap_err();
    }
    let admin = app.admin().await;
    assert_eq!(admin.audit_tail(None, 100).await.unwrap().len(), 3);
    clock.advance(Duration::from_secs(3599));
    let purged = app
        .service
        .purge_expired(Duration::from_secs(3600))
        .await
        .unwrap();
    assert_eq!(purged.audit_events, 0);
    clock.advance(Duration::from_secs(2));
    let purged = app
        .service
        .purge_expired(Duration::from_secs(3600))
        .await
        .unwrap();
    assert_eq!(purged.audit_events, 3);
    assert!(admin.audit_tail(None, 100).await.unwrap().is_empty());
}

/// `audit_refresh` (issue 24): routine rotations are audited per the setting — none by default,
/// every one with `all`, one in N with `sample:N` — while a grace retry and reuse detection are
/// always recorded.
#[tokio::test]
async fn routine_rotations_are_audited_as_configured() {
    for (setting, rotations, expected) in [("none", 4, 0), ("all", 4, 4), ("sample:2", 4, 2)] {
        let app = spawn_app_with(|c| {
            c.audit_refresh = setting.into();
            c.refresh_reuse_grace = Duration::ZERO;
        })
        .await;
        let admin = app.admin().await;
        admin.add("alice", PASSWORD, &[]).await.unwrap();
        let first = app.login("alice", PASSWORD).await.unwrap();
        let mut current = first.refresh_token.clone();
        for _ in 0..rotations {
            current = app.refresh(&current).await.unwrap().refresh_token;
        }
        // Reuse of the first token is recorded whatever the setting.
        app.refresh(&first.refresh_token).await.unwrap_err();
        let events = admin.audit_tail(None, 1000).await.unwrap();
        let count = |kind: AuditKind| events.iter().filter(|e| e.kind == kind).count();
        assert_eq!(count(AuditKind::TokenRefreshed), expected, "{setting}");
        assert_eq!(count(AuditKind::RefreshReuseDetected), 1, "{setting}");
        assert_eq!(count(AuditKind::FamilyRevoked), 1, "{setting}");
        assert_eq!(count(AuditKind::LoginSucceeded), 1, "{setting}");
    }
}
