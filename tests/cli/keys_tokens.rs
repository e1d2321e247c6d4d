//! `authd token verify` and `authd keys`: why a token is invalid, rotation and key states.

use crate::env::Env;

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
