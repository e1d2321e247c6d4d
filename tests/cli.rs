//! The built `authd` binary, run as an operator would: each subcommand, each bad input with
//! its message and exit code, and `serve` started and stopped with a signal.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on the unexpected

#[path = "support/binary.rs"]
mod binary;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

const PASSWORD: &str = "correct horse battery staple";

struct Env {
    dir: TempDir,
}

impl Env {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn db_url(&self) -> String {
        format!("sqlite://{}", self.dir.path().join("authd.db").display())
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = binary::authd(&self.db_url());
        cmd.args(args).current_dir(self.dir.path());
        cmd
    }

    fn run(&self, args: &[&str], stdin: &str) -> Output {
        binary::run_with_stdin(self.command(args), stdin)
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

    /// Runs a command expected to fail; returns its stderr.
    fn fails(&self, args: &[&str], stdin: &str) -> String {
        let out = self.run(args, stdin);
        assert_eq!(out.status.code(), Some(1), "{args:?} should exit 1");
        assert!(out.stdout.is_empty(), "nothing on stdout when failing");
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(stderr.lines().count(), 1, "one clear line: {stderr}");
        assert!(stderr.starts_with("error: "), "{stderr}");
        stderr
    }

    /// `authd client login USER --password-stdin --addr URL` with `password` on stdin.
    fn client_login(&self, url: &str, user: &str, password: &str) -> Output {
        self.run(
            &["client", "login", user, "--password-stdin", "--addr", url],
            &format!("{password}\n"),
        )
    }

    fn add(&self, name: &str) {
        self.ok(
            &["user", "add", name, "--password-stdin"],
            &format!("{PASSWORD}\n"),
        );
    }
}

#[test]
fn user_add_and_list() {
    let env = Env::new();
    let out = env.ok(
        &[
            "user",
            "add",
            "Alice",
            "--role",
            "admin",
            "--role",
            "billing:read",
            "--password-stdin",
        ],
        &format!("{PASSWORD}\n"),
    );
    assert!(out.starts_with("created user alice ("), "{out}");
    env.add("bob");
    let list = env.ok(&["user", "list"], "");
    let lines: Vec<&str> = list.lines().collect();
    assert_eq!(lines.len(), 3, "{list}");
    assert!(lines[0].starts_with("USERNAME"));
    assert!(lines[1].starts_with("alice "), "{list}");
    assert!(lines[1].contains("admin,billing:read"), "{list}");
    assert!(lines[1].contains(" yes "), "{list}");
    assert!(lines[2].starts_with("bob "), "{list}");
    assert!(!list.contains("argon2"), "never a hash");
    // Each command closes the store: its writes are folded back into the database file.
    assert!(
        !env.dir.path().join("authd.db-wal").exists(),
        "no write-ahead log is left behind"
    );
}

#[test]
fn password_stdin_strips_only_the_trailing_newline() {
    let env = Env::new();
    // Leading and inner spaces are part of the password; only the newline is stripped.
    env.ok(
        &["user", "add", "alice", "--password-stdin"],
        "  spaced out password  \r\n",
    );
    let err = env.fails(
        &["user", "add", "bob", "--password-stdin"],
        "fourteen chars\n",
    );
    assert_eq!(
        err.trim_end(),
        "error: invalid password: password is shorter than 15 characters"
    );
}

#[test]
fn bad_input_gives_one_line_and_exit_1() {
    let env = Env::new();
    env.add("alice");
    let cases: &[(&[&str], &str, &str)] = &[
        (
            &["user", "add", "ALICE", "--password-stdin"],
            PASSWORD,
            "error: user \"alice\" already exists",
        ),
        (
            &["user", "add", "carol", "--password-stdin"],
            "short",
            "error: invalid password: password is shorter than 15 characters",
        ),
        (
            &["user", "add", "has space", "--password-stdin"],
            PASSWORD,
            "error: invalid username: username contains characters that are not allowed (RFC 8265 UsernameCaseMapped)",
        ),
        (
            &[
                "user",
                "add",
                "carol",
                "--role",
                "Admin!",
                "--password-stdin",
            ],
            PASSWORD,
            "error: invalid role \"Admin!\": use 1-64 of a-z 0-9 _ . : - starting with a letter or digit",
        ),
        (
            &["user", "set-password", "nobody", "--password-stdin"],
            PASSWORD,
            "error: no user named \"nobody\"",
        ),
        (
            &["user", "disable", "nobody"],
            "",
            "error: no user named \"nobody\"",
        ),
        (
            &["user", "enable", "nobody"],
            "",
            "error: no user named \"nobody\"",
        ),
        (
            &["user", "delete", "nobody"],
            "",
            "error: no user named \"nobody\"",
        ),
        (
            &["user", "roles", "nobody", "--add", "x"],
            "",
            "error: no user named \"nobody\"",
        ),
        (
            &["user", "roles", "alice"],
            "",
            "error: nothing to change: give --add ROLE and/or --remove ROLE",
        ),
    ];
    for (args, stdin, expected) in cases {
        let err = env.fails(args, &format!("{stdin}\n"));
        assert_eq!(err.trim_end(), *expected, "{args:?}");
    }
    let too_long = "x".repeat(2000);
    let err = env.fails(
        &["user", "add", "carol", "--password-stdin"],
        &format!("{too_long}\n"),
    );
    assert_eq!(
        err.trim_end(),
        "error: invalid password: password is longer than 1024 bytes"
    );
    let long_name = "n".repeat(65);
    let err = env.fails(
        &["user", "add", &long_name, "--password-stdin"],
        &format!("{PASSWORD}\n"),
    );
    assert_eq!(
        err.trim_end(),
        "error: invalid username: username is longer than 64 characters"
    );
    // Nothing was half-written: only alice exists.
    let list = env.ok(&["user", "list"], "");
    assert_eq!(list.lines().count(), 2, "{list}");
}

#[test]
fn apikey_create_list_revoke() {
    let env = Env::new();
    env.ok(
        &["user", "add", "alice", "--role", "ops", "--password-stdin"],
        &format!("{PASSWORD}\n"),
    );
    let out = env.run(&["apikey", "create", "alice", "--name", "ci"], "");
    assert!(out.status.success());
    let key = String::from_utf8(out.stdout).unwrap();
    let key = key.trim_end();
    assert_eq!(key.len(), 74, "authd_ + 24 + _ + 43: {key}");
    assert!(key.starts_with("authd_"));
    let id = &key[6..30];
    let list = env.ok(&["apikey", "list"], "");
    let lines: Vec<&str> = list.lines().collect();
    assert_eq!(lines.len(), 2, "{list}");
    assert!(lines[1].starts_with(id), "{list}");
    assert!(
        lines[1].contains(" alice ") && lines[1].contains(" ops "),
        "{list}"
    );
    assert!(
        lines[1].contains("never") && lines[1].ends_with("active"),
        "{list}"
    );
    assert!(!list.contains(&key[31..]), "never the secret");
    assert_eq!(
        env.ok(&["apikey", "revoke", id], "").trim_end(),
        format!("revoked api key {id}")
    );
    assert!(env.ok(&["apikey", "list", "alice"], "").contains("revoked"));
}

#[test]
fn apikey_and_session_bad_input_gives_one_line_and_exit_1() {
    let env = Env::new();
    env.ok(
        &["user", "add", "alice", "--role", "ops", "--password-stdin"],
        &format!("{PASSWORD}\n"),
    );
    let cases: &[(&[&str], &str)] = &[
        (
            &["apikey", "create", "nobody", "--name", "x"],
            "error: no user named \"nobody\"",
        ),
        (
            &[
                "apikey", "create", "alice", "--name", "x", "--role", "admin",
            ],
            "error: user does not have role \"admin\"",
        ),
        (
            &["apikey", "create", "alice", "--name", "  "],
            "error: invalid api key name: the name must not be empty",
        ),
        (
            &["apikey", "list", "nobody"],
            "error: no user named \"nobody\"",
        ),
        (
            &["apikey", "revoke", "0123456789abcdef01234567"],
            "error: no api key with id \"0123456789abcdef01234567\"",
        ),
        (
            &["session", "list", "nobody"],
            "error: no user named \"nobody\"",
        ),
        (
            &["session", "revoke-all", "nobody"],
            "error: no user named \"nobody\"",
        ),
        (
            &["session", "revoke", "nope"],
            "error: no session with id \"nope\"",
        ),
    ];
    for (args, expected) in cases {
        let err = env.fails(args, "");
        assert_eq!(err.trim_end(), *expected, "{args:?}");
    }
    for bad in ["soon", "0s"] {
        let err = env.fails(
            &["apikey", "create", "alice", "--name", "x", "--expires", bad],
            "",
        );
        assert_eq!(
            err.trim_end(),
            format!("error: invalid --expires \"{bad}\": use a positive duration, e.g. 90d or 12h")
        );
    }
    // Nothing was created by the refused commands.
    assert_eq!(env.ok(&["apikey", "list"], "").lines().count(), 1);
}

#[test]
fn no_terminal_and_no_password_stdin_is_an_error() {
    let env = Env::new();
    let err = env.fails(&["user", "add", "alice"], "");
    assert_eq!(
        err.trim_end(),
        "error: no terminal to prompt for a password on; use --password-stdin"
    );
}

#[test]
fn unreachable_database_is_a_clear_error() {
    let env = Env::new();
    let out = env
        .command(&["user", "list"])
        .env(
            "AUTHD_DATABASE_URL",
            "sqlite:///nonexistent-dir/for/sure/authd.db",
        )
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.starts_with("error: database unavailable: "),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1);

