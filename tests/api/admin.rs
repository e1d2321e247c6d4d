//! `auth.v1.AdminService` end to end: who may call it (the matrix, generated from the
//! service descriptor), each RPC, paging, audit and concurrent changes.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use authd::domain::{ManualClock, Timestamp, User, UserId, Username};
use authd::grpc::admin::AdminServiceClient;
use authd::grpc::pb;
use authd::store::NewUser;
use rcgen::ExtendedKeyUsagePurpose;
use tonic::Code;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use crate::helpers::{PASSWORD, TestApp, spawn_app, spawn_on_with_clock, test_config};
use crate::tls::{Issued, TestCa, write};

/// Just enough of `google.protobuf.FileDescriptorSet` to list services and their methods.
#[derive(Clone, PartialEq, prost::Message)]
struct FileSet {
    #[prost(message, repeated, tag = "1")]
    file: Vec<FileProto>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct FileProto {
    #[prost(string, tag = "2")]
    package: String,
    #[prost(message, repeated, tag = "6")]
    service: Vec<ServiceProto>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct ServiceProto {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(message, repeated, tag = "2")]
    method: Vec<MethodProto>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct MethodProto {
    #[prost(string, tag = "1")]
    name: String,
}

/// Every method of `auth.v1.<service>`, from the descriptor set the server reflects.
pub(crate) fn methods_of(service: &str) -> Vec<String> {
    let set = <FileSet as prost::Message>::decode(authd::grpc::pb::FILE_DESCRIPTOR_SET).unwrap();
    let methods: Vec<String> = set
        .file
        .iter()
        .filter(|f| f.package == "auth.v1")
        .flat_map(|f| &f.service)
        .filter(|s| s.name == service)
        .flat_map(|s| s.method.iter().map(|m| m.name.clone()))
        .collect();
    assert!(!methods.is_empty(), "{service} has methods");
    methods
}

/// One row of the matrix: who calls, over which channel, with which token, and what must
/// happen.
type Row<'a> = (
    &'a str,
    Channel,
    Option<&'a str>,
    &'a dyn Fn(&Result<(), tonic::Status>) -> bool,
);

/// An empty message: it decodes as the default of every request type.
#[derive(Clone, PartialEq, prost::Message)]
struct Empty {}

/// Calls `/auth.v1.<service>/<method>` with a default request.
pub(crate) async fn call_raw(
    channel: Channel,
    service: &str,
    method: &str,
    bearer: Option<&str>,
) -> Result<(), tonic::Status> {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let path = http::uri::PathAndQuery::from_str(&format!("/auth.v1.{service}/{method}")).unwrap();
    let mut request = tonic::Request::new(Empty {});
    if let Some(token) = bearer {
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
    }
    grpc.unary::<Empty, Empty, _>(request, path, tonic_prost::ProstCodec::default())
        .await
        .map(|_| ())
}

pub(crate) fn with_bearer<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
}

async fn tls_channel(app: &TestApp, ca: &str, identity: &Issued) -> Channel {
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca))
        .domain_name("localhost")
        .identity(Identity::from_pem(&identity.cert, &identity.key));
    Endpoint::from_shared(format!("https://{}", app.addr))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect()
        .await
        .unwrap()
}

async fn access_token(app: &TestApp, username: &str) -> String {
    app.login(username, PASSWORD).await.unwrap().access_token
}

