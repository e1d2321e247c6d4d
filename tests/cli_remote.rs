//! `authd user|session|apikey|keys|audit --server URL` (issue 18): the built binary calling a
//! running `authd serve`'s admin API, with no database of its own, printing what the direct
//! mode prints.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on the unexpected

#[path = "support/binary.rs"]
mod binary;

use std::path::PathBuf;
use std::process::{Command, Output};

use tempfile::TempDir;

const PASSWORD: &str = "correct horse battery staple";

struct Env {
    dir: TempDir,
    server: binary::Server,
}

impl Env {
    /// A database with `root` (role `admin`) and `bob` (no role), and a server on it.
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        for (name, roles) in [("root", &["--role", "admin"][..]), ("bob", &[])] {
            let mut args = vec!["user", "add", name, "--password-stdin"];
            args.extend_from_slice(roles);
            let out = binary::run_with_stdin(direct(&dir, &args), &format!("{PASSWORD}\n"));
            assert!(out.status.success(), "{out:?}");
        }
        let mut serve = direct(&dir, &["serve", "--grpc-addr", "127.0.0.1:0"]);
        serve.env("AUTHD_PER_SOURCE_RATE", "0");
        let server = binary::Server::start(serve);
        Self { dir, server }
    }

    fn url(&self) -> String {
        format!("http://{}", self.server.addr)
    }

    fn credentials(&self) -> PathBuf {
        self.dir.path().join("credentials.toml")
    }

    /// `authd ARGS` in remote mode (`AUTHD_SERVER`), with a database URL that cannot be
    /// opened: whatever works, works through the server.
    fn remote(&self, args: &[&str]) -> Command {
        let mut cmd = binary::authd("sqlite:///nonexistent/directory/authd.db");
        cmd.args(args)
            .env("AUTHD_SERVER", self.url())
            .env("AUTHD_CREDENTIALS_PATH", self.credentials())
            .current_dir(self.dir.path());
        cmd
    }

    fn run(&self, cmd: Command, stdin: &str) -> Output {
        binary::run_with_stdin(cmd, stdin)
    }

    fn ok(&self, cmd: Command, stdin: &str) -> (String, String) {
        let out = self.run(cmd, stdin);
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert!(out.status.success(), "failed: {stderr}");
        (String::from_utf8(out.stdout).unwrap(), stderr)
    }

    fn remote_ok(&self, args: &[&str]) -> String {
        self.ok(self.remote(args), "").0
    }

    fn direct_ok(&self, args: &[&str]) -> String {
        self.ok(direct(&self.dir, args), "").0
    }

    fn fails(&self, cmd: Command) -> String {
        let out = self.run(cmd, "");
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(out.stdout.is_empty());
        stderr
    }

    /// `authd login` as `username`, the global `--server` after the subcommand.
    fn login(&self, username: &str) {
        let url = self.url();
        let mut cmd = self.remote(&["login", "--server", &url, username, "--password-stdin"]);
        cmd.env_remove("AUTHD_SERVER");
        self.ok(cmd, &format!("{PASSWORD}\n"));
    }
}

/// `authd ARGS` on the test's database directly.
fn direct(dir: &TempDir, args: &[&str]) -> Command {
    let mut cmd = binary::authd(&format!(
        "sqlite://{}",
        dir.path().join("authd.db").display()
    ));
    cmd.args(args).current_dir(dir.path());
    cmd
}