    let out = env
        .command(&["user", "list"])
        .env("AUTHD_DATABASE_URL", "mysql://x")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unsupported database url"));
}

#[test]
fn invalid_configuration_is_a_clear_error() {
    let env = Env::new();
    let out = env
        .command(&["user", "list"])
        .env("AUTHD_ACCESS_TOKEN_TTL", "soon")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("invalid duration \"soon\""), "{stderr}");
    let out = env
        .command(&["--config", "missing.toml", "user", "list"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.toml does not exist"));
}

#[test]
fn config_file_in_the_working_directory_is_read() {
    let env = Env::new();
    std::fs::write(
        env.dir.path().join("authd.toml"),
        "password_min_length = 30\n",
    )
    .unwrap();
    let err = env.fails(
        &["user", "add", "alice", "--password-stdin"],
        &format!("{PASSWORD}\n"),
    );
    assert!(err.contains("shorter than 30 characters"), "{err}");
    // A flag beats the file and the environment for the database.
    let other = env.dir.path().join("other.db");
    let url = format!("sqlite://{}", other.display());
    env.ok(&["--database-url", &url, "user", "list"], "");
    assert!(other.exists());
}

#[test]
fn set_password_disable_enable_roles_delete() {
    let env = Env::new();
    env.add("alice");
    let out = env.ok(
        &["user", "set-password", "alice", "--password-stdin"],
        "another long passphrase\n",
    );
    assert!(out.contains("password changed for alice"), "{out}");

    let out = env.ok(&["user", "disable", "ALICE"], "");
    assert!(out.contains("disabled alice"), "{out}");
    assert!(
        env.ok(&["user", "list"], "")
            .lines()
            .nth(1)
            .unwrap()
            .contains(" no ")
    );
    env.ok(&["user", "enable", "alice"], "");
    assert!(
        env.ok(&["user", "list"], "")
            .lines()
            .nth(1)
            .unwrap()
            .contains(" yes ")
    );

    let out = env.ok(
        &[
            "user", "roles", "alice", "--add", "writer", "--add", "admin",
        ],
        "",
    );
    assert_eq!(out.trim_end(), "roles of alice: admin,writer");
    let out = env.ok(&["user", "roles", "alice", "--remove", "admin"], "");
    assert_eq!(out.trim_end(), "roles of alice: writer");

    let out = env.ok(&["user", "delete", "alice"], "");
    assert!(out.starts_with("deleted alice ("), "{out}");
    assert_eq!(env.ok(&["user", "list"], "").lines().count(), 1);
}

#[test]
fn migrate_creates_and_migrates_the_database_and_is_repeatable() {
    let env = Env::new();
    assert_eq!(env.ok(&["migrate"], ""), "database is up to date\n");
    assert!(env.dir.path().join("authd.db").exists());
    assert_eq!(env.ok(&["migrate"], ""), "database is up to date\n");
    env.add("alice");
    assert!(env.ok(&["user", "list"], "").contains("alice"));
}

#[test]
fn serve_logs_its_address_and_stops_on_sigterm() {
    let env = Env::new();
    env.add("alice");
    let mut child = env
        .command(&["serve", "--grpc-addr", "127.0.0.1:0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A watchdog, so a server that never logs its address fails the test instead of hanging it.
    let pid = child.id();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(60));
        let _ = Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
    });
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut addr = None;
    let mut http_addr = None;
    let mut line = String::new();
    let mut log = String::new();
    while addr.is_none() && Instant::now() < deadline {
        line.clear();
        if stderr.read_line(&mut line).unwrap() == 0 {
            break;
        }
        log.push_str(&line);
        if let Some(rest) = line.split("grpc_addr=").nth(1) {
            addr = rest.split_whitespace().next().map(str::to_owned);
        }
        if let Some(rest) = line.split("http_addr=").nth(1) {
            http_addr = rest.split_whitespace().next().map(str::to_owned);
        }
    }
    let addr = addr.expect("serve logs the bound address");
    let http_addr = http_addr.expect("serve logs the HTTP address");
    assert!(
        log.contains("AUTHD_KEY_ENCRYPTION_KEY is not set"),
        "serve warns about unencrypted keys: {log}"
    );

    // It answers a real login.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let mut client = authd::grpc::AuthServiceClient::connect(format!("http://{addr}"))
            .await
            .unwrap();
        let request = authd::grpc::pb::TokenRequest {
            credential: Some(
                authd::grpc::pb::token_request::Credential::PasswordCredential(
                    authd::grpc::pb::PasswordCredential {
                        username: "alice".into(),
                        password: PASSWORD.into(),
                    },
                ),
            ),
        };
        client.token(request).await.unwrap();
    });

    // The shell client gets a pair, and refreshes it, even when the token starts with '-'.
    let url = format!("http://{addr}");
    let pair = env.ok(
        &[
            "client",
            "login",
            "alice",
            "--password-stdin",
            "--addr",
            &url,
        ],
        &format!("{PASSWORD}\n"),
    );
    let pair: serde_json::Value = serde_json::from_str(&pair).unwrap();
    let refresh = pair["refresh_token"].as_str().unwrap();

    // `token verify` with the keys in the database, and through the served JWKS.
    let access = pair["access_token"].as_str().unwrap();
    let jwks_url = format!("http://{http_addr}/.well-known/jwks.json");
    for args in [
        vec!["token", "verify", access],
        vec!["token", "verify", "--jwks-url", &jwks_url, access],
    ] {
        let shown: serde_json::Value = serde_json::from_str(&env.ok(&args, "")).unwrap();
        assert_eq!(shown["claims"]["preferred_username"], "alice");
        assert_eq!(shown["header"]["typ"], "at+jwt");
    }
    // Change one character in the middle of the signature.
    let at = access.rfind('.').unwrap() + 10;
    let swapped = if &access[at..=at] == "A" { "B" } else { "A" };
    let tampered = format!("{}{swapped}{}", &access[..at], &access[at + 1..]);
    let err = env.fails(&["token", "verify", "--jwks-url", &jwks_url, &tampered], "");
    assert_eq!(err.trim_end(), "error: invalid token: signature is invalid");
    assert_eq!(refresh.len(), 54);
    let altered = format!("-{}", &refresh[1..]);
    let out = env.run(&["client", "refresh", &altered, "--addr", &url], "");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim_end(),
        "error: Unauthenticated: invalid refresh token",
        "a token starting with '-' reaches the server"
    );
    let out = env.run(&["client", "refresh", refresh, "--addr", &url], "");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = env.client_login(&url, "alice", "wrong password here");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim_end(),
        "error: Unauthenticated: invalid username or password"
    );

    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = child.wait().unwrap();
    assert!(status.success(), "graceful stop exits 0: {status:?}");
    // The refresh above went through the WAL; a clean stop closes the store, and the last
    // connection to close folds the WAL into the database.
    assert!(
        !env.dir.path().join("authd.db-wal").exists(),
        "the WAL outlived a clean stop"
    );
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    assert!(rest.contains("authd stopped"), "{rest}");
    assert!(!rest.contains(PASSWORD), "no password in the log");
}

