//! Issue 16 item 9: rotating the key encryption key. `authd keys rewrap --new-key-file PATH`
//! re-seals every signing key under the new key, all or nothing; afterwards only the new key
//! starts authd, and the same keys sign and verify as before.

use std::sync::Arc;

use authd::app::Application;
use authd::config::KeyEncryptionKey;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::helpers::{PASSWORD, TestApp, spawn_on, test_config};

/// Runs `authd keys rewrap` on `app`'s database with `current` as AUTHD_KEY_ENCRYPTION_KEY.
fn rewrap(app: &TestApp, current: Option<&str>, new_key_file: &std::path::Path) -> (bool, String) {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_authd"));
    command
        .args(["keys", "rewrap", "--new-key-file"])
        .arg(new_key_file)
        .current_dir(app.dir.path())
        .env_clear()
        .env("AUTHD_DATABASE_URL", &app.config.database_url);
    if let Some(kek) = current {
        command.env("AUTHD_KEY_ENCRYPTION_KEY", kek);
    }
    let out = command.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap()
    );
    (out.status.success(), text)
}

async fn stored_keys(app: &TestApp) -> Vec<(String, Vec<u8>, bool)> {
    let pool = sqlx::SqlitePool::connect(&app.config.database_url)
        .await
        .unwrap();
    sqlx::query_as("SELECT kid, private_key, encrypted FROM signing_keys ORDER BY kid")
        .fetch_all(&pool)
        .await
        .unwrap()
}

fn kek(byte: u8) -> String {
    STANDARD.encode([byte; 32])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_rewrap_moves_every_key_to_the_new_key_encryption_key() {
    let old = kek(1);
    let new = kek(2);
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let mut config = test_config(&dir);
    config.key_encryption_key = Some(KeyEncryptionKey::new(old.clone()));
    let app = spawn_on(Arc::clone(&dir), config.clone()).await;
    app.add_user("alice", &[]).await;
    app.service.key_manager().rotate_now().await.unwrap();
    let token = app.login("alice", PASSWORD).await.unwrap().access_token;
    let key_file = dir.path().join("new.key");
    std::fs::write(&key_file, format!("{new}\n")).unwrap();
    let before = stored_keys(&app).await;
    assert_eq!(before.len(), 2);

    // A wrong current key: refused, nothing changed.
    let (ok, out) = rewrap(&app, Some(&kek(9)), &key_file);
    assert!(!ok, "{out}");
    assert!(out.contains("cannot decrypt signing key"), "{out}");
    assert!(out.contains("no key was changed"), "{out}");
    assert_eq!(stored_keys(&app).await, before);

    let (ok, out) = rewrap(&app, Some(&old), &key_file);
    assert!(ok, "{out}");
    assert!(out.contains("2 signing keys"), "{out}");
    let after = stored_keys(&app).await;
    assert!(after.iter().all(|(_, _, sealed)| *sealed));
    for ((kid, was, _), (_, is, _)) in before.iter().zip(&after) {
        assert_ne!(was, is, "{kid} was re-sealed");
    }
    // Running it again (say, after an interruption) is harmless.
    let (ok, out) = rewrap(&app, Some(&old), &key_file);
    assert!(ok, "{out}");
    assert_eq!(stored_keys(&app).await, after);
    let (dir, config) = app.stop().await;

    // The old key no longer opens them; the new one does, and they are the same keys.
    let mut with_old = config.clone();
    with_old.key_encryption_key = Some(KeyEncryptionKey::new(old));
    let Err(e) = Application::build(with_old).await else {
        panic!("the old key must no longer open the signing keys");
    };
    assert!(e.to_string().contains("cannot decrypt"), "{e}");
    let mut with_new = config;
    with_new.key_encryption_key = Some(KeyEncryptionKey::new(new));
    let app = spawn_on(dir, with_new).await;
    assert!(app.is_active(&token).await);
    let again = app.login("alice", PASSWORD).await.unwrap().access_token;
    let kid = |t: &str| jsonwebtoken::decode_header(t).unwrap().kid;
    assert_eq!(kid(&again), kid(&token));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_rewrap_seals_keys_stored_in_the_clear_and_refuses_a_bad_key_file() {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let app = spawn_on(Arc::clone(&dir), test_config(&dir)).await;
    assert!(stored_keys(&app).await.iter().all(|(_, _, sealed)| !sealed));
    let bad = dir.path().join("bad.key");
    std::fs::write(&bad, "c2VjcmV0").unwrap();
    let (ok, out) = rewrap(&app, None, &bad);
    assert!(!ok);
    assert!(out.contains("must hold 32 random bytes"), "{out}");
    let (ok, out) = rewrap(&app, None, &dir.path().join("missing.key"));
    assert!(!ok);
    assert!(out.contains("cannot read"), "{out}");
    assert!(stored_keys(&app).await.iter().all(|(_, _, sealed)| !sealed));

    let good = dir.path().join("new.key");
    std::fs::write(&good, kek(3)).unwrap();
    let (ok, out) = rewrap(&app, None, &good);
    assert!(ok, "{out}");
    assert!(stored_keys(&app).await.iter().all(|(_, _, sealed)| *sealed));
}