#[tokio::test(flavor = "multi_thread")]
async fn every_admin_rpc_admits_only_active_admins_and_listed_client_certificates() {
    let files = tempfile::tempdir().unwrap();
    let ca = TestCa::new("authd test ca");
    let client_ca = TestCa::new("client ca");
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let mut config = test_config(&dir);
    let server = ca.server();
    config.tls_cert = Some(write(files.path(), "cert.pem", &server.cert));
    config.tls_key = Some(write(files.path(), "key.pem", &server.key));
    config.tls_client_ca = Some(write(files.path(), "client-ca.pem", &client_ca.pem()));
    config.admin_client_subjects = vec!["CN=ops-console".into()];
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    let clock = ManualClock::new(Timestamp::from_unix_millis(
        i64::try_from(now.as_millis()).unwrap(),
    ));
    let app = spawn_on_with_clock(dir, config.clone(), Arc::new(clock.clone())).await;
    app.add_user("root", &["admin"]).await;
    app.add_user("bob", &["reader"]).await;
    app.add_user("ghost", &["admin"]).await;

    let service_cert = client_ca.issue("service-a", ExtendedKeyUsagePurpose::ClientAuth);
    let ops_cert = client_ca.issue("ops-console", ExtendedKeyUsagePurpose::ClientAuth);
    let channel = tls_channel(&app, &ca.pem(), &service_cert).await;
    let ops = tls_channel(&app, &ca.pem(), &ops_cert).await;

    let login = |username: &'static str| {
        let channel = channel.clone();
        async move {
            let mut client = authd::grpc::AuthServiceClient::new(channel);
            client
                .token(pb::TokenRequest {
                    credential: Some(pb::token_request::Credential::PasswordCredential(
                        pb::PasswordCredential {
                            username: username.into(),
                            password: PASSWORD.into(),
                        },
                    )),
                })
                .await
                .unwrap()
                .into_inner()
                .access_token
        }
    };
    let expired = login("root").await;
    // Past exp and the clock_skew leeway (issue 16).
    clock.advance(config.access_token_ttl + config.clock_skew + Duration::from_secs(1));
    let admin = login("root").await;
    let non_admin = login("bob").await;
    let disabled = login("ghost").await;
    app.admin().await.set_enabled("ghost", false).await.unwrap();

    let refused =
        |code: Code| move |r: &Result<(), tonic::Status>| matches!(r, Err(s) if s.code() == code);
    let admitted = |r: &Result<(), tonic::Status>| !matches!(r, Err(s) if matches!(s.code(), Code::Unauthenticated | Code::PermissionDenied));
    for method in methods_of("AdminService") {
        let rows: [Row<'_>; 6] = [
            (
                "no token",
                channel.clone(),
                None,
                &refused(Code::Unauthenticated),
            ),
            (
                "expired token",
                channel.clone(),
                Some(&expired),
                &refused(Code::Unauthenticated),
            ),
            (
                "non-admin",
                channel.clone(),
                Some(&non_admin),
                &refused(Code::PermissionDenied),
            ),
            (
                "disabled admin",
                channel.clone(),
                Some(&disabled),
                &refused(Code::Unauthenticated),
            ),
            ("admin", channel.clone(), Some(&admin), &admitted),
            ("mTLS subject", ops.clone(), None, &admitted),
        ];
        for (row, channel, bearer, expect) in rows {
            let result = call_raw(channel, "AdminService", &method, bearer).await;
            assert!(expect(&result), "{method} as {row}: {result:?}");
        }
    }
}