/// `authd serve` running as a child process, its stderr collected in the background.
struct Server {
    child: std::process::Child,
    addr: String,
    log: std::sync::Arc<std::sync::Mutex<String>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    fn start(env: &Env, extra_env: &[(&str, &str)]) -> Self {
        let mut cmd = env.command(&["serve", "--grpc-addr", "127.0.0.1:0"]);
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let pid = child.id();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs(90));
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        });
        let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let sink = std::sync::Arc::clone(&log);
        let reader = std::thread::spawn(move || {
            let mut line = String::new();
            let mut sent = false;
            loop {
                line.clear();
                if stderr.read_line(&mut line).unwrap_or(0) == 0 {
                    return;
                }
                sink.lock().unwrap().push_str(&line);
                if !sent
                    && line.contains("authd serving")
                    && let Some(rest) = line.split("grpc_addr=").nth(1)
                {
                    let addr = rest.split_whitespace().next().unwrap().to_owned();
                    let _ = tx.send(addr);
                    sent = true;
                }
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("serve logs the bound address");
        Self {
            child,
            addr,
            log,
            reader: Some(reader),
        }
    }

    fn signal(&self, name: &str) {
        let pid = self.child.id().to_string();
        assert!(
            Command::new("kill")
                .args([&format!("-{name}"), &pid])
                .status()
                .unwrap()
                .success()
        );
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// SIGTERM, wait, and return everything the server wrote to stderr.
    fn stop(mut self) -> String {
        self.signal("TERM");
        assert!(self.child.wait().unwrap().success());
        if let Some(reader) = self.reader.take() {
            reader.join().unwrap();
        }
        self.log()
    }
}

#[test]
fn no_password_token_or_hash_reaches_any_log_even_at_trace_level() {
    let env = Env::new();
    let canary_password = "canary-pw-5b1d0c7e-do-not-log";
    let canary_wrong = "canary-wrong-9e2f41aa-do-not-log";
    let captured = std::cell::RefCell::new(String::new());
    let run = |args: &[&str], stdin: &str| {
        let out = env
            .command(args)
            .env("RUST_LOG", "trace")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = out;
        out.stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        let out = out.wait_with_output().unwrap();
        captured
            .borrow_mut()
            .push_str(&String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    run(
        &["user", "add", "carol", "--password-stdin"],
        &format!("{canary_password}\n"),
    );
    let server = Server::start(
        &env,
        &[("RUST_LOG", "trace"), ("AUTHD_THROTTLE_FREE_FAILURES", "1")],
    );
    let url = format!("http://{}", server.addr);
    let pair = run(
        &[
            "client",
            "login",
            "carol",
            "--password-stdin",
            "--addr",
            &url,
        ],
        &format!("{canary_password}\n"),
    );
    let pair: serde_json::Value = serde_json::from_str(&pair).unwrap();
    let first_refresh = pair["refresh_token"].as_str().unwrap().to_owned();
    let first_access = pair["access_token"].as_str().unwrap().to_owned();
    let next = run(&["client", "refresh", &first_refresh, "--addr", &url], "");
    let next: serde_json::Value = serde_json::from_str(&next).unwrap();
    let second_refresh = next["refresh_token"].as_str().unwrap().to_owned();
    let second_access = next["access_token"].as_str().unwrap().to_owned();
    // Failures, throttling and an unknown user, each with a planted password.
    for user in ["carol", "carol", "nobody-here"] {
        run(
            &["client", "login", user, "--password-stdin", "--addr", &url],
            &format!("{canary_wrong}\n"),
        );
    }
    let log = server.stop();
    // Audit events are JSON lines of their own in the server's log.
    let audit_line = log
        .lines()
        .find(|l| l.contains("\"event_type\":\"login_succeeded\""))
        .expect("an audit line for the login");
    let audit: serde_json::Value = serde_json::from_str(audit_line).unwrap();
    assert_eq!(audit["target"], "authd::audit");
    assert_eq!(audit["username"], "carol");
    assert_eq!(audit["source"], "127.0.0.1");
    assert!(
        audit["request_id"]
            .as_str()
            .is_some_and(|id| id.len() == 36)
    );
    let tail = run(&["audit", "tail", "--limit", "100"], "");
    let all_output = format!("{}{log}{tail}", captured.borrow());

    // The capture is real: it holds the trace-level chatter and the audit lines.
    assert!(all_output.contains("TRACE"), "trace output captured");
    assert!(all_output.contains("\"event_type\":\"login_succeeded\""));
    assert!(all_output.contains("\"event_type\":\"login_throttled\""));
    assert!(all_output.contains("carol"));
    let stored_hash = {
        let db = env.dir.path().join("authd.db");
        let out = Command::new("sqlite3")
            .arg(&db)
            .arg("SELECT password_hash FROM users")
            .output();
        out.ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    let mut secrets = vec![
        canary_password.to_owned(),
        canary_wrong.to_owned(),
        first_refresh,
        second_refresh,
        first_access.clone(),
        second_access.clone(),
    ];
    // The signature part alone would be a leak too.
    secrets.extend([first_access, second_access].map(|t| t.rsplit('.').next().unwrap().to_owned()));
    for secret in &secrets {
        assert!(
            !all_output.contains(secret.as_str()),
            "a secret reached the log: {}…",
            &secret[..8]
        );
    }
    assert!(
        !all_output.contains("$argon2"),
        "a password hash reached the log"
    );
    if let Some(hash) = stored_hash.filter(|h| !h.is_empty()) {
        assert!(!all_output.contains(&hash));
    }
}

#[test]
fn user_list_shows_a_locked_user_until_unlock() {
    let env = Env::new();
    env.add("alice");
    env.add("bob");
    let one_failure_locks = [("AUTHD_THROTTLE_MAX_FAILURES", "1")];
    let server = Server::start(&env, &one_failure_locks);
    let url = format!("http://{}", server.addr);
    let login = |password: &str| env.client_login(&url, "alice", password);
    let list = || {
        let mut cmd = env.command(&["user", "list"]);
        cmd.envs(one_failure_locks);
        let out = binary::run_with_stdin(cmd, "");
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    let locked_column = |list: &str, name: &str| {
        let header: Vec<&str> = list.lines().next().unwrap().split_whitespace().collect();
        let column = header.iter().position(|h| *h == "LOCKED").unwrap();
        let row = list
            .lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap();
        row.split_whitespace().nth(column).unwrap().to_owned()
    };
    assert_eq!(locked_column(&list(), "alice"), "no");
    assert_eq!(login("a wrong password!").status.code(), Some(1));
    let out = login(PASSWORD);
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim_end(),
        "error: FailedPrecondition: too many failed attempts; locked until an administrator unlocks it"
    );
    let listed = list();
    assert_eq!(locked_column(&listed, "alice"), "yes", "{listed}");
    assert_eq!(locked_column(&listed, "bob"), "no", "{listed}");
    env.ok(&["user", "unlock", "alice"], "");
    assert_eq!(locked_column(&list(), "alice"), "no");
    assert!(login(PASSWORD).status.success());
    server.stop();
}

#[test]
fn user_unlock_and_audit_tail() {
    let env = Env::new();
    env.add("alice");
    let server = Server::start(&env, &[("AUTHD_THROTTLE_FREE_FAILURES", "1")]);
    let url = format!("http://{}", server.addr);
    let login = |password: &str| env.client_login(&url, "alice", password);
    assert_eq!(login("a wrong password!").status.code(), Some(1));
    let out = login(PASSWORD);
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim_end(),
        "error: ResourceExhausted: too many failed attempts; retry later"
    );
    assert_eq!(
        env.ok(&["user", "unlock", "Alice"], "").trim_end(),
        "unlocked Alice: failed-login counter cleared"
    );
    assert!(login(PASSWORD).status.success());
    assert!(
        env.ok(&["user", "unlock", "alice"], "")
            .contains("nothing to clear")
    );
    server.stop();

    let tail = env.ok(&["audit", "tail", "--user", "alice", "--limit", "3"], "");
    let kinds: Vec<String> = tail
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["event_type"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(kinds, ["user_unlocked", "login_succeeded", "user_unlocked"]);
    let err = env.fails(&["audit", "tail", "--limit", "0"], "");
    assert!(err.contains("--limit"), "{err}");
}

#[test]
fn serve_warns_when_exposed_without_tls() {
    let env = Env::new();
    let mut cmd = env.command(&["serve", "--grpc-addr", "0.0.0.0:0"]);
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    let mut line = String::new();
    while !seen.contains("authd serving") {
        line.clear();
        if stderr.read_line(&mut line).unwrap() == 0 {
            break;
        }
        seen.push_str(&line);
    }
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    child.wait().unwrap();
    assert!(
        seen.contains("serving without TLS on a non-loopback address"),
        "{seen}"
    );

    // On loopback there is no warning.
    let server = Server::start(&env, &[]);
    let log = server.stop();
    assert!(!log.contains("without TLS"), "{log}");
}

/// A self-signed certificate for `localhost` and its key, in PEM.
fn self_signed_localhost() -> (String, String) {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    (certified.cert.pem(), certified.signing_key.serialize_pem())
}

#[test]
fn sighup_reloads_the_tls_certificate_without_a_restart() {
    let env = Env::new();
    env.add("alice");
    let cert_path = env.dir.path().join("cert.pem");
    let key_path = env.dir.path().join("key.pem");
    let (first_cert, first_key) = self_signed_localhost();
    std::fs::write(&cert_path, &first_cert).unwrap();
    std::fs::write(&key_path, &first_key).unwrap();
    let server = Server::start(
        &env,
        &[
            ("AUTHD_TLS_CERT", cert_path.to_str().unwrap()),
            ("AUTHD_TLS_KEY", key_path.to_str().unwrap()),
            // Only the signal can trigger the reload within this test.
            ("AUTHD_TLS_RELOAD_INTERVAL", "1h"),
        ],
    );
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let addr = server.addr.clone();
    let works_with = |ca: &str| {
        runtime.block_on(async {
            let tls = tonic::transport::ClientTlsConfig::new()
                .ca_certificate(tonic::transport::Certificate::from_pem(ca))
                .domain_name("localhost");
            let Ok(channel) = tonic::transport::Endpoint::from_shared(format!("https://{addr}"))
                .unwrap()
                .tls_config(tls)
                .unwrap()
                .connect()
                .await
            else {
                return false;
            };
            let mut client = authd::grpc::AuthServiceClient::new(channel);
            client
                .token(authd::grpc::pb::TokenRequest {
                    credential: Some(
                        authd::grpc::pb::token_request::Credential::PasswordCredential(
                            authd::grpc::pb::PasswordCredential {
                                username: "alice".into(),
                                password: PASSWORD.into(),
                            },
                        ),
                    ),
                })
                .await
                .is_ok()
        })
    };
    assert!(works_with(&first_cert));

    let (second_cert, second_key) = self_signed_localhost();
    std::fs::write(&key_path, &second_key).unwrap();
    std::fs::write(&cert_path, &second_cert).unwrap();
    assert!(!works_with(&second_cert), "no reload before the signal");
    server.signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !server.log().contains("TLS certificate reloaded") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(works_with(&second_cert), "{}", server.log());
    assert!(!works_with(&first_cert));
    let log = server.stop();
    assert!(log.contains("SIGHUP"), "{log}");
}

#[test]
fn token_verify_says_why_a_token_is_invalid() {
    let env = Env::new();
    env.ok(&["keys", "list"], "");
    let err = env.fails(&["token", "verify", "not-a-token"], "");
    assert_eq!(
        err.trim_end(),
        "error: invalid token: token is not a compact JWS (three base64url parts)"
    );
    let none = "eyJhbGciOiJub25lIiwidHlwIjoiYXQrand0In0.eyJzdWIiOiJ4In0.";
    let err = env.fails(&["token", "verify", none], "");
    assert_eq!(
        err.trim_end(),
        "error: invalid token: algorithm \"none\" is not allowed"
    );
}

#[test]
fn keys_rotate_schedules_a_key_and_list_shows_states() {
    let env = Env::new();
    let out = env.ok(&["keys", "rotate"], "");
    assert!(out.contains("is published now and signs from"), "{out}");
    let out = env.ok(&["keys", "rotate"], "");
    assert!(out.contains("is already waiting to sign from"), "{out}");
    let list = env.ok(&["keys", "list"], "");
    let lines: Vec<&str> = list.lines().collect();
    assert_eq!(lines.len(), 3, "{list}");
    assert!(lines[0].starts_with("KID"));
    assert!(lines[1].contains(" pending "), "{list}");
    assert!(lines[2].contains(" active "), "{list}");
    assert!(lines[1..].iter().all(|l| l.contains(" ES256 ")));
    // The encryption key is never echoed, even when invalid.
    let out = env
        .command(&["keys", "list"])
        .env("AUTHD_KEY_ENCRYPTION_KEY", "c2VjcmV0")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.contains("key_encryption_key must be 32 random bytes"),
        "{stderr}"
    );
    assert!(!stderr.contains("c2VjcmV0"), "{stderr}");
}

#[test]
fn common_passwords_on_the_blocklist_are_refused_and_change_nothing() {
    let env = Env::new();
    let list = env.dir.path().join("common.txt");
    std::fs::write(&list, "password1234567890\r\nletmein-letmein-letmein\n").unwrap();
    let with_list = |args: &[&str], stdin: &str| {
        let mut cmd = env.command(args);
        cmd.env("AUTHD_PASSWORD_BLOCKLIST", &list);
        binary::run_with_stdin(cmd, stdin)
    };
    let add = ["user", "add", "bob", "--password-stdin"];
    let out = with_list(&add, "PASSWORD1234567890\n");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim_end(),
        "error: invalid password: password is on the list of common passwords; choose another"
    );
    assert!(!env.ok(&["user", "list"], "").contains("bob "));
    assert!(with_list(&add, &format!("{PASSWORD}\n")).status.success());
    let set = ["user", "set-password", "bob", "--password-stdin"];
    let out = with_list(&set, "letmein-letmein-letmein\n");
    assert_eq!(out.status.code(), Some(1));
    // A list that cannot be read is an error, not an empty list.
    let mut cmd = env.command(&add);
    cmd.env(
        "AUTHD_PASSWORD_BLOCKLIST",
        env.dir.path().join("missing.txt"),
    );
    let out = binary::run_with_stdin(cmd, &format!("{PASSWORD}\n"));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot read password_blocklist"),
        "{out:?}"
    );
}

#[cfg(unix)]
#[test]
fn a_database_others_can_read_is_warned_about_and_a_new_one_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::new();
    env.add("alice");
    let db = env.dir.path().join("authd.db");
    let mode = |path: &std::path::Path| std::fs::metadata(path).unwrap().permissions().mode();
    assert_eq!(mode(&db) & 0o777, 0o600, "created private");
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
    let log = Server::start(&env, &[]).stop();
    assert!(log.contains("can be read by other users"), "{log}");
    assert_eq!(
        mode(&db) & 0o777,
        0o644,
        "an existing file is left as it is"
    );
}

/// Issue 16: a username with `\n` in it wrote a forged line into the text log (tracing's text
/// formatter writes `%`-fields as they are). Every control character is escaped now.
#[test]
fn a_client_cannot_forge_a_log_line() {
    let env = Env::new();
    let server = Server::start(&env, &[]);
    let url = format!("http://{}", server.addr);
    let forged = "2026-01-01T00:00:00.000000Z  INFO authd::login: login succeeded username=root";
    let evil = format!("eve\n{forged}\r\u{1b}[2J");
    let out = env.client_login(&url, &evil, "some wrong password here");
    assert!(!out.status.success());
    let log = server.stop();
    assert!(log.contains("login refused"), "{log}");
    for line in log.lines() {
        assert!(!line.starts_with(forged), "forged line in the log: {line}");
        assert!(
            !line.contains('\u{1b}'),
            "terminal escape in the log: {line}"
        );
    }
    assert!(log.contains(r"eve\n2026-01-01"), "{log}");
}

/// Issue 16: `authd client` could not reach a TLS server at all (it trusted no roots). It
/// trusts the system's roots, and `--ca-file` adds a private CA.
#[test]
fn client_reaches_a_tls_server_with_its_ca_file() {
    let env = Env::new();
    env.add("alice");
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .unwrap();
    let cert_path = env.dir.path().join("cert.pem");
    let key_path = env.dir.path().join("key.pem");
    std::fs::write(&cert_path, certified.cert.pem()).unwrap();
    std::fs::write(&key_path, certified.signing_key.serialize_pem()).unwrap();
    let server = Server::start(
        &env,
        &[
            ("AUTHD_TLS_CERT", cert_path.to_str().unwrap()),
            ("AUTHD_TLS_KEY", key_path.to_str().unwrap()),
        ],
    );
    let url = format!("https://{}", server.addr);
    let login = |extra: &[&str]| {
        let mut args = vec![
            "client",
            "login",
            "alice",
            "--password-stdin",
            "--addr",
            &url,
        ];
        args.extend_from_slice(extra);
        env.run(&args, &format!("{PASSWORD}\n"))
    };

    // A self-signed certificate is not among the system's roots: a clear refusal.
    let refused = login(&[]);
    assert_eq!(refused.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("cannot connect to https://"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");

    let ok = login(&["--ca-file", cert_path.to_str().unwrap()]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let pair: serde_json::Value = serde_json::from_slice(&ok.stdout).unwrap();
    assert!(pair["access_token"].as_str().is_some_and(|t| !t.is_empty()));

    // --ca-file with a plain-HTTP URL is a mistake worth saying.
    let plain = env.run(
        &[
            "client",
            "refresh",
            "x",
            "--addr",
            "http://127.0.0.1:1",
            "--ca-file",
            cert_path.to_str().unwrap(),
        ],
        "",
    );
    assert!(String::from_utf8_lossy(&plain.stderr).contains("--ca-file needs an https://"));
    server.stop();
}
