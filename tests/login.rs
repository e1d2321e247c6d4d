//! `authd login`, `authd token`, `authd logout`, `authd whoami` (issue 20), run as a person at a
//! terminal would: the built binary against a running `authd serve`, with the credentials file
//! in the test's own directory.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on the unexpected

#[path = "support/binary.rs"]
mod binary;

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use tempfile::TempDir;

const PASSWORD: &str = "correct horse battery staple";

struct Env {
    dir: TempDir,
    server: Option<binary::Server>,
}

impl Env {
    /// A database with `alice` (role `admin`) and a server on it.
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut env = Self { dir, server: None };
        let out = binary::run_with_stdin(
            env.authd(&[
                "user",
                "add",
                "alice",
                "--role",
                "admin",
                "--password-stdin",
            ]),
            &format!("{PASSWORD}\n"),
        );
        assert!(out.status.success(), "{out:?}");
        let mut serve = env.authd(&["serve", "--grpc-addr", "127.0.0.1:0"]);
        // The tests count refreshes in the audit trail.
        serve
            .env("AUTHD_PER_SOURCE_RATE", "0")
            .env("AUTHD_AUDIT_REFRESH", "all");
        env.server = Some(binary::Server::start(serve));
        env
    }

    fn url(&self) -> String {
        format!("http://{}", self.server.as_ref().unwrap().addr)
    }

    fn credentials(&self) -> PathBuf {
        self.dir
            .path()
            .join("config")
            .join("authd")
            .join("credentials.toml")
    }

    /// `authd ARGS` on the test's database, with its credentials file.
    fn authd(&self, args: &[&str]) -> Command {
        let mut cmd = binary::authd(&format!(
            "sqlite://{}",
            self.dir.path().join("authd.db").display()
        ));
        cmd.args(args)
            .env("AUTHD_CREDENTIALS_PATH", self.credentials())
            .current_dir(self.dir.path());
        cmd
    }

    fn run(&self, args: &[&str], stdin: &str) -> Output {
        binary::run_with_stdin(self.authd(args), stdin)
    }

    fn ok(&self, args: &[&str], stdin: &str) -> String {
        let out = self.run(args, stdin);
        assert!(
            out.status.success(),
            "{args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Fails with exit 1 and one line on stderr; returns the line.
    fn fails(&self, args: &[&str], stdin: &str) -> String {
        let out = self.run(args, stdin);
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty());
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
        stderr
    }

    fn login(&self) {
        let url = self.url();
        self.ok(
            &["login", "--server", &url, "alice", "--password-stdin"],
            &format!("{PASSWORD}\n"),
        );
    }

    fn file(&self) -> toml::Table {
        toml::from_str(&std::fs::read_to_string(self.credentials()).unwrap()).unwrap()
    }

    fn profile(&self) -> toml::Table {
        self.file()["profiles"][&self.url()]
            .as_table()
            .unwrap()
            .clone()
    }

    /// Makes the cached access token look expired, as it would be some minutes later.
    fn expire_cache(&self) {
        let mut file = self.file();
        let profile = file["profiles"][&self.url()].as_table_mut().unwrap();
        profile.insert("expires_at".into(), toml::Value::Integer(0));
        std::fs::write(self.credentials(), toml::to_string(&file).unwrap()).unwrap();
    }

    /// Refreshes the server recorded, from the audit trail.
    fn refreshes(&self) -> usize {
        self.ok(&["audit", "tail", "--limit", "1000"], "")
            .lines()
            .filter(|l| l.contains("\"token_refreshed\""))
            .count()
    }

    fn stop_server(&mut self) {
        if let Some(mut server) = self.server.take() {
            server.kill();
        }
    }
}

fn is_jwt(s: &str) -> bool {
    s.trim().split('.').count() == 3 && !s.trim().contains(char::is_whitespace)
}

#[test]
fn login_once_then_token_needs_no_network_while_fresh() {
    let mut env = Env::new();
    env.login();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&env.credentials()), 0o600);
    assert_eq!(mode(env.credentials().parent().unwrap()), 0o700);
    let profile = env.profile();
    assert_eq!(profile["username"].as_str(), Some("alice"));
    assert!(!profile["refresh_token"].as_str().unwrap().is_empty());

    let token = env.ok(&["token"], "");
    assert!(is_jwt(&token), "{token}");
    assert_eq!(token.trim(), profile["access_token"].as_str().unwrap());
    let whoami = env.ok(&["whoami"], "");
    assert!(whoami.contains("username: alice"), "{whoami}");
    assert!(whoami.contains("roles:    admin"), "{whoami}");
    assert!(whoami.contains(&env.url()), "{whoami}");

    // Fresh: no server needed.
    let url = env.url();
    env.stop_server();
    assert_eq!(env.ok(&["token"], ""), token);
    assert_eq!(env.ok(&["token", "--server", &url], ""), token);
    // Not fresh enough for a caller that wants an hour: it must ask, and cannot.
    let e = env.fails(&["token", "--min-valid", "1h"], "");
    assert!(e.contains("cannot connect to"), "{e}");
}

