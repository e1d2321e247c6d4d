//! Bad input to the user commands: one clear `error:` line on stderr, exit code 1, nothing
//! changed.

use crate::env::{Env, PASSWORD};

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
fn no_terminal_and_no_password_stdin_is_an_error() {
    let env = Env::new();
    let err = env.fails(&["user", "add", "alice"], "");
    assert_eq!(
        err.trim_end(),
        "error: no terminal to prompt for a password on; use --password-stdin"
    );
}
