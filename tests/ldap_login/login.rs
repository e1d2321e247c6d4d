//! Directory logins over gRPC: roles in both membership modes, one refusal for every kind of
//! wrong credential, filter metacharacters, local users beside directory users, and the
//! password a directory user cannot change here.

use authd::grpc::account::AccountServiceClient;
use authd::grpc::admin::AdminServiceClient;
use authd::grpc::pb;
use authd::ldap::Membership;
use authd::service::AdminError;
use tonic::Code;
use tonic::transport::{Channel, Endpoint};

use crate::helpers::{PASSWORD as LOCAL_PASSWORD, TestApp, assert_unauthenticated};
use crate::slapd::{PASSWORD, Slapd};
use crate::{require_slapd, roles_of, spawn_with, spawn_with_directory};

const REFUSED: &str = "invalid username or password";

fn bearer<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
}

fn channel(app: &TestApp) -> Channel {
    Endpoint::from_shared(format!("http://{}", app.addr))
        .unwrap()
        .connect_lazy()
}

#[tokio::test(flavor = "multi_thread")]
async fn directory_users_log_in_with_roles_from_memberof() {
    require_slapd!();
    let slapd = Slapd::start(None).await;
    let (app, _) = spawn_with_directory(&slapd, Membership::MemberOf).await;

    let first = app.login("alice", PASSWORD).await.unwrap();
    let (_, claims) = app.verify(&first.access_token);
    assert_eq!(claims.roles, ["admin"]);
    assert_eq!(claims.preferred_username.as_deref(), Some("alice"));
    // The sub is the entry's entryUUID: the same at every login.
    assert_eq!(claims.sub.len(), 36, "{}", claims.sub);
    let again = app.login("alice", PASSWORD).await.unwrap();
    assert_eq!(app.verify(&again.access_token).1.sub, claims.sub);
    // A just-in-time row: the admin commands see the user.
    let user = app.admin().await.get("alice").await.unwrap();
    assert_eq!(user.id.as_str(), claims.sub);
    // Its session refreshes like any other.
    let refreshed = app.refresh(&first.refresh_token).await.unwrap();
    assert_eq!(roles_of(&app, &refreshed.access_token), ["admin"]);

    // bob is only in a groupOfUniqueNames, which memberOf does not cover: no mapped group,
    // refused like a wrong password.
    assert_unauthenticated(app.login("bob", PASSWORD).await, REFUSED);
    // carol is in no group at all.
    assert_unauthenticated(app.login("carol", PASSWORD).await, REFUSED);
}

