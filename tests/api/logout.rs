//! Logout and Introspect: a logout ends the whole family, is idempotent and reveals nothing,
//! makes Introspect report the access token inactive, and cannot be outrun by a refresh.

use std::sync::Arc;

use tonic::Code;

use crate::helpers::{PASSWORD, spawn_app};

const BAD_REFRESH: &str = "invalid refresh token";

#[tokio::test]
async fn logout_revokes_the_family_so_the_newest_refresh_token_stops_working() {
    let app = spawn_app().await;
    app.add_user("alice", &[]).await;
    let first = app.login("alice", PASSWORD).await.unwrap();
    let second = app.refresh(&first.refresh_token).await.unwrap();
    let newest = app.refresh(&second.refresh_token).await.unwrap();
    let other_session = app.login("alice", PASSWORD).await.unwrap();
    assert!(app.is_active(&newest.refresh_token).await);

    // Any token of the family names the session, even an old, rotated one.
    app.logout(&first.refresh_token, "").await.unwrap();
    let status = app.refresh(&newest.refresh_token).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(status.message(), BAD_REFRESH);
    assert!(!app.is_active(&newest.refresh_token).await);
    // Other sessions are untouched.
    assert!(app.is_active(&other_session.refresh_token).await);
    app.refresh(&other_session.refresh_token).await.unwrap();
}

#[tokio::test]
async fn logout_is_idempotent_and_reveals_nothing() {
    let app = spawn_app().await;
    app.add_user("alice", &[]).await;
    let tokens = app.login("alice", PASSWORD).await.unwrap();
    app.logout(&tokens.refresh_token, &tokens.access_token)
        .await
        .unwrap();
    app.logout(&tokens.refresh_token, &tokens.access_token)
        .await
        .unwrap();
    // Unknown, malformed, forged: all succeed alike.
    app.logout(&"A".repeat(43), "").await.unwrap();
    app.logout("not-a-token", "not.a.jwt").await.unwrap();
    app.logout("", "eyJhbGciOiJub25lIn0.e30.").await.unwrap();
    let status = app.logout("", "").await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(
        status.message(),
        "refresh_token or access_token is required"
    );
}

#[tokio::test]
async fn logout_makes_introspect_report_the_access_token_inactive() {
    let app = spawn_app().await;
    app.add_user("alice", &["admin"]).await;
    let tokens = app.login("alice", PASSWORD).await.unwrap();
    let (_, claims) = app.verify(&tokens.access_token);

    let answer = app.introspect(&tokens.access_token).await.unwrap();
    assert!(answer.active);
    assert_eq!(answer.token_type, "access_token");
    assert_eq!(answer.sub, claims.sub);
    assert_eq!(answer.username, "alice");
    assert_eq!(answer.jti, claims.jti);
    assert_eq!(answer.exp, claims.exp);
    assert_eq!(answer.iat, claims.iat);
    assert_eq!(answer.roles, vec!["admin"]);
    assert_eq!(answer.iss, app.config.issuer);
    assert_eq!(answer.aud, app.config.audience);
    assert!(answer.key_id.is_empty());

    let refresh = app.introspect(&tokens.refresh_token).await.unwrap();
    assert!(refresh.active);
    assert_eq!(refresh.token_type, "refresh_token");
    assert_eq!(refresh.sub, claims.sub);
    assert_eq!(refresh.roles, vec!["admin"]);
    assert!(!refresh.session_id.is_empty());
    assert!(refresh.exp > refresh.iat);

    // The access token alone is enough to revoke it.
    app.logout("", &tokens.access_token).await.unwrap();
    assert!(!app.is_active(&tokens.access_token).await);
    // The trade-off: offline verification does not see the logout until exp.
    app.verify(&tokens.access_token);
    // Only the access token was given, so the session lives on.
    assert!(app.is_active(&tokens.refresh_token).await);
}

#[tokio::test]
async fn rotated_forged_and_garbage_tokens_are_inactive() {
    let app = spawn_app().await;
    app.add_user("alice", &[]).await;
    let tokens = app.login("alice", PASSWORD).await.unwrap();
    let next = app.refresh(&tokens.refresh_token).await.unwrap();
    // Rotated, even inside the grace window, is not active.
    assert!(!app.is_active(&tokens.refresh_token).await);
    assert!(app.is_active(&next.refresh_token).await);

    // A signature that does not match, or a token of another server, is inactive.
    let mut forged = next.access_token.clone();
    forged.pop();
    forged.push(if next.access_token.ends_with('A') {
        'B'
    } else {
        'A'
    });
    let other = spawn_app().await;
    other.add_user("alice", &[]).await;
    let foreign = other.login("alice", PASSWORD).await.unwrap();
    for token in [
        forged.as_str(),
        &foreign.access_token,
        &foreign.refresh_token,
        "garbage",
        &"A".repeat(43),
    ] {
        assert!(!app.is_active(token).await, "{token}");
    }
    let status = app.introspect("").await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);

    // Disabling the user ends its sessions.
    app.admin().await.set_enabled("alice", false).await.unwrap();
    assert!(!app.is_active(&next.refresh_token).await);
}

