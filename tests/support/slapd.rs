//! A real OpenLDAP server for the LDAP tests: Debian's `slapd` started in a temporary
//! directory on a free loopback port (and optionally with TLS from a test CA for StartTLS),
//! seeded with a small tree over LDAP, and killed when dropped.
//!
//! The tree under `dc=example,dc=org`: users `alice` (in `dcpower-users`, a groupOfNames, and
//! `rogroup`, a groupOfUniqueNames), `bob` (in `rogroup`), `carol` (in no group); the memberof
//! overlay keeps each user's `memberOf` for groupOfNames, and the ppolicy overlay lets a test
//! lock an account (`pwdAccountLockedTime`). Every password is [`PASSWORD`].
#![allow(dead_code)] // each test crate uses part of it

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ldap3::{LdapConnAsync, Mod};

pub const SUFFIX: &str = "dc=example,dc=org";
pub const ADMIN_DN: &str = "cn=admin,dc=example,dc=org";
pub const ADMIN_PASSWORD: &str = "admin secret";
pub const PASSWORD: &str = "directory password 1";

/// Why the LDAP tests cannot run here, when they cannot: no `slapd` on the machine.
pub fn unavailable() -> Option<String> {
    let found = Path::new("/usr/sbin/slapd").exists() && Path::new("/usr/lib/ldap").exists();
    (!found).then(|| {
        "slapd is not installed (apt-get install slapd ldap-utils; .ci/run does)".to_owned()
    })
}

/// TLS files for the server (PEM paths).
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

pub struct Slapd {
    child: Option<Child>,
    dir: tempfile::TempDir,
    pub port: u16,
    tls: Option<TlsFiles>,
}

impl Slapd {
    /// Starts slapd and seeds the tree.
    pub async fn start(tls: Option<TlsFiles>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let mut slapd = Self {
            child: None,
            dir,
            port,
            tls,
        };
        slapd.write_config();
        slapd.launch().await;
        slapd.seed().await;
        slapd
    }

    pub fn url(&self) -> String {
        format!("ldap://127.0.0.1:{}", self.port)
    }

    fn write_config(&self) {
        let dir = self.dir.path();
        std::fs::create_dir_all(dir.join("data")).unwrap();
        let tls = self.tls.as_ref().map_or(String::new(), |t| {
            format!(
                "TLSCertificateFile {}\nTLSCertificateKeyFile {}\n",
                t.cert.display(),
                t.key.display()
            )
        });
        let config = format!(
            "include /etc/ldap/schema/core.schema\n\
             include /etc/ldap/schema/cosine.schema\n\
             include /etc/ldap/schema/inetorgperson.schema\n\
             include /etc/ldap/schema/nis.schema\n\
             modulepath /usr/lib/ldap\n\
             moduleload back_mdb\n\
             moduleload memberof\n\
             moduleload ppolicy\n\
             pidfile {dir}/slapd.pid\n\
             {tls}\
             database mdb\n\
             maxsize 10485760\n\
             suffix \"{SUFFIX}\"\n\
             rootdn \"{ADMIN_DN}\"\n\
             rootpw \"{ADMIN_PASSWORD}\"\n\
             directory {dir}/data\n\
             overlay memberof\n\
             overlay ppolicy\n",
            dir = dir.display(),
        );
        std::fs::write(dir.join("slapd.conf"), config).unwrap();
    }

