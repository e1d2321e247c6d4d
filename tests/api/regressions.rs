//! Regressions found by fuzzing (FUZZING.md), one test per finding, named after it.

use authd::grpc::account::AccountServiceClient;
use authd::grpc::pb;
use tonic::Code;
use tonic::transport::Endpoint;

use crate::admin_authz::with_bearer;
use crate::helpers::{PASSWORD, spawn_app};

/// Issue 23, `grpc_requests`: ChangePassword with the right current password and a new one
/// the policy refuses answered INVALID_ARGUMENT after logging in with the current one, so
/// the refused request left a new session (and its login audit event) behind.
#[tokio::test(flavor = "multi_thread")]
async fn change_password_refusing_the_new_password_starts_no_session() {
    let app = spawn_app().await;
    app.add_user("alice", &[]).await;
    let token = app.login("alice", PASSWORD).await.unwrap().access_token;
    let mut account = AccountServiceClient::new(
        Endpoint::from_shared(format!("http://{}", app.addr))
            .unwrap()
            .connect_lazy(),
    );
    let audited = app
        .admin()
        .await
        .audit_tail(Some("alice"), 100)
        .await
        .unwrap()
        .len();

    for refused in ["", "short"] {
        let status = account
            .change_password(with_bearer(
                pb::ChangePasswordRequest {
                    current_password: PASSWORD.into(),
                    new_password: refused.into(),
                },
                &token,
            ))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{refused:?}");
    }

    let sessions = app.sessions().await.list("alice").await.unwrap();
    assert_eq!(sessions.len(), 1, "a refused change started a session");
    let events = app.admin().await.audit_tail(Some("alice"), 100).await;
    assert_eq!(
        events.unwrap().len(),
        audited,
        "a refused change was audited as a login"
    );
}