#[tokio::test(flavor = "multi_thread")]
async fn directory_users_log_in_with_roles_from_a_group_search() {
    require_slapd!();
    let slapd = Slapd::start(None).await;
    let (app, _) = spawn_with_directory(&slapd, Membership::Search).await;
    let alice = app.login("alice", PASSWORD).await.unwrap();
    assert_eq!(roles_of(&app, &alice.access_token), ["admin", "viewer"]);
    let bob = app.login("BOB", PASSWORD).await.unwrap();
    let (_, claims) = app.verify(&bob.access_token);
    assert_eq!(claims.roles, ["viewer"]);
    assert_eq!(claims.preferred_username.as_deref(), Some("bob"));
    assert_unauthenticated(app.login("carol", PASSWORD).await, REFUSED);
    // Audited like a local login, naming the source.
    let events = app
        .admin()
        .await
        .audit_tail(Some("alice"), 10)
        .await
        .unwrap();
    let login = events
        .iter()
        .find(|e| e.kind.as_str() == "login_succeeded")
        .expect("a login event");
    assert_eq!(login.detail.as_deref(), Some("source=ldap"));
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_users_wrong_and_empty_passwords_get_the_local_answers() {
    require_slapd!();
    let slapd = Slapd::start(None).await;
    let (app, _) = spawn_with_directory(&slapd, Membership::Search).await;
    app.add_user("dave", &["reader"]).await;

    let unknown = app.login("mallory", PASSWORD).await.unwrap_err();
    let wrong = app
        .login("alice", "not the password at all")
        .await
        .unwrap_err();
    let local_wrong = app
        .login("dave", "not the password at all")
        .await
        .unwrap_err();
    for status in [&unknown, &wrong, &local_wrong] {
        assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
        assert_eq!(status.message(), REFUSED);
    }
    // An empty password is refused before any bind, as for local users.
    let empty = app.login("alice", "").await.unwrap_err();
    assert_eq!(empty.code(), Code::InvalidArgument);
    assert_eq!(empty.message(), "password is required");
    // The failures count against the name like local ones.
    let events = app
        .admin()
        .await
        .audit_tail(Some("alice"), 10)
        .await
        .unwrap();
    assert!(
        events.iter().any(|e| e.kind.as_str() == "login_failed"
            && e.detail
                .as_deref()
                .unwrap_or("")
                .contains("consecutive_failures=1")),
        "{events:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_empty_password_never_reaches_the_directory() {
    require_slapd!();
    let mut slapd = Slapd::start(None).await;
    let (app, _) = spawn_with_directory(&slapd, Membership::Search).await;
    // With the directory gone, a bind would be UNAVAILABLE: the refusal comes first.
    slapd.stop();
    let empty = app.login("alice", "").await.unwrap_err();
    assert_eq!(empty.code(), Code::InvalidArgument, "{empty:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn filter_metacharacters_in_usernames_match_nobody() {
    require_slapd!();
    let slapd = Slapd::start(None).await;
    let (app, _) = spawn_with_directory(&slapd, Membership::Search).await;
    for username in [
        "*",
        "a*",
        "alice)(uid=*",
        "*)(|(uid=*",
        "alice\0",
        "alice)",
        "(uid=alice)",
        "alice\\2a",
    ] {
        let status = app.login(username, PASSWORD).await.unwrap_err();
        assert_eq!(
            status.code(),
            Code::Unauthenticated,
            "{username:?}: {status:?}"
        );
        assert_eq!(status.message(), REFUSED, "{username:?}");
    }
    // No row was made for any of them.
    let users = app.admin().await.list().await.unwrap();
    assert!(users.is_empty(), "{users:?}");
    app.login("alice", PASSWORD).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn local_users_and_directory_users_coexist() {
    require_slapd!();
    let slapd = Slapd::start(None).await;
    let (app, _) = spawn_with_directory(&slapd, Membership::Search).await;
    app.add_user("dave", &["reader"]).await;
    // A local user holding a name the directory also has: the local row decides.
    app.add_user("bob", &["reader"]).await;

    let dave = app.login("dave", LOCAL_PASSWORD).await.unwrap();
    assert_eq!(roles_of(&app, &dave.access_token), ["reader"]);
    let alice = app.login("alice", PASSWORD).await.unwrap();
    assert_eq!(roles_of(&app, &alice.access_token), ["admin", "viewer"]);
    let bob = app.login("bob", LOCAL_PASSWORD).await.unwrap();
    assert_eq!(roles_of(&app, &bob.access_token), ["reader"]);
    assert_unauthenticated(app.login("bob", PASSWORD).await, REFUSED);
    // Both refresh.
    app.refresh(&dave.refresh_token).await.unwrap();
    app.refresh(&alice.refresh_token).await.unwrap();

    // With the directory first, a name it does not know still reaches the local users.
    let (ldap_first, _) = spawn_with(&slapd, Membership::Search, |c| {
        c.identity_sources = vec!["ldap".into(), "local".into()];
    })
    .await;
    ldap_first.add_user("dave", &["reader"]).await;
    ldap_first.login("dave", LOCAL_PASSWORD).await.unwrap();
    ldap_first.login("alice", PASSWORD).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_directory_users_password_cannot_be_set_here() {
    require_slapd!();
    let slapd = Slapd::start(None).await;
    let (app, _) = spawn_with_directory(&slapd, Membership::MemberOf).await;
    let alice = app.login("alice", PASSWORD).await.unwrap();
    let new_password = "a brand new long password";

    // The CLI's use case, and the command itself.
    let refused = app.admin().await.set_password("alice", new_password).await;
    assert!(
        matches!(refused, Err(AdminError::DirectoryUser(_))),
        "{refused:?}"
    );
    let database = app.config.database_url.clone();
    let out = tokio::task::spawn_blocking(move || {
        let mut cmd = crate::binary::authd(&database);
        cmd.args(["user", "set-password", "alice", "--password-stdin"]);
        crate::binary::run_with_stdin(cmd, "a brand new long password\n")
    })
    .await
    .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("comes from the directory"), "{stderr}");

    // The admin API (alice is an administrator through dcpower-users) and the account API.
    let mut admin = AdminServiceClient::new(channel(&app));
    let status = admin
        .set_user_password(bearer(
            pb::SetUserPasswordRequest {
                username: "alice".into(),
                password: new_password.into(),
            },
            &alice.access_token,
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert!(status.message().contains("directory"), "{status:?}");
    let mut account = AccountServiceClient::new(channel(&app));
    let status = account
        .change_password(bearer(
            pb::ChangePasswordRequest {
                current_password: PASSWORD.into(),
                new_password: new_password.into(),
            },
            &alice.access_token,
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    // Nothing changed: the directory password still works, the session still refreshes.
    app.refresh(&alice.refresh_token).await.unwrap();
    app.login("alice", PASSWORD).await.unwrap();
}