fn admin_client(app: &TestApp) -> AdminServiceClient<Channel> {
    AdminServiceClient::new(
        Endpoint::from_shared(format!("http://{}", app.addr))
            .unwrap()
            .connect_lazy(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn admin_manages_users_sessions_api_keys_and_signing_keys_and_every_change_is_audited() {
    let app = spawn_app().await;
    app.add_user("root", &["admin"]).await;
    let token = access_token(&app, "root").await;
    let mut admin = admin_client(&app);

    let created = admin
        .create_user(with_bearer(
            pb::CreateUserRequest {
                username: "carol".into(),
                password: PASSWORD.into(),
                roles: vec!["reader".into()],
            },
            &token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(created.username, "carol");
    assert_eq!(created.roles, ["reader"]);
    let duplicate = admin
        .create_user(with_bearer(
            pb::CreateUserRequest {
                username: "carol".into(),
                password: PASSWORD.into(),
                roles: vec![],
            },
            &token,
        ))
        .await
        .unwrap_err();
    assert_eq!(duplicate.code(), Code::AlreadyExists);
    let weak = admin
        .create_user(with_bearer(
            pb::CreateUserRequest {
                username: "dave".into(),
                password: "short".into(),
                roles: vec![],
            },
            &token,
        ))
        .await
        .unwrap_err();
    assert_eq!(weak.code(), Code::InvalidArgument, "{weak:?}");

    let got = admin
        .get_user(with_bearer(
            pb::GetUserRequest {
                username: "carol".into(),
            },
            &token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.id, created.id);
    let missing = admin
        .get_user(with_bearer(
            pb::GetUserRequest {
                username: "nobody".into(),
            },
            &token,
        ))
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);

    let changed = admin
        .update_user_roles(with_bearer(
            pb::UpdateUserRolesRequest {
                username: "carol".into(),
                add: vec!["writer".into()],
                remove: vec!["reader".into()],
            },
            &token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(changed.roles, ["writer"]);

    // A session of carol's, listed and ended by the admin.
    let tokens = app.login("carol", PASSWORD).await.unwrap();
    let sessions = admin
        .list_sessions(with_bearer(
            pb::ListSessionsRequest {
                username: "carol".into(),
                ..Default::default()
            },
            &token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(sessions.sessions.len(), 1);
    assert!(sessions.next_page_token.is_empty());
    admin
        .revoke_session(with_bearer(
            pb::RevokeSessionRequest {
                id: sessions.sessions[0].id.clone(),
            },
            &token,
        ))
        .await
        .unwrap();
    assert!(app.refresh(&tokens.refresh_token).await.is_err());
    app.login("carol", PASSWORD).await.unwrap();
    let ended = admin
        .revoke_user_sessions(with_bearer(
            pb::RevokeUserSessionsRequest {
                username: "carol".into(),
            },
            &token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ended.revoked, 1);

    // API keys: the secret once, then listed without it, then revoked.
    let key = admin
        .create_api_key(with_bearer(
            pb::CreateApiKeyRequest {
                username: "carol".into(),
                name: "ci".into(),
                roles: vec![],
                expires_in_seconds: 3600,
            },
            &token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(app.api_key_login(&key.secret).await.is_ok());
    let listed = admin
        .list_api_keys(with_bearer(pb::ListApiKeysRequest::default(), &token))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.keys.len(), 1);
    assert_eq!(listed.keys[0].roles, ["writer"]);
    assert!(!format!("{listed:?}").contains(&key.secret));
    let foreign_role = admin
        .create_api_key(with_bearer(
            pb::CreateApiKeyRequest {
                username: "carol".into(),
                name: "x".into(),
                roles: vec!["admin".into()],
                expires_in_seconds: 0,
            },
            &token,
        ))
        .await
        .unwrap_err();
    assert_eq!(foreign_role.code(), Code::InvalidArgument);
    let key_id = key.key.unwrap().id;
    admin
        .revoke_api_key(with_bearer(
            pb::RevokeApiKeyRequest { id: key_id.clone() },
            &token,
        ))
        .await
        .unwrap();
    assert!(app.api_key_login(&key.secret).await.is_err());

    // Password, disabling, unlocking, deleting.
    admin
        .set_user_password(with_bearer(
            pb::SetUserPasswordRequest {
                username: "carol".into(),
                password: "an entirely new passphrase".into(),
            },
            &token,
        ))
        .await
        .unwrap();
    assert!(
        app.login("carol", "an entirely new passphrase")
            .await
            .is_ok()
    );
    let disabled = admin
        .set_user_enabled(with_bearer(
            pb::SetUserEnabledRequest {
                username: "carol".into(),
                enabled: false,
            },
            &token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(!disabled.enabled);
    let unlocked = admin
        .unlock_user(with_bearer(
            pb::UnlockUserRequest {
                username: "carol".into(),
            },
            &token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(!unlocked.cleared);
    admin
        .delete_user(with_bearer(
            pb::DeleteUserRequest {
                username: "carol".into(),
            },
            &token,
        ))
        .await
        .unwrap();

    // Signing keys.
    let keys = admin
        .list_signing_keys(with_bearer(pb::ListSigningKeysRequest {}, &token))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(keys.keys.len(), 1);
    assert_eq!(keys.keys[0].state, "active");
    let rotated = admin
        .rotate_signing_key(with_bearer(pb::RotateSigningKeyRequest {}, &token))
        .await
        .unwrap()
        .into_inner();
    assert!(rotated.scheduled);
    let keys = admin
        .list_signing_keys(with_bearer(pb::ListSigningKeysRequest {}, &token))
        .await
        .unwrap()
        .into_inner();
    assert!(
        keys.keys
            .iter()
            .any(|k| k.kid == rotated.kid && k.state == "pending")
    );

    // Every change names the acting admin and the client's address.
    let events = admin
        .query_audit(with_bearer(
            pb::QueryAuditRequest {
                username: String::new(),
                limit: 1000,
            },
            &token,
        ))
        .await
        .unwrap()
        .into_inner()
        .events;
    for kind in [
        "user_created",
        "user_changed",
        "family_revoked",
        "api_key_created",
        "api_key_revoked",
        "password_changed",
        "user_disabled",
        "user_unlocked",
        "user_deleted",
        "key_rotated",
    ] {
        let event = events
            .iter()
            .find(|e| e.event_type == kind && e.detail.starts_with("by=user:root"))
            .unwrap_or_else(|| panic!("no {kind} by root in {events:#?}"));
        assert_eq!(event.source, "127.0.0.1", "{event:?}");
    }
    assert!(!format!("{events:?}").contains(&key.secret));
}

#[tokio::test(flavor = "multi_thread")]
async fn paging_over_a_thousand_users_returns_each_exactly_once() {
    let app = spawn_app().await;
    app.add_user("root", &["admin"]).await;
    let store = authd::store::open(&app.config.database_url).await.unwrap();
    for i in 0..1000 {
        let user = User {
            id: UserId::generate(),
            username: Username::parse(&format!("user{i:04}")).unwrap(),
            roles: if i % 10 == 0 {
                vec![authd::domain::Role::parse("ops").unwrap()]
            } else {
                vec![]
            },
            enabled: true,
            created_at: Timestamp::from_unix_millis(0),
        };
        store
            .create_user(&NewUser {
                user,
                password_hash: "not a hash".into(),
            })
            .await
            .unwrap();
    }
    let token = access_token(&app, "root").await;
    let mut admin = admin_client(&app);
    let walk = |filter: pb::ListUsersRequest| {
        let mut admin = admin.clone();
        let token = token.clone();
        async move {
            let mut seen = Vec::new();
            let mut page_token = String::new();
            loop {
                let page = admin
                    .list_users(with_bearer(
                        pb::ListUsersRequest {
                            page_size: 37,
                            page_token: page_token.clone(),
                            ..filter.clone()
                        },
                        &token,
                    ))
                    .await
                    .unwrap()
                    .into_inner();
                assert!(page.users.len() <= 37);
                seen.extend(page.users.into_iter().map(|u| u.username));
                if page.next_page_token.is_empty() {
                    return seen;
                }
                page_token = page.next_page_token;
            }
        }
    };
    let all = walk(pb::ListUsersRequest::default()).await;
    assert_eq!(all.len(), 1001);
    let unique: std::collections::BTreeSet<&String> = all.iter().collect();
    assert_eq!(unique.len(), 1001);
    let ops = walk(pb::ListUsersRequest {
        role: "ops".into(),
        ..Default::default()
    })
    .await;
    assert_eq!(ops.len(), 100);
    let prefixed = walk(pb::ListUsersRequest {
        name_prefix: "user09".into(),
        ..Default::default()
    })
    .await;
    assert_eq!(prefixed.len(), 100);
    let bad = admin
        .list_users(with_bearer(
            pb::ListUsersRequest {
                page_token: "not base64!".into(),
                ..Default::default()
            },
            &token,
        ))
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_role_changes_lose_no_update() {
    let app = spawn_app().await;
    app.add_user("root", &["admin"]).await;
    app.add_user("erin", &[]).await;
    let token = access_token(&app, "root").await;
    let admin = admin_client(&app);
    let changes = (0..16).map(|i| {
        let mut admin = admin.clone();
        let token = token.clone();
        tokio::spawn(async move {
            admin
                .update_user_roles(with_bearer(
                    pb::UpdateUserRolesRequest {
                        username: "erin".into(),
                        add: vec![format!("role{i:02}")],
                        remove: vec![],
                    },
                    &token,
                ))
                .await
                .unwrap();
        })
    });
    for change in futures::future::join_all(changes).await {
        change.unwrap();
    }
    let mut admin = admin;
    let erin = admin
        .get_user(with_bearer(
            pb::GetUserRequest {
                username: "erin".into(),
            },
            &token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(erin.roles.len(), 16, "{:?}", erin.roles);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_demoted_admin_is_refused_at_once() {
    let app = spawn_app().await;
    app.add_user("root", &["admin"]).await;
    let token = access_token(&app, "root").await;
    let mut admin = admin_client(&app);
    admin
        .list_users(with_bearer(pb::ListUsersRequest::default(), &token))
        .await
        .unwrap();
    app.admin()
        .await
        .change_roles("root", &[], &["admin".into()])
        .await
        .unwrap();
    let refused = admin
        .list_users(with_bearer(pb::ListUsersRequest::default(), &token))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
}
