//! Directory users (issue 19): the just-in-time row a directory login makes or updates, the
//! session lookup a refresh's recheck starts from, and the recorded check.

use super::*;
use authd::domain::{DirectoryAccount, IdentitySource};

conformance!(
    directory_user_is_made_just_in_time_and_updated_at_each_login,
    directory_user_cannot_take_a_name_held_by_another_row,
    directory_sessions_are_found_only_for_live_directory_tokens,
    an_administrators_disable_survives_directory_logins,
);

const ENTRY: &str = "1B4E28BA-2FA1-11D2-883F-0016D3CCA427";

fn account(entry: &str, username: &str, roles: &[&str]) -> DirectoryAccount {
    DirectoryAccount::new(
        entry,
        name(username),
        roles.iter().map(|r| Role::parse(r).unwrap()).collect(),
    )
    .unwrap()
}

async fn directory_user_is_made_just_in_time_and_updated_at_each_login(b: Backend) {
    let s = b.store.as_ref();
    let first = s
        .upsert_directory_user(&account(ENTRY, "alice", &["admin"]), T0)
        .await
        .unwrap();
    assert_eq!(first.id.as_str(), "1b4e28ba-2fa1-11d2-883f-0016d3cca427");
    assert_eq!(first.roles, [Role::parse("admin").unwrap()]);
    assert!(first.enabled);
    assert_eq!(first.created_at, T0);
    assert_eq!(
        s.find_user(&name("alice")).await.unwrap(),
        Some(first.clone())
    );
    assert_eq!(
        s.user_source(&name("alice")).await.unwrap(),
        Some(IdentitySource::Ldap)
    );
    assert_eq!(s.user_source(&name("nobody")).await.unwrap(), None);
    // No usable password hash: a local login does not even see the row.
    assert!(s.find_credentials(&name("alice")).await.unwrap().is_none());

    // The next login: same row and id, the directory's roles now.
    let again = s
        .upsert_directory_user(&account(ENTRY, "alice", &["viewer", "admin"]), at(10))
        .await
        .unwrap();
    assert_eq!(again.id, first.id);
    assert_eq!(again.created_at, T0, "the row is the one made at first");
    let roles: Vec<&str> = again.roles.iter().map(Role::as_str).collect();
    assert_eq!(roles, ["admin", "viewer"]);
    assert_eq!(s.list_users().await.unwrap(), vec![again]);
}

async fn directory_user_cannot_take_a_name_held_by_another_row(b: Backend) {
    let s = b.store.as_ref();
    let local = add_user(s, "alice").await;
    let taken = s
        .upsert_directory_user(&account(ENTRY, "alice", &["admin"]), T0)
        .await;
    assert!(matches!(taken, Err(StoreError::DuplicateUser)), "{taken:?}");
    assert_eq!(s.find_user(&name("alice")).await.unwrap(), Some(local));
    assert_eq!(
        s.user_source(&name("alice")).await.unwrap(),
        Some(IdentitySource::Local)
    );
    // Another directory entry with a name an earlier entry holds.
    s.upsert_directory_user(&account(ENTRY, "bob", &["admin"]), T0)
        .await
        .unwrap();
    let other = account("0f0e0d0c-0b0a-0908-0706-050403020100", "bob", &["admin"]);
    let taken = s.upsert_directory_user(&other, T0).await;
    assert!(matches!(taken, Err(StoreError::DuplicateUser)), "{taken:?}");
    assert_eq!(s.list_users().await.unwrap().len(), 2);
}

async fn directory_sessions_are_found_only_for_live_directory_tokens(b: Backend) {
    let s = b.store.as_ref();
    let p = policy(Duration::ZERO);
    let dir_user = s
        .upsert_directory_user(&account(ENTRY, "alice", &["admin"]), T0)
        .await
        .unwrap();
    let local = add_user(s, "bob").await;
    let (family, first) = login(s, &dir_user, T0, &p).await;
    let (_, local_token) = login(s, &local, T0, &p).await;

    let found = s.directory_session(&first).await.unwrap().unwrap();
    assert_eq!(found.user, dir_user);
    assert_eq!(found.family_id, family);
    assert_eq!(found.checked_at, Some(T0));
    assert_eq!(found.external_id, ENTRY.to_ascii_lowercase());
    assert!(s.directory_session(&local_token).await.unwrap().is_none());
    assert!(s.directory_session(&random_hash()).await.unwrap().is_none());

    // A recheck records the roles it found and when.
    let viewer = [Role::parse("viewer").unwrap()];
    s.record_directory_check(&dir_user.id, &viewer, at(5))
        .await
        .unwrap();
    let found = s.directory_session(&first).await.unwrap().unwrap();
    assert_eq!(found.checked_at, Some(at(5)));
    assert_eq!(found.user.roles, viewer);
    // ... and never touches a local user.
    s.record_directory_check(&local.id, &viewer, at(5))
        .await
        .unwrap();
    assert_eq!(s.find_user(&name("bob")).await.unwrap(), Some(local));

    // A used token, or one of a revoked family, is left to the rotation to refuse.
    let second = rotate(s, &first, at(6), &p).await;
    assert!(s.directory_session(&first).await.unwrap().is_none());
    assert!(s.directory_session(&second).await.unwrap().is_some());
    s.revoke_family(&family, at(7)).await.unwrap();
    assert!(s.directory_session(&second).await.unwrap().is_none());
}

async fn an_administrators_disable_survives_directory_logins(b: Backend) {
    let s = b.store.as_ref();
    s.upsert_directory_user(&account(ENTRY, "alice", &["admin"]), T0)
        .await
        .unwrap();
    s.set_enabled(&name("alice"), false, at(1)).await.unwrap();
    let again = s
        .upsert_directory_user(&account(ENTRY, "alice", &["admin"]), at(2))
        .await
        .unwrap();
    assert!(!again.enabled);
}
