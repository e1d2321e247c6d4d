//! The built `authd` binary, run as an operator would: each subcommand, each bad input with
//! its message and exit code, and `serve` started and stopped with a signal.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on the unexpected

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
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_authd"));
        cmd.args(args)
            .current_dir(self.dir.path())
            .env_clear()
            .env("AUTHD_DATABASE_URL", self.db_url())
            .env("AUTHD_ARGON2_MEMORY_KIB", "256")
            .env("AUTHD_ARGON2_ITERATIONS", "1")
            .env("AUTHD_HTTP_ADDR", "127.0.0.1:0");
        cmd
    }

    fn run(&self, args: &[&str], stdin: &str) -> Output {
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
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
    assert_eq!(refresh.len(), 43);
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
    let out = env.run(
        &[
            "client",
            "login",
            "alice",
            "--password-stdin",
            "--addr",
            &url,
        ],
        "wrong password here\n",
    );
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
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    assert!(rest.contains("authd stopped"), "{rest}");
    assert!(!rest.contains(PASSWORD), "no password in the log");
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
