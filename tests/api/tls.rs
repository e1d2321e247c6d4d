//! TLS and mTLS with certificates generated in the test (rcgen), and a certificate reload
//! that takes effect for new connections without dropping the service.

use std::path::{Path, PathBuf};
use std::time::Duration;

use authd::grpc::AuthServiceClient;
use authd::grpc::pb::{PasswordCredential, TokenRequest};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair,
};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use crate::helpers::{PASSWORD, TestApp, spawn_app_with};

/// A CA that can issue server and client certificates.
pub(crate) struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A certificate and its private key, in PEM.
pub(crate) struct Issued {
    pub(crate) cert: String,
    pub(crate) key: String,
}

impl TestCa {
    pub(crate) fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        Self { issuer }
    }

    pub(crate) fn pem(&self) -> String {
        self.issuer.pem()
    }

    pub(crate) fn issue(&self, name: &str, usage: ExtendedKeyUsagePurpose) -> Issued {
        let mut params = CertificateParams::new(vec![name.to_owned()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![usage];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Issued {
            cert: cert.pem(),
            key: key.serialize_pem(),
        }
    }

    pub(crate) fn server(&self) -> Issued {
        self.issue("localhost", ExtendedKeyUsagePurpose::ServerAuth)
    }
}

pub(crate) fn write(dir: &Path, name: &str, contents: &str) -> PathBuf {
    let path = dir.join(name);
    // Write-then-rename, as deployment tools do, so the server never reads half a file.
    let tmp = dir.join(format!("{name}.tmp"));
    std::fs::write(&tmp, contents).unwrap();
    std::fs::rename(&tmp, &path).unwrap();
    path
}

async fn tls_client(
    app: &TestApp,
    ca: &str,
    identity: Option<&Issued>,
) -> Result<AuthServiceClient<Channel>, tonic::transport::Error> {
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca))
        .domain_name("localhost");
    if let Some(id) = identity {
        tls = tls.identity(Identity::from_pem(&id.cert, &id.key));
    }
    let channel = Endpoint::from_shared(format!("https://{}", app.addr))
        .unwrap()
        .tls_config(tls)?
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await?;
    Ok(AuthServiceClient::new(channel))
}

async fn login(client: &mut AuthServiceClient<Channel>) -> Result<(), tonic::Status> {
    client
        .token(TokenRequest {
            credential: Some(
                authd::grpc::pb::token_request::Credential::PasswordCredential(
                    PasswordCredential {
                        username: "alice".into(),
                        password: PASSWORD.into(),
                    },
                ),
            ),
        })
        .await
        .map(|_| ())
}

/// Whether a fresh connection trusting `ca` (with `identity`) can log in.
async fn fresh_login_works(app: &TestApp, ca: &str, identity: Option<&Issued>) -> bool {
    match tls_client(app, ca, identity).await {
        Ok(mut client) => login(&mut client).await.is_ok(),
        Err(_) => false,
    }
}

async fn spawn_tls(
    dir: &Path,
    server: &Issued,
    client_ca: Option<&str>,
    reload: Duration,
) -> TestApp {
    let cert = write(dir, "cert.pem", &server.cert);
    let key = write(dir, "key.pem", &server.key);
    let client_ca = client_ca.map(|ca| write(dir, "client-ca.pem", ca));
    let app = spawn_app_with(|c| {
        c.tls_cert = Some(cert);
        c.tls_key = Some(key);
        c.tls_client_ca = client_ca;
        c.tls_reload_interval = reload;
    })
    .await;
    app.add_user("alice", &[]).await;
    app
}

#[tokio::test]
async fn tls_serves_logins_and_refuses_plaintext_and_untrusted_clients() {
    let files = tempfile::tempdir().unwrap();
    let ca = TestCa::new("authd test ca");
    let app = spawn_tls(files.path(), &ca.server(), None, Duration::from_secs(60)).await;

    assert!(fresh_login_works(&app, &ca.pem(), None).await);
    // The client address is known behind TLS too.
    let events = app
        .admin()
        .await
        .audit_tail(Some("alice"), 1)
        .await
        .unwrap();
    assert_eq!(events[0].source.as_deref(), Some("127.0.0.1"));
    // Plaintext HTTP/2 to the TLS port fails.
    assert!(app.login("alice", PASSWORD).await.is_err());
    // A client that trusts another CA refuses the server.
    let other = TestCa::new("other ca");
    assert!(!fresh_login_works(&app, &other.pem(), None).await);
}

#[tokio::test]
async fn mtls_requires_a_client_certificate_from_the_configured_ca() {
    let files = tempfile::tempdir().unwrap();
    let server_ca = TestCa::new("server ca");
    let client_ca = TestCa::new("client ca");
    let app = spawn_tls(
        files.path(),
        &server_ca.server(),
        Some(&client_ca.pem()),
        Duration::from_secs(60),
    )
    .await;
    let good = client_ca.issue("service-a", ExtendedKeyUsagePurpose::ClientAuth);
    let rogue = TestCa::new("rogue ca").issue("service-a", ExtendedKeyUsagePurpose::ClientAuth);

    assert!(!fresh_login_works(&app, &server_ca.pem(), None).await);
    assert!(!fresh_login_works(&app, &server_ca.pem(), Some(&rogue)).await);
    assert!(fresh_login_works(&app, &server_ca.pem(), Some(&good)).await);
}

