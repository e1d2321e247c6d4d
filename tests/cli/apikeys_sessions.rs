//! `authd apikey` and `authd session`: create, list, revoke, and their bad input.

use crate::env::{Env, PASSWORD};

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