#[test]
fn every_admin_subcommand_works_over_the_network_and_prints_what_the_direct_mode_prints() {
    let env = Env::new();
    env.login("root");

    // Users.
    let (out, _) = env.ok(
        env.remote(&["user", "add", "carol", "--role", "ops", "--password-stdin"]),
        &format!("{PASSWORD}\n"),
    );
    assert!(out.starts_with("created user carol ("), "{out}");
    assert_eq!(
        env.remote_ok(&["user", "list"]),
        env.direct_ok(&["user", "list"])
    );
    assert!(env.remote_ok(&["user", "list"]).contains("carol"));
    assert_eq!(
        env.remote_ok(&[
            "user", "roles", "carol", "--add", "audit", "--remove", "ops"
        ]),
        "roles of carol: audit\n"
    );
    let (out, _) = env.ok(
        env.remote(&["user", "set-password", "carol", "--password-stdin"]),
        "a brand new long passphrase\n",
    );
    assert_eq!(
        out,
        "password changed for carol; all of its sessions were ended\n"
    );
    assert_eq!(
        env.remote_ok(&["user", "disable", "carol"]),
        "disabled carol; all of its sessions were ended\n"
    );
    assert_eq!(
        env.remote_ok(&["user", "enable", "carol"]),
        "enabled carol\n"
    );
    assert_eq!(
        env.remote_ok(&["user", "unlock", "carol"]),
        "carol had no failed-login counter; nothing to clear\n"
    );

    // Sessions: root's own login is one.
    let sessions = env.remote_ok(&["session", "list", "root"]);
    assert_eq!(sessions, env.direct_ok(&["session", "list", "root"]));
    assert_eq!(sessions.lines().count(), 2, "{sessions}");
    let bob_login = binary::run_with_stdin(
        direct(
            &env.dir,
            &[
                "client",
                "login",
                "bob",
                "--password-stdin",
                "--addr",
                &env.server.addr,
            ],
        ),
        &format!("{PASSWORD}\n"),
    );
    assert!(bob_login.status.success(), "{bob_login:?}");
    let listed = env.remote_ok(&["session", "list", "bob"]);
    let id = listed
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    assert_eq!(
        env.remote_ok(&["session", "revoke", &id]),
        format!("revoked session {id} of bob\n")
    );
    assert_eq!(
        env.remote_ok(&["session", "revoke-all", "bob"]),
        "revoked 0 session(s) of bob\n"
    );

    // API keys.
    let (secret, note) = env.ok(
        env.remote(&[
            "apikey",
            "create",
            "carol",
            "--name",
            "ci",
            "--expires",
            "1d",
        ]),
        "",
    );
    assert!(secret.starts_with("authd_"), "{secret}");
    assert!(note.contains("created api key"), "{note}");
    let keys = env.remote_ok(&["apikey", "list"]);
    assert_eq!(keys, env.direct_ok(&["apikey", "list"]));
    assert!(!keys.contains(secret.trim()));
    let key_id = keys
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    assert_eq!(
        env.remote_ok(&["apikey", "revoke", &key_id]),
        format!("revoked api key {key_id}\n")
    );

    // Signing keys.
    assert_eq!(
        env.remote_ok(&["keys", "list"]),
        env.direct_ok(&["keys", "list"])
    );
    let rotated = env.remote_ok(&["keys", "rotate"]);
    assert!(rotated.starts_with("new ES256 key "), "{rotated}");
    assert!(
        rotated.contains("is published now and signs from"),
        "{rotated}"
    );

    // Deleting, then the audit trail, which names root as the actor.
    let deleted = env.remote_ok(&["user", "delete", "carol"]);
    assert!(deleted.starts_with("deleted carol ("), "{deleted}");
    let audit = env.remote_ok(&["audit", "tail", "--limit", "30"]);
    assert_eq!(audit, env.direct_ok(&["audit", "tail", "--limit", "30"]));
    for kind in [
        "user_created",
        "user_deleted",
        "api_key_created",
        "key_rotated",
    ] {
        assert!(
            audit
                .lines()
                .any(|l| l.contains(kind) && l.contains("by=user:root")),
            "{kind}: {audit}"
        );
    }
}