#[test]
fn token_refreshes_a_stale_cache_once() {
    let env = Env::new();
    env.login();
    let first = env.ok(&["token"], "");
    let before = env.refreshes();
    env.expire_cache();
    let second = env.ok(&["token"], "");
    assert!(is_jwt(&second));
    assert_ne!(first, second, "a new access token");
    assert_eq!(env.refreshes(), before + 1);
    // The new one is cached: no second refresh.
    assert_eq!(env.ok(&["token"], ""), second);
    assert_eq!(env.refreshes(), before + 1);
}

/// Sixteen `authd token` processes at once against an expired cache: exactly one refreshes;
/// the others wait for the lock and print its token; the session stays alive.
#[test]
fn sixteen_token_processes_at_once_refresh_exactly_once() {
    let env = Env::new();
    env.login();
    let before = env.refreshes();
    env.expire_cache();
    let children: Vec<_> = (0..16)
        .map(|_| {
            env.authd(&["token"])
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outputs: Vec<Output> = children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect();
    for out in &outputs {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let tokens: std::collections::BTreeSet<String> = outputs
        .iter()
        .map(|o| String::from_utf8(o.stdout.clone()).unwrap())
        .collect();
    assert_eq!(tokens.len(), 1, "all print the one refreshed token");
    assert!(is_jwt(tokens.first().unwrap()));
    assert_eq!(env.refreshes(), before + 1, "exactly one refresh");
    // Not revoked as a reuse: the next refresh works.
    env.expire_cache();
    env.ok(&["token"], "");
    assert_eq!(env.refreshes(), before + 2);
}

#[test]
fn an_api_key_login_gets_new_tokens_with_the_key() {
    let env = Env::new();
    let key = env.ok(&["apikey", "create", "alice", "--name", "ci"], "");
    let url = env.url();
    env.ok(&["login", "--server", &url, "--api-key-stdin"], &key);
    let profile = env.profile();
    assert_eq!(profile["username"].as_str(), Some("alice"));
    assert!(profile.get("refresh_token").is_none());
    let first = env.ok(&["token"], "");
    env.expire_cache();
    let second = env.ok(&["token"], "");
    assert!(is_jwt(&second));
    assert_ne!(first, second);
}

#[test]
fn logout_ends_the_session_and_forgets_the_login() {
    let env = Env::new();
    env.login();
    let refresh = env.profile()["refresh_token"].as_str().unwrap().to_owned();
    let url = env.url();
    env.ok(&["logout"], "");
    assert!(!env.credentials().exists());
    let e = env.fails(&["token"], "");
    assert!(e.contains("not logged in: run authd login"), "{e}");
    // The server ended the session: its refresh token is refused.
    let e = env.fails(&["client", "refresh", &refresh, "--addr", &url], "");
    assert!(e.contains("Unauthenticated"), "{e}");
}

#[test]
fn logout_with_the_server_down_still_forgets_the_login_and_says_so() {
    let mut env = Env::new();
    env.login();
    env.stop_server();
    let e = env.fails(&["logout"], "");
    assert!(e.contains("the server-side session was not ended"), "{e}");
    assert!(!env.credentials().exists());
}

#[test]
fn an_ended_session_is_reported_clearly() {
    let env = Env::new();
    env.login();
    env.ok(&["session", "revoke-all", "alice"], "");
    env.expire_cache();
    let e = env.fails(&["token"], "");
    assert!(e.contains("session ended: run authd login"), "{e}");
}

#[test]
fn not_logged_in_is_clear() {
    let env = Env::new();
    let e = env.fails(&["token"], "");
    assert!(e.contains("not logged in: run authd login"), "{e}");
    let e = env.fails(&["whoami", "--server", "http://elsewhere:1"], "");
    assert!(
        e.contains(
            "not logged in to http://elsewhere:1: run authd login --server http://elsewhere:1"
        ),
        "{e}"
    );
    let url = env.url();
    let e = env.fails(
        &["login", "--server", &url, "alice", "--password-stdin"],
        "a wrong password, clearly\n",
    );
    assert!(e.contains("login to http://"), "{e}");
    assert!(!env.credentials().exists(), "a failed login writes nothing");
}

/// The file is replaced whole: a login killed while it waits for a server that never answers
/// leaves the previous credentials exactly as they were, and no temporary file.
#[test]
fn a_killed_login_leaves_the_old_credentials_intact() {
    let env = Env::new();
    env.login();
    let before = std::fs::read(env.credentials()).unwrap();
    // Accepts connections and never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_url = format!("http://{}", silent.local_addr().unwrap());
    let mut child = env
        .authd(&[
            "login",
            "--server",
            &silent_url,
            "alice",
            "--password-stdin",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::io::Write::write_all(
        child.stdin.as_mut().unwrap(),
        format!("{PASSWORD}\n").as_bytes(),
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(std::fs::read(env.credentials()).unwrap(), before);
    let leftovers: Vec<_> = std::fs::read_dir(env.credentials().parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.contains(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    drop(silent);
}
