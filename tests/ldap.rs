//! LDAP as an identity source (issue 19), against a real OpenLDAP server (`slapd`, started by
//! the test on a free port): the directory client authd's login uses, and `authd ldap test`.
//! Skipped, with the reason printed, where slapd is not installed; `.ci/run` installs it.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on the unexpected

#[path = "support/binary.rs"]
mod binary;
#[path = "support/slapd.rs"]
mod slapd;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use authd::ldap::{BindPassword, Directory, DirectoryError, LdapSettings, Membership};
use slapd::{ADMIN_DN, ADMIN_PASSWORD, PASSWORD, Slapd, TlsFiles};

macro_rules! require_slapd {
    () => {
        if let Some(why) = slapd::unavailable() {
            eprintln!("skipped: {why}");
            return;
        }
    };
}

fn settings(urls: &[String], membership: Membership) -> LdapSettings {
    LdapSettings {
        url: urls.to_vec(),
        bind_dn: ADMIN_DN.into(),
        bind_password: Some(BindPassword::new(ADMIN_PASSWORD)),
        user_base: "ou=people,dc=example,dc=org".into(),
        group_base: "ou=groups,dc=example,dc=org".into(),
        membership,
        role_map: BTreeMap::from([
            ("dcpower-users".into(), "admin".into()),
            ("rogroup".into(), "viewer".into()),
        ]),
        timeout: Duration::from_secs(2),
        ..LdapSettings::default()
    }
}

fn directory(slapd: &Slapd, membership: Membership) -> Directory {
    Directory::new(settings(&[slapd.url()], membership)).unwrap()
}

