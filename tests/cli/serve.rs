//! `authd serve` as a child process: its logs (what never reaches them, forged lines), signals,
//! the warning when exposed without TLS, and TLS reload on SIGHUP.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::env::{Env, PASSWORD, Server, self_signed_localhost};

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
