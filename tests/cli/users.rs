//! `authd user`: adding, listing, passwords (stdin, blocklist), roles, locking and unlocking,
//! deletion, and the audit tail.

use crate::binary;
use crate::env::{Env, PASSWORD, Server};

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
