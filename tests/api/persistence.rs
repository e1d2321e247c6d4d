use std::sync::Arc;

use crate::helpers::{PASSWORD, spawn_app, spawn_on};

#[tokio::test]
async fn tokens_survive_a_restart_and_the_same_kid_signs() {
    let app = spawn_app().await;
    app.add_user("alice", &[]).await;
    let before = app.login("alice", PASSWORD).await.unwrap();
    let kid_before = app.verify(&before.access_token).0.kid.unwrap();
    let (dir, config) = app.stop().await;

    let app = spawn_on(dir, config).await;
    let after = app.refresh(&before.refresh_token).await.unwrap();
    let (header, _) = app.verify(&after.access_token);
    assert_eq!(header.kid.unwrap(), kid_before);
    // The access token from before the restart still verifies with the loaded keys.
    app.verify(&before.access_token);
}

#[tokio::test]
async fn password_hash_is_upgraded_when_parameters_change() {
    let app = spawn_app().await;
    app.add_user("alice", &[]).await;
    let (dir, mut config) = app.stop().await;
    let stored_hash = |path: std::path::PathBuf| async move {
        let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display()))
            .await
            .unwrap();
        let hash: String = sqlx::query_scalar("SELECT password_hash FROM users")
            .fetch_one(&pool)
            .await
            .unwrap();
        hash
    };
    let db = dir.path().join("authd.db");
    assert!(
        stored_hash(db.clone())
            .await
            .starts_with("$argon2id$v=19$m=256,t=1,p=1$")
    );

    config.argon2_memory_kib = 512;
    config.argon2_iterations = 2;
    let app = spawn_on(Arc::clone(&dir), config).await;
    // A failed login changes nothing.
    assert!(app.login("alice", "not the password at all").await.is_err());
    assert!(
        stored_hash(db.clone())
            .await
            .starts_with("$argon2id$v=19$m=256,t=1,p=1$")
    );
    // A successful one upgrades the hash; the password still works afterwards.
    app.login("alice", PASSWORD).await.unwrap();
    assert!(
        stored_hash(db.clone())
            .await
            .starts_with("$argon2id$v=19$m=512,t=2,p=1$")
    );
    app.login("alice", PASSWORD).await.unwrap();
}

#[tokio::test]
async fn database_holds_no_plaintext_password_or_refresh_token() {
    let app = spawn_app().await;
    let canary_password = "canary-password-7f3a9c1e-plaintext";
    app.admin()
        .await
        .add("alice", canary_password, &[])
        .await
        .unwrap();
    let mut refresh_tokens = Vec::new();
    let first = app.login("alice", canary_password).await.unwrap();
    refresh_tokens.push(first.refresh_token.clone());
    let second = app.refresh(&first.refresh_token).await.unwrap();
    refresh_tokens.push(second.refresh_token.clone());
    refresh_tokens.push(
        app.refresh(&second.refresh_token)
            .await
            .unwrap()
            .refresh_token,
    );
    let db = app.db_path();
    let (dir, _) = app.stop().await;

    let mut files = vec![db.clone()];
    for suffix in ["-wal", "-shm"] {
        let p = dir.path().join(format!("authd.db{suffix}"));
        if p.exists() {
            files.push(p);
        }
    }
    let mut haystack = Vec::new();
    for f in &files {
        haystack.extend(std::fs::read(f).unwrap());
    }
    let contains = |needle: &[u8]| haystack.windows(needle.len()).any(|w| w == needle);
    assert!(haystack.len() > 4096, "scanned {} bytes", haystack.len());
    assert!(
        !contains(canary_password.as_bytes()),
        "plaintext password in the database"
    );
    for token in &refresh_tokens {
        assert!(!contains(token.as_bytes()), "refresh token in the database");
        let raw = base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, token)
            .unwrap();
        assert!(!contains(&raw), "raw refresh token bytes in the database");
    }
    // The scan is able to find what it looks for: the username is stored in the clear.
    assert!(contains(b"alice"));
}

/// The database holds password hashes and signing keys: only its owner may read it, and its
/// write-ahead log too.
#[cfg(unix)]
#[tokio::test]
async fn the_database_and_its_log_are_readable_by_their_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let app = spawn_app().await;
    app.add_user("alice", &[]).await;
    app.login("alice", PASSWORD).await.unwrap();
    let db = app.db_path();
    let wal = db.with_extension("db-wal");
    for file in [&db, &wal] {
        let mode = std::fs::metadata(file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}: {mode:o}", file.display());
    }
}
