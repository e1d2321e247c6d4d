//! Who may call `auth.v1.AdminService`: the authorisation matrix, generated from the service
//! descriptor so a new RPC cannot be added without it, over gRPC (every row) and over the
//! HTTP/JSON routes (generated from the `google.api.http` annotations); and a demoted admin.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use authd::domain::{ManualClock, Timestamp};
use authd::grpc::admin::AdminServiceClient;
use authd::grpc::pb;
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

/// Calls `/auth.v1.<service>/<method>` with a default request, as a server stream (which a
/// unary method answers alike), so streaming methods are in the matrix too: admitted means
/// the response headers came without an error status.
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
    grpc.server_streaming::<Empty, Empty, _>(request, path, tonic_prost::ProstCodec::default())
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

pub(crate) async fn access_token(app: &TestApp, username: &str) -> String {
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

pub(crate) fn admin_client(app: &TestApp) -> AdminServiceClient<Channel> {
    AdminServiceClient::new(
        Endpoint::from_shared(format!("http://{}", app.addr))
            .unwrap()
            .connect_lazy(),
    )
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
