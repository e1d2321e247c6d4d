//! The directory over time: stopped and restarted under a running authd, and the refresh's
//! recheck (at most every `recheck_interval`, here one minute of a manual clock) ending the
//! session of a user taken out of their group and carrying role changes into the next token.

use std::time::{Duration, Instant};

use authd::ldap::Membership;
use tonic::Code;

use crate::helpers::PASSWORD as LOCAL_PASSWORD;
use crate::slapd::{PASSWORD, Slapd};
use crate::{RECHECK, TIMEOUT, require_slapd, roles_of, spawn_with_directory};

#[tokio::test(flavor = "multi_thread")]
async fn a_stopped_directory_is_unavailable_and_service_resumes_when_it_returns() {
    require_slapd!();
    let mut slapd = Slapd::start(None).await;
    let (app, clock) = spawn_with_directory(&slapd, Membership::Search).await;
    app.add_user("dave", &["reader"]).await;
    let alice = app.login("alice", PASSWORD).await.unwrap();

    slapd.stop();
    let started = Instant::now();
    let down = app.login("alice", PASSWORD).await.unwrap_err();
    assert_eq!(down.code(), Code::Unavailable, "{down:?}");
    assert_eq!(down.message(), "service temporarily unavailable");
    // Bounded by the directory's timeout (2 s), not the client's patience; generous margin
    // for a loaded machine.
    assert!(started.elapsed() < TIMEOUT * 4, "{:?}", started.elapsed());
    // Local users are unaffected.
    app.login("dave", LOCAL_PASSWORD).await.unwrap();
    // A session inside its recheck window refreshes without asking the directory.
    let alice = app.refresh(&alice.refresh_token).await.unwrap();
    // Past it, the directory must answer: UNAVAILABLE, and nothing is revoked or rotated.
    clock.advance(RECHECK + Duration::from_secs(1));
    let due = app.refresh(&alice.refresh_token).await.unwrap_err();
    assert_eq!(due.code(), Code::Unavailable, "{due:?}");
    // An outage does not count as a failed password.
    let events = app
        .admin()
        .await
        .audit_tail(Some("alice"), 20)
        .await
        .unwrap();
    assert!(
        !events.iter().any(|e| e.kind.as_str() == "login_failed"),
        "{events:?}"
    );

    slapd.launch().await;
    // The same token works once the directory is back, and logins resume.
    let alice = app.refresh(&alice.refresh_token).await.unwrap();
    assert_eq!(roles_of(&app, &alice.access_token), ["admin", "viewer"]);
    app.login("alice", PASSWORD).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_user_taken_out_of_their_only_group_loses_the_session_at_the_recheck() {
    require_slapd!();
    let slapd = Slapd::start(None).await;
    let (app, clock) = spawn_with_directory(&slapd, Membership::MemberOf).await;
    let alice = app.login("alice", PASSWORD).await.unwrap();
    slapd.remove_from_group("alice", "dcpower-users").await;

    // Within the interval the directory is not asked again.
    let alice = app.refresh(&alice.refresh_token).await.unwrap();
    assert_eq!(roles_of(&app, &alice.access_token), ["admin"]);
    assert!(app.is_active(&alice.access_token).await);

    clock.advance(RECHECK + Duration::from_secs(1));
    let ended = app.refresh(&alice.refresh_token).await.unwrap_err();
    assert_eq!(ended.code(), Code::Unauthenticated, "{ended:?}");
    assert_eq!(ended.message(), "invalid refresh token");
    // The session is over: its access token is no longer active, and it stays ended.
    assert!(!app.is_active(&alice.access_token).await);
    let again = app.refresh(&alice.refresh_token).await.unwrap_err();
    assert_eq!(again.code(), Code::Unauthenticated);
    // Audited with the reason.
    let events = app
        .admin()
        .await
        .audit_tail(Some("alice"), 20)
        .await
        .unwrap();
    let revoked = events
        .iter()
        .find(|e| e.kind.as_str() == "family_revoked")
        .expect("a revocation event");
    let detail = revoked.detail.as_deref().unwrap_or_default();
    assert!(detail.contains("in no mapped directory group"), "{detail}");
    // And a new login is refused like a wrong password.
    let status = app.login("alice", PASSWORD).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_role_change_in_the_directory_reaches_the_next_access_token() {
    require_slapd!();
    let slapd = Slapd::start(None).await;
    let (app, clock) = spawn_with_directory(&slapd, Membership::Search).await;
    let alice = app.login("alice", PASSWORD).await.unwrap();
    assert_eq!(roles_of(&app, &alice.access_token), ["admin", "viewer"]);
    slapd.remove_from_group("alice", "dcpower-users").await;

    clock.advance(RECHECK + Duration::from_secs(1));
    let alice = app.refresh(&alice.refresh_token).await.unwrap();
    assert_eq!(roles_of(&app, &alice.access_token), ["viewer"]);
    let user = app.admin().await.get("alice").await.unwrap();
    let roles: Vec<&str> = user.roles.iter().map(|r| r.as_str()).collect();
    assert_eq!(roles, ["viewer"]);
    // The check was recorded: the next refresh inside the interval does not ask again, even
    // with the directory gone.
    drop(slapd);
    app.refresh(&alice.refresh_token).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_user_deleted_from_the_directory_loses_the_session_at_the_recheck() {
    require_slapd!();
    let slapd = Slapd::start(None).await;
    let (app, clock) = spawn_with_directory(&slapd, Membership::Search).await;
    let bob = app.login("bob", PASSWORD).await.unwrap();
    slapd.delete_user("bob").await;
    clock.advance(RECHECK + Duration::from_secs(1));
    let ended = app.refresh(&bob.refresh_token).await.unwrap_err();
    assert_eq!(ended.code(), Code::Unauthenticated, "{ended:?}");
    let events = app.admin().await.audit_tail(Some("bob"), 20).await.unwrap();
    assert!(
        events.iter().any(|e| e.kind.as_str() == "family_revoked"
            && e.detail
                .as_deref()
                .unwrap_or("")
                .contains("deleted from the directory")),
        "{events:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_user_locked_in_the_directory_loses_the_session_at_the_recheck() {
    require_slapd!();
    let slapd = Slapd::start(None).await;
    let (app, clock) = spawn_with_directory(&slapd, Membership::Search).await;
    let bob = app.login("bob", PASSWORD).await.unwrap();
    slapd.lock_user("bob").await;
    clock.advance(RECHECK + Duration::from_secs(1));
    let ended = app.refresh(&bob.refresh_token).await.unwrap_err();
    assert_eq!(ended.code(), Code::Unauthenticated, "{ended:?}");
    let events = app.admin().await.audit_tail(Some("bob"), 20).await.unwrap();
    assert!(
        events.iter().any(|e| e.kind.as_str() == "family_revoked"
            && e.detail
                .as_deref()
                .unwrap_or("")
                .contains("disabled in the directory")),
        "{events:?}"
    );
    // A new login is refused like a wrong password.
    let status = app.login("bob", PASSWORD).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
}
