//! Sessions through the CLI: each login is a session with its origin; one or all can be ended.

use tonic::transport::Endpoint;

use crate::helpers::{PASSWORD, spawn_app};

// Multi-threaded: the test thread blocks on the CLI process while the server runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_are_listed_and_revoked_through_the_cli() {
    let app = spawn_app().await;
    app.add_user("alice", &[]).await;
    app.add_user("bob", &[]).await;
    // A client that names itself.
    let channel = Endpoint::from_shared(format!("http://{}", app.addr))
        .unwrap()
        .user_agent("walkthrough-app/1.0\t(test)")
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut named = authd::grpc::AuthServiceClient::new(channel);
    let request = authd::grpc::pb::TokenRequest {
        credential: Some(
            authd::grpc::pb::token_request::Credential::PasswordCredential(
                authd::grpc::pb::PasswordCredential {
                    username: "alice".into(),
                    password: PASSWORD.into(),
                },
            ),
        ),
    };
    let phone = named.token(request).await.unwrap().into_inner();
    let laptop = app.login("alice", PASSWORD).await.unwrap();
    let bobs = app.login("bob", PASSWORD).await.unwrap();
    app.refresh(&bobs.refresh_token).await.unwrap();

    let (ok, list, stderr) = app.cli(&["session", "list", "alice"]);
    assert!(ok, "{stderr}");
    let lines: Vec<&str> = list.lines().collect();
    assert_eq!(lines.len(), 3, "{list}");
    assert!(lines[0].starts_with("ID"));
    assert!(list.contains("127.0.0.1"), "{list}");
    assert!(list.contains("walkthrough-app/1.0"), "{list}");
    assert!(!list.contains('\t'), "control characters are dropped");
    assert!(!list.contains(&phone.refresh_token), "never a token");
    // Newest first: the laptop's session, then the phone's.
    let laptop_id = app
        .introspect(&laptop.refresh_token)
        .await
        .unwrap()
        .session_id;
    let phone_id = app
        .introspect(&phone.refresh_token)
        .await
        .unwrap()
        .session_id;
    assert!(lines[1].starts_with(&laptop_id), "{list}");
    assert!(lines[2].starts_with(&phone_id), "{list}");

    // Bob's session was refreshed: its last use is recorded.
    let bob_sessions = app.sessions().await.list("bob").await.unwrap();
    assert_eq!(bob_sessions.len(), 1);
    assert!(bob_sessions[0].last_used_at.is_some());

    let (ok, out, _) = app.cli(&["session", "revoke", &phone_id]);
    assert!(ok);
    assert_eq!(out.trim(), format!("revoked session {phone_id} of alice"));
    assert!(app.refresh(&phone.refresh_token).await.is_err());
    assert!(app.is_active(&laptop.refresh_token).await);
    let (_, list, _) = app.cli(&["session", "list", "alice"]);
    assert_eq!(list.lines().count(), 2, "{list}");

    let (ok, out, _) = app.cli(&["session", "revoke-all", "alice"]);
    assert!(ok);
    assert_eq!(out.trim(), "revoked 1 session(s) of alice");
    assert!(app.refresh(&laptop.refresh_token).await.is_err());
    let (_, list, _) = app.cli(&["session", "list", "alice"]);
    assert_eq!(list.lines().count(), 1, "only the header: {list}");
    // Bob is untouched.
    assert_eq!(app.sessions().await.list("bob").await.unwrap().len(), 1);

    // Errors: one line, exit 1.
    let (ok, out, err) = app.cli(&["session", "list", "nobody"]);
    assert!(!ok && out.is_empty());
    assert_eq!(err, "error: no user named \"nobody\"\n");
    let (ok, _, err) = app.cli(&["session", "revoke", "no-such-session"]);
    assert!(!ok);
    assert_eq!(err, "error: no session with id \"no-such-session\"\n");
}