    /// Starts the process (again, after [`Slapd::stop`]) and waits until it answers.
    pub async fn launch(&mut self) {
        let dir = self.dir.path();
        let child = Command::new("/usr/sbin/slapd")
            .arg("-f")
            .arg(dir.join("slapd.conf"))
            .args(["-h", &format!("ldap://127.0.0.1:{}/", self.port)])
            // Stay in the foreground (so the test owns the process), logging nothing.
            .args(["-d", "0"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok((conn, mut ldap)) = LdapConnAsync::new(&self.url()).await {
                ldap3::drive!(conn);
                if ldap
                    .simple_bind(ADMIN_DN, ADMIN_PASSWORD)
                    .await
                    .is_ok_and(|r| r.rc == 0)
                {
                    let _ = ldap.unbind().await;
                    return;
                }
            }
            assert!(Instant::now() < deadline, "slapd did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Kills the process; the data stays for [`Slapd::launch`].
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    async fn admin(&self) -> ldap3::Ldap {
        let (conn, mut ldap) = LdapConnAsync::new(&self.url()).await.unwrap();
        ldap3::drive!(conn);
        ldap.simple_bind(ADMIN_DN, ADMIN_PASSWORD)
            .await
            .unwrap()
            .success()
            .unwrap();
        ldap
    }

    async fn seed(&self) {
        let mut ldap = self.admin().await;
        let add = |dn: String, attrs: Vec<(&'static str, Vec<String>)>| {
            let mut ldap = ldap.clone();
            async move {
                let attrs: Vec<(&str, std::collections::HashSet<&str>)> = attrs
                    .iter()
                    .map(|(k, v)| (*k, v.iter().map(String::as_str).collect()))
                    .collect();
                ldap.add(&dn, attrs).await.unwrap().success().unwrap();
            }
        };
        let one = |v: &str| vec![v.to_owned()];
        add(
            SUFFIX.into(),
            vec![
                (
                    "objectClass",
                    vec!["dcObject".into(), "organization".into()],
                ),
                ("dc", one("example")),
                ("o", one("Example")),
            ],
        )
        .await;
        for ou in ["people", "groups"] {
            add(
                format!("ou={ou},{SUFFIX}"),
                vec![("objectClass", one("organizationalUnit")), ("ou", one(ou))],
            )
            .await;
        }
        for user in ["alice", "bob", "carol"] {
            add(
                user_dn(user),
                vec![
                    ("objectClass", one("inetOrgPerson")),
                    ("uid", one(user)),
                    ("cn", one(user)),
                    ("sn", one(user)),
                    ("userPassword", one(PASSWORD)),
                ],
            )
            .await;
        }
        add(
            group_dn("dcpower-users"),
            vec![
                ("objectClass", one("groupOfNames")),
                ("cn", one("dcpower-users")),
                // groupOfNames needs a member; the admin stays when alice is taken out.
                ("member", vec![user_dn("alice"), ADMIN_DN.to_owned()]),
            ],
        )
        .await;
        add(
            group_dn("rogroup"),
            vec![
                ("objectClass", one("groupOfUniqueNames")),
                ("cn", one("rogroup")),
                ("uniqueMember", vec![user_dn("alice"), user_dn("bob")]),
            ],
        )
        .await;
        let _ = ldap.unbind().await;
    }

    /// Adds a user (in no group) with [`PASSWORD`].
    pub async fn add_user(&self, uid: &str) {
        let mut ldap = self.admin().await;
        let dn = user_dn(uid);
        let attrs = vec![
            ("objectClass", ["inetOrgPerson"].into()),
            ("uid", [uid].into()),
            ("cn", [uid].into()),
            ("sn", [uid].into()),
            ("userPassword", [PASSWORD].into()),
        ];
        ldap.add(&dn, attrs).await.unwrap().success().unwrap();
    }

    /// Locks user `uid`'s account (`pwdAccountLockedTime`, the ppolicy overlay's lock).
    pub async fn lock_user(&self, uid: &str) {
        let mut ldap = self.admin().await;
        ldap.modify(
            &user_dn(uid),
            vec![Mod::Add("pwdAccountLockedTime", ["000001010000Z"].into())],
        )
        .await
        .unwrap()
        .success()
        .unwrap();
    }

    /// Deletes user `uid`'s entry.
    pub async fn delete_user(&self, uid: &str) {
        let mut ldap = self.admin().await;
        ldap.delete(&user_dn(uid)).await.unwrap().success().unwrap();
    }

    /// Takes `uid` out of the groupOfNames `group`.
    pub async fn remove_from_group(&self, uid: &str, group: &str) {
        let mut ldap = self.admin().await;
        let member = user_dn(uid);
        ldap.modify(
            &group_dn(group),
            vec![Mod::Delete("member", [member.as_str()].into())],
        )
        .await
        .unwrap()
        .success()
        .unwrap();
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        self.stop();
    }
}

pub fn user_dn(uid: &str) -> String {
    format!("uid={uid},ou=people,{SUFFIX}")
}

pub fn group_dn(cn: &str) -> String {
    format!("cn={cn},ou=groups,{SUFFIX}")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