#[test]
fn errors_read_as_a_person_wants_them() {
    let env = Env::new();
    // No login and no AUTHD_TOKEN.
    let err = env.fails(env.remote(&["user", "list"]));
    assert!(err.contains("not logged in"), "{err}");
    // A token that is not an admin's.
    env.login("bob");
    let err = env.fails(env.remote(&["user", "list"]));
    assert_eq!(
        err.trim(),
        "error: permission denied: this needs the admin role"
    );
    // AUTHD_TOKEN wins over the login: root's token, from `authd token`.
    env.login("root");
    let url = env.url();
    let mut token = env.remote(&["token", "--server", &url]);
    token.env_remove("AUTHD_SERVER");
    let (root_token, _) = env.ok(token, "");
    env.login("bob");
    let mut cmd = env.remote(&["user", "list"]);
    cmd.env("AUTHD_TOKEN", root_token.trim());
    let (out, _) = env.ok(cmd, "");
    assert!(out.contains("root"), "{out}");
    // An invalid token.
    let mut cmd = env.remote(&["user", "list"]);
    cmd.env("AUTHD_TOKEN", "not-a-token");
    let err = env.fails(cmd);
    assert!(err.contains("not authenticated"), "{err}");
    // A username the server refuses: its message.
    let mut cmd = env.remote(&["user", "disable", "nobody"]);
    cmd.env("AUTHD_TOKEN", root_token.trim());
    let err = env.fails(cmd);
    assert!(err.contains("no user named"), "{err}");
}

#[test]
fn audit_follow_session_list_of_everyone_and_key_retirement_work_over_the_network() {
    let env = Env::new();
    env.login("root");
    // Every user's sessions: root's login is one; remote and direct print alike.
    let everyone = env.remote_ok(&["session", "list"]);
    assert_eq!(everyone, env.direct_ok(&["session", "list"]));
    assert!(everyone.contains(" root "), "{everyone}");

    // Follow new user_created events, over the network and on the database directly, while a
    // user is added on the host.
    let args = [
        "audit",
        "tail",
        "--type",
        "user_created",
        "--limit",
        "1",
        "--follow",
    ];
    let followers = [env.remote(&args), direct(&env.dir, &args)].map(|mut cmd| {
        let mut child = cmd
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let stdout = std::io::BufReader::new(child.stdout.take().unwrap());
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in stdout.lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        // The tail part: the newest user_created event (bob's, from Env::new).
        let first = rx.recv_timeout(std::time::Duration::from_secs(30)).unwrap();
        assert!(first.contains("\"bob\""), "{first}");
        (child, rx)
    });
    let out = binary::run_with_stdin(
        direct(&env.dir, &["user", "add", "dora", "--password-stdin"]),
        &format!("{PASSWORD}\n"),
    );
    assert!(out.status.success(), "{out:?}");
    for (mut child, rx) in followers {
        let followed = rx.recv_timeout(std::time::Duration::from_secs(30)).unwrap();
        assert!(
            followed.contains("user_created") && followed.contains("\"dora\""),
            "{followed}"
        );
        let _ = child.kill();
        let _ = child.wait();
    }

    // The emergency retirement, remotely: the key that signed root's token goes at once, so
    // root's cached token stops working too.
    let listed = env.direct_ok(&["keys", "list"]);
    let kid = listed
        .lines()
        .find(|l| l.contains(" active "))
        .and_then(|l| l.split_whitespace().next())
        .unwrap()
        .to_owned();
    assert!(
        env.fails(env.remote(&["keys", "retire", &kid]))
            .contains("needs --now")
    );
    let retired = env.remote_ok(&["keys", "retire", &kid, "--now"]);
    assert!(
        retired.starts_with(&format!("key {kid} retired and unpublished; new key ")),
        "{retired}"
    );
    let refused = env.fails(env.remote(&["user", "list"]));
    assert!(refused.contains("not authenticated"), "{refused}");
    let audit = env.direct_ok(&["audit", "tail", "--type", "key_rotated", "--limit", "5"]);
    assert!(
        audit
            .lines()
            .any(|l| l.contains("reason=emergency") && l.contains("by=user:root")),
        "{audit}"
    );
}
