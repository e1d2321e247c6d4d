//! `authd serve` as the README configures it for a directory: the environment form of the
//! reference configuration (`dcpower-users` → admin, `rogroup` → viewer), the bind password
//! in a file, and a login over gRPC.

use authd::grpc::AuthServiceClient;
use authd::grpc::pb::{PasswordCredential, TokenRequest, token_request::Credential};

use crate::binary::{Server, authd};
use crate::require_slapd;
use crate::slapd::{ADMIN_DN, ADMIN_PASSWORD, PASSWORD, Slapd};

#[tokio::test(flavor = "multi_thread")]
async fn serve_configured_from_the_environment_logs_directory_users_in() {
    require_slapd!();
    let slapd = Slapd::start(None).await;
    let dir = tempfile::tempdir().unwrap();
    let password_file = dir.path().join("ldap-password");
    std::fs::write(&password_file, format!("{ADMIN_PASSWORD}\n")).unwrap();
    let database = format!("sqlite://{}", dir.path().join("authd.db").display());
    let mut cmd = authd(&database);
    cmd.args(["serve", "--grpc-addr", "127.0.0.1:0"])
        .env("AUTHD_IDENTITY_SOURCES", "local,ldap")
        // The first URL is down: failover to the second.
        .env(
            "AUTHD_LDAP_URL",
            format!("ldap://127.0.0.1:1,{}", slapd.url()),
        )
        .env("AUTHD_LDAP_BIND_DN", ADMIN_DN)
        .env("AUTHD_LDAP_BIND_PASSWORD_FILE", &password_file)
        .env("AUTHD_LDAP_USER_BASE", "ou=people,dc=example,dc=org")
        .env("AUTHD_LDAP_GROUP_BASE", "ou=groups,dc=example,dc=org")
        .env("AUTHD_LDAP_MEMBERSHIP", "search")
        .env("AUTHD_LDAP_ROLE_MAP", "dcpower-users=admin,rogroup=viewer")
        .env("AUTHD_LDAP_RECHECK_INTERVAL", "1m");
    let server = tokio::task::spawn_blocking(move || Server::start(cmd))
        .await
        .unwrap();
    let mut client = AuthServiceClient::connect(format!("http://{}", server.addr))
        .await
        .unwrap();
    let login = |username: &str| TokenRequest {
        credential: Some(Credential::PasswordCredential(PasswordCredential {
            username: username.into(),
            password: PASSWORD.into(),
        })),
    };
    let alice = client.token(login("alice")).await.unwrap().into_inner();
    // (The signature is the other tests' business: here, what the token says.)
    let payload = alice.access_token.split('.').nth(1).unwrap();
    let payload =
        base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, payload).unwrap();
    let claims: serde_json::Value = serde_json::from_slice(&payload).unwrap();
    assert_eq!(claims["roles"], serde_json::json!(["admin", "viewer"]));
    let carol = client.token(login("carol")).await.unwrap_err();
    assert_eq!(carol.code(), tonic::Code::Unauthenticated);
}
