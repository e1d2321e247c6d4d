//! Migrations: idempotent on every backend, one numbered sequence in both dialects.

use super::*;

conformance!(migrations_are_idempotent,);

async fn migrations_are_idempotent(b: Backend) {
    add_user(b.store.as_ref(), "alice").await;
    // Several processes opening the same database at once each run the migrator; the lock
    // makes that safe, and the data survives.
    let opened = futures::future::join_all((0..3).map(|_| authd::store::open(&b.url))).await;
    for store in opened {
        let store = store.unwrap();
        assert!(store.find_user(&name("alice")).await.unwrap().is_some());
    }
}

#[test]
fn both_backends_have_the_same_migrations() {
    let names = |dir: &str| -> Vec<String> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
        let mut names: Vec<String> = std::fs::read_dir(&path)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    let sqlite = names("migrations/sqlite");
    let postgres = names("migrations/postgres");
    assert!(!sqlite.is_empty());
    assert_eq!(sqlite, postgres);
    let distinct: HashSet<&str> = sqlite
        .iter()
        .map(|n| n.split('_').next().unwrap_or_default())
        .collect();
    assert_eq!(
        distinct.len(),
        sqlite.len(),
        "one file per migration number"
    );
}