#[tokio::test]
async fn logout_racing_a_refresh_of_the_same_family_leaves_no_live_token() {
    let app = Arc::new(spawn_app().await);
    app.add_user("alice", &[]).await;
    let (mut refresh_won, mut logout_first) = (0, 0);
    for _ in 0..50 {
        let tokens = app.login("alice", PASSWORD).await.unwrap();
        let presented = tokens.refresh_token.clone();
        let (a, b) = (Arc::clone(&app), Arc::clone(&app));
        let p1 = presented.clone();
        let refresh = tokio::spawn(async move { a.refresh(&p1).await });
        let logout = tokio::spawn(async move { b.logout(&presented, "").await });
        let (refreshed, logged_out) = (refresh.await.unwrap(), logout.await.unwrap());
        logged_out.unwrap();
        match refreshed {
            Ok(successor) => {
                refresh_won += 1;
                // The rotation committed first; the logout revoked its successor with it.
                assert!(!app.is_active(&successor.refresh_token).await);
                let status = app.refresh(&successor.refresh_token).await.unwrap_err();
                assert_eq!(status.code(), Code::Unauthenticated);
            }
            Err(status) => {
                logout_first += 1;
                assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
            }
        }
        assert!(!app.is_active(&tokens.refresh_token).await);
        // The session is gone for good: nothing of it is listed.
        assert!(app.sessions().await.list("alice").await.unwrap().is_empty());
    }
    println!(
        "logout/refresh race: refresh committed first {refresh_won}×, logout first {logout_first}×"
    );
}

// Multi-threaded: the test thread blocks on the CLI process while the server answers it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shell_client_logs_out_and_introspects() {
    let app = spawn_app().await;
    app.add_user("alice", &[]).await;
    let tokens = app.login("alice", PASSWORD).await.unwrap();
    let addr = format!("http://{}", app.addr);
    let caller = app.introspector_authorization().await;
    let caller = caller.strip_prefix("Bearer ").unwrap();
    let introspect = |token: &str| {
        let (ok, out, err) = app.cli(&[
            "client",
            "introspect",
            token,
            "--addr",
            &addr,
            "--bearer",
            caller,
        ]);
        assert!(ok, "{err}");
        serde_json::from_str::<serde_json::Value>(&out).unwrap()
    };
    let before = introspect(&tokens.access_token);
    assert_eq!(before["active"], true);
    assert_eq!(before["token_type"], "access_token");
    // Issue 16: an access token names its session (`sid`), the refresh token's.
    let refresh = introspect(&tokens.refresh_token);
    assert_eq!(refresh["token_type"], "refresh_token");
    assert_eq!(before["session_id"], refresh["session_id"], "{before}");

    let (ok, out, err) = app.cli(&[
        "client",
        "logout",
        "--refresh-token",
        &tokens.refresh_token,
        "--access-token",
        &tokens.access_token,
        "--addr",
        &addr,
    ]);
    assert!(ok, "{err}");
    assert_eq!(out.trim(), r#"{"logged_out":true}"#);
    assert_eq!(
        introspect(&tokens.access_token),
        serde_json::json!({"active": false})
    );
    assert_eq!(
        introspect(&tokens.refresh_token),
        serde_json::json!({"active": false})
    );

    let (ok, _, err) = app.cli(&["client", "logout", "--addr", &addr]);
    assert!(!ok);
    assert_eq!(
        err,
        "error: InvalidArgument: refresh_token or access_token is required\n"
    );
}

// Multi-threaded: the test thread blocks on the CLI process while the server answers it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_introspect_role_only_callers_whose_token_carries_it_may_introspect() {
    let app = crate::helpers::spawn_app_with(|c| c.introspect_role = "introspector".into()).await;
    app.add_user("alice", &[]).await;
    app.add_user("svc", &["introspector"]).await;
    let alice = app.login("alice", PASSWORD).await.unwrap();
    let svc = app.login("svc", PASSWORD).await.unwrap();
    let as_caller = |authorization: Option<String>| {
        let app = &app;
        let token = alice.access_token.clone();
        async move { app.introspect_as(&token, authorization.as_deref()).await }
    };
    let bearer = |token: &str| Some(format!("Bearer {token}"));

    // No token, a garbage one, a refresh token, another scheme: not authenticated.
    for authorization in [
        None,
        bearer("not.a.jwt"),
        bearer(&svc.refresh_token),
        Some(format!("Basic {}", svc.access_token)),
    ] {
        let status = as_caller(authorization).await.unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
        assert_eq!(
            status.message(),
            "this call needs an active access token (authorization: Bearer …)"
        );
    }
    // A valid token without the role: denied.
    let status = as_caller(bearer(&alice.access_token)).await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    // With the role (the scheme in any case): answered.
    let answer = as_caller(bearer(&svc.access_token)).await.unwrap();
    assert!(answer.active);
    assert_eq!(answer.username, "alice");
    let lower = Some(format!("bearer {}", svc.access_token));
    assert!(as_caller(lower).await.unwrap().active);

    // The shell client sends its bearer token too.
    let addr = format!("http://{}", app.addr);
    let args = ["client", "introspect", &alice.access_token, "--addr", &addr];
    let (ok, _, err) = app.cli(&args);
    assert!(!ok);
    assert!(err.starts_with("error: Unauthenticated: "), "{err}");
    let with_bearer = [&args[..], &["--bearer", &svc.access_token]].concat();
    let (ok, out, err) = app.cli(&with_bearer);
    assert!(ok, "{err}");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&out).unwrap()["active"],
        true
    );

    // A caller's token that was logged out no longer opens the door.
    app.logout("", &svc.access_token).await.unwrap();
    let status = as_caller(bearer(&svc.access_token)).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
}
