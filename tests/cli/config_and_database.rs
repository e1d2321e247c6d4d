//! Configuration and database handling: unreachable databases, invalid configuration, the
//! working directory's `authd.toml`, `migrate`, and the database file's permissions.

use crate::env::{Env, PASSWORD, Server};

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
fn migrate_creates_and_migrates_the_database_and_is_repeatable() {
    let env = Env::new();
    assert_eq!(env.ok(&["migrate"], ""), "database is up to date\n");
    assert!(env.dir.path().join("authd.db").exists());
    assert_eq!(env.ok(&["migrate"], ""), "database is up to date\n");
    env.add("alice");
    assert!(env.ok(&["user", "list"], "").contains("alice"));
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