#[tokio::test]
async fn replaced_certificate_is_served_to_new_connections_and_old_ones_carry_on() {
    let files = tempfile::tempdir().unwrap();
    let first_ca = TestCa::new("first ca");
    let app = spawn_tls(
        files.path(),
        &first_ca.server(),
        None,
        Duration::from_millis(100),
    )
    .await;
    let mut established = tls_client(&app, &first_ca.pem(), None).await.unwrap();
    login(&mut established).await.unwrap();

    let second_ca = TestCa::new("second ca");
    let second = second_ca.server();
    write(files.path(), "key.pem", &second.key);
    write(files.path(), "cert.pem", &second.cert);

    // The watcher polls every 100 ms; wait (bounded) until a new connection sees the new
    // certificate.
    let mut reloaded = false;
    for _ in 0..100 {
        if fresh_login_works(&app, &second_ca.pem(), None).await {
            reloaded = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(reloaded, "the new certificate was never served");
    assert!(!fresh_login_works(&app, &first_ca.pem(), None).await);
    // The connection made before the reload was not dropped.
    login(&mut established).await.unwrap();
}

#[tokio::test]
async fn a_broken_replacement_keeps_the_current_certificate() {
    let files = tempfile::tempdir().unwrap();
    let ca = TestCa::new("ca");
    let app = spawn_tls(files.path(), &ca.server(), None, Duration::from_secs(60)).await;
    let tls = app.tls.clone().unwrap();
    write(files.path(), "cert.pem", "not a certificate");
    assert!(tls.reload_if_changed().is_err());
    assert!(fresh_login_works(&app, &ca.pem(), None).await);
    let replacement = ca.server();
    write(files.path(), "cert.pem", &replacement.cert);
    write(files.path(), "key.pem", &replacement.key);
    assert!(tls.reload_if_changed().unwrap());
    assert!(
        !tls.reload_if_changed().unwrap(),
        "unchanged files are not reloaded"
    );
    assert!(fresh_login_works(&app, &ca.pem(), None).await);
}

#[tokio::test]
async fn http_side_port_is_served_over_tls_too() {
    let files = tempfile::tempdir().unwrap();
    let ca = TestCa::new("authd test ca");
    let app = spawn_tls(files.path(), &ca.server(), None, Duration::from_secs(60)).await;
    let port = app.http.rsplit(':').next().unwrap().to_owned();
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ca.pem().as_bytes()).unwrap())
        .build()
        .unwrap();
    let jwks = client
        .get(format!("https://localhost:{port}/.well-known/jwks.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(jwks.status(), 200);
    let body: serde_json::Value = serde_json::from_str(&jwks.text().await.unwrap()).unwrap();
    assert!(!body["keys"].as_array().unwrap().is_empty());
    // Plain HTTP to the TLS port gets no answer.
    assert!(reqwest::get(format!("{}/healthz", app.http)).await.is_err());
    // A client trusting another CA refuses the server.
    let other = TestCa::new("other ca");
    let untrusting = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(other.pem().as_bytes()).unwrap())
        .build()
        .unwrap();
    assert!(
        untrusting
            .get(format!("https://localhost:{port}/healthz"))
            .send()
            .await
            .is_err()
    );
}

/// TLS and mTLS settings apply to every listener: the management listener too.
#[tokio::test]
async fn management_listener_is_served_over_tls_and_mtls_too() {
    let files = tempfile::tempdir().unwrap();
    let ca = TestCa::new("authd test ca");
    let clients = TestCa::new("authd client ca");
    let app = spawn_tls(
        files.path(),
        &ca.server(),
        Some(&clients.pem()),
        Duration::from_secs(60),
    )
    .await;
    let base = app.management.clone().unwrap();
    let port = base.rsplit(':').next().unwrap().to_owned();
    let url = format!("https://localhost:{port}/metrics");
    let trusting = || {
        reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(ca.pem().as_bytes()).unwrap())
    };
    // Without a client certificate from the client CA: no answer.
    assert!(trusting().build().unwrap().get(&url).send().await.is_err());
    let id = clients.issue("prometheus", ExtendedKeyUsagePurpose::ClientAuth);
    let identity =
        reqwest::Identity::from_pem(format!("{}{}", id.cert, id.key).as_bytes()).unwrap();
    let scraper = trusting().identity(identity).build().unwrap();
    let metrics = scraper.get(&url).send().await.unwrap();
    assert_eq!(metrics.status(), 200);
    // Plain HTTP to the TLS listener gets no answer.
    assert!(reqwest::get(format!("{base}/metrics")).await.is_err());
}