fn refused(result: Result<authd::ldap::DirectoryUser, DirectoryError>) -> String {
    match result {
        Err(e @ DirectoryError::InvalidCredentials) => e.to_string(),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn directory_users_log_in_with_roles_from_both_kinds_of_membership() {
    require_slapd!();
    let slapd = Slapd::start(None).await;

    // memberOf (kept by the overlay for groupOfNames): alice is in dcpower-users.
    let by_attribute = directory(&slapd, Membership::MemberOf);
    let alice = by_attribute.authenticate("alice", PASSWORD).await.unwrap();
    assert_eq!(alice.roles, ["admin"]);
    assert_eq!(alice.dn, slapd::user_dn("alice"));
    assert_eq!(alice.id.len(), 36, "entryUUID: {}", alice.id);
    // bob is only in a groupOfUniqueNames, which memberOf does not cover: no mapped group.
    refused(by_attribute.authenticate("bob", PASSWORD).await);

    // A search over groupOfNames and groupOfUniqueNames finds both groups.
    let by_search = directory(&slapd, Membership::Search);
    let alice_again = by_search.authenticate("alice", PASSWORD).await.unwrap();
    assert_eq!(alice_again.roles, ["admin", "viewer"]);
    assert_eq!(alice_again.id, alice.id, "the id is stable");
    let bob = by_search.authenticate("bob", PASSWORD).await.unwrap();
    assert_eq!(bob.roles, ["viewer"]);
    // carol is in no group at all.
    refused(by_search.authenticate("carol", PASSWORD).await);
}

#[tokio::test]
async fn unknown_users_wrong_and_empty_passwords_get_one_answer() {
    require_slapd!();
    let slapd = Slapd::start(None).await;
    let directory = directory(&slapd, Membership::Search);
    let unknown = refused(directory.authenticate("mallory", PASSWORD).await);
    let wrong = refused(directory.authenticate("alice", "not the password").await);
    let empty = refused(directory.authenticate("alice", "").await);
    assert_eq!(unknown, wrong);
    assert_eq!(wrong, empty);

    // An empty password is refused before anything is sent: even with no directory at all.
    let nowhere = Directory::new(settings(
        &["ldap://127.0.0.1:1".to_owned()],
        Membership::Search,
    ))
    .unwrap();
    refused(nowhere.authenticate("alice", "").await);
}

#[tokio::test]
async fn filter_metacharacters_in_usernames_match_nobody() {
    require_slapd!();
    let slapd = Slapd::start(None).await;
    let directory = directory(&slapd, Membership::Search);
    for username in [
        "*",
        "a*",
        "alice)(uid=*",
        "*)(|(uid=*",
        "alice\0",
        "alice)",
        "(uid=alice)",
    ] {
        assert!(
            directory.lookup(username).await.unwrap().is_none(),
            "{username:?} matched an entry"
        );
        refused(directory.authenticate(username, PASSWORD).await);
    }
    // The escaping leaves real names alone.
    assert!(directory.lookup("alice").await.unwrap().is_some());
}

#[tokio::test]
async fn the_second_url_serves_when_the_first_is_down() {
    require_slapd!();
    let slapd = Slapd::start(None).await;
    let dead = "ldap://127.0.0.1:1".to_owned();
    let directory = Directory::new(settings(&[dead, slapd.url()], Membership::Search)).unwrap();
    let alice = directory.authenticate("alice", PASSWORD).await.unwrap();
    assert_eq!(alice.roles, ["admin", "viewer"]);
}

#[tokio::test]
async fn a_stopped_directory_is_unavailable_within_the_timeout_and_comes_back() {
    require_slapd!();
    let mut slapd = Slapd::start(None).await;
    let directory = directory(&slapd, Membership::Search);
    directory.authenticate("alice", PASSWORD).await.unwrap();

    slapd.stop();
    let started = Instant::now();
    let down = directory.authenticate("alice", PASSWORD).await;
    assert!(
        matches!(down, Err(DirectoryError::Unavailable(_))),
        "{down:?}"
    );
    // The configured timeout is 2 s (plus one retry on a fresh connection).
    assert!(started.elapsed() < Duration::from_secs(10));

    slapd.launch().await;
    let back = directory.authenticate("alice", PASSWORD).await.unwrap();
    assert_eq!(back.roles, ["admin", "viewer"]);
}

#[tokio::test]
async fn a_user_taken_out_of_their_group_can_no_longer_log_in() {
    require_slapd!();
    let slapd = Slapd::start(None).await;
    let directory = directory(&slapd, Membership::MemberOf);
    assert!(
        directory
            .lookup("alice")
            .await
            .unwrap()
            .unwrap()
            .may_log_in()
    );
    slapd.remove_from_group("alice", "dcpower-users").await;
    let alice = directory.lookup("alice").await.unwrap().unwrap();
    assert!(alice.roles.is_empty());
    assert!(!alice.may_log_in());
    refused(directory.authenticate("alice", PASSWORD).await);
}

#[tokio::test]
async fn start_tls_verifies_the_directory_against_the_configured_ca() {
    require_slapd!();
    let dir = tempfile::tempdir().unwrap();
    let (ca_pem, cert_pem, key_pem) = test_ca_and_server_certificate();
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let ca = write("ca.pem", &ca_pem);
    let tls = TlsFiles {
        cert: write("cert.pem", &cert_pem),
        key: write("key.pem", &key_pem),
    };
    let slapd = Slapd::start(Some(tls)).await;

    let with_ca = LdapSettings {
        start_tls: true,
        ca_file: Some(ca),
        ..settings(&[slapd.url()], Membership::Search)
    };
    let alice = Directory::new(with_ca)
        .unwrap()
        .authenticate("alice", PASSWORD)
        .await
        .unwrap();
    assert_eq!(alice.roles, ["admin", "viewer"]);

    // Without the CA, the certificate does not verify: no password is sent.
    let without_ca = LdapSettings {
        start_tls: true,
        ..settings(&[slapd.url()], Membership::Search)
    };
    let refused = Directory::new(without_ca)
        .unwrap()
        .authenticate("alice", PASSWORD)
        .await;
    assert!(
        matches!(refused, Err(DirectoryError::Unavailable(_))),
        "{refused:?}"
    );
}

/// `authd ldap test` as an operator runs it, configured through `AUTHD_LDAP_*`.
#[tokio::test]
async fn ldap_test_shows_the_user_groups_and_roles() {
    require_slapd!();
    let slapd = Slapd::start(None).await;
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}", dir.path().join("authd.db").display());
    let url = slapd.url();
    let command = move |args: &[&str]| {
        let mut cmd = binary::authd(&database);
        cmd.args(args)
            .env("AUTHD_IDENTITY_SOURCES", "local,ldap")
            .env("AUTHD_LDAP_URL", &url)
            .env("AUTHD_LDAP_BIND_DN", ADMIN_DN)
            .env("AUTHD_LDAP_BIND_PASSWORD", ADMIN_PASSWORD)
            .env("AUTHD_LDAP_USER_BASE", "ou=people,dc=example,dc=org")
            .env("AUTHD_LDAP_GROUP_BASE", "ou=groups,dc=example,dc=org")
            .env("AUTHD_LDAP_MEMBERSHIP", "search")
            .env("AUTHD_LDAP_ROLE_MAP", "dcpower-users=admin,rogroup=viewer");
        cmd
    };
    let out = tokio::task::spawn_blocking(move || {
        let ok = binary::run_with_stdin(
            command(&["ldap", "test", "alice", "--password-stdin"]),
            &format!("{PASSWORD}\n"),
        );
        let wrong = binary::run_with_stdin(
            command(&["ldap", "test", "alice", "--password-stdin"]),
            "wrong\n",
        );
        let unknown = binary::run_with_stdin(command(&["ldap", "test", "mallory"]), "");
        (ok, wrong, unknown)
    })
    .await
    .unwrap();
    let (ok, wrong, unknown) = out;
    let stdout = String::from_utf8_lossy(&ok.stdout);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(stdout.contains("groups:    "), "{stdout}");
    assert!(stdout.contains("dcpower-users"), "{stdout}");
    assert!(stdout.contains("roles:     admin, viewer"), "{stdout}");
    assert!(stdout.contains("password:  accepted"), "{stdout}");
    assert!(!stdout.contains(ADMIN_PASSWORD));

    assert_eq!(wrong.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&wrong.stderr);
    assert!(
        stderr.contains("the directory refused the password"),
        "{stderr}"
    );
    assert!(!stderr.contains(ADMIN_PASSWORD));

    assert_eq!(unknown.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no directory entry matches"));
}

/// A CA and a server certificate for 127.0.0.1 and localhost it issued, in PEM.
fn test_ca_and_server_certificate() -> (String, String, String) {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(DnType::CommonName, "authd test directory CA");
    let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
    let mut params =
        CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &issuer).unwrap();
    (issuer.pem(), cert.pem(), key.serialize_pem())
}
