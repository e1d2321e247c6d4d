//! Users and credentials: creation, lookups, roles, and the changes that end sessions.

use super::*;

conformance!(
    ping_answers,
    created_user_can_be_found_and_listed,
    duplicate_user_is_refused,
    unknown_user_operations_say_not_found,
    password_hash_upgrade_only_replaces_the_expected_hash,
    roles_are_added_and_removed,
    disabling_a_user_revokes_its_families,
    password_change_revokes_families,
    deleting_a_user_deletes_its_families,
);

async fn ping_answers(b: Backend) {
    b.store.ping().await.unwrap();
}

async fn created_user_can_be_found_and_listed(b: Backend) {
    let s = b.store.as_ref();
    let bob = add_user(s, "bob").await;
    let alice = add_user(s, "alice").await;
    assert_eq!(
        s.find_user(&name("alice")).await.unwrap(),
        Some(alice.clone())
    );
    let creds = s.find_credentials(&name("bob")).await.unwrap().unwrap();
    assert_eq!(creds.user, bob);
    assert!(creds.password_hash.starts_with("$argon2id$"));
    assert_eq!(s.find_user(&name("carol")).await.unwrap(), None);
    assert!(s.find_credentials(&name("carol")).await.unwrap().is_none());
    let listed = s.list_users().await.unwrap();
    assert_eq!(listed, vec![alice, bob], "sorted by username");
}

async fn duplicate_user_is_refused(b: Backend) {
    let s = b.store.as_ref();
    add_user(s, "alice").await;
    let again = s
        .create_user(&NewUser {
            user: user("alice"),
            password_hash: "x".into(),
        })
        .await;
    assert!(matches!(again, Err(StoreError::DuplicateUser)), "{again:?}");
    assert_eq!(s.list_users().await.unwrap().len(), 1);
}

async fn unknown_user_operations_say_not_found(b: Backend) {
    let s = b.store.as_ref();
    let ghost = name("ghost");
    assert!(matches!(
        s.change_password(&ghost, "h", T0).await,
        Err(StoreError::UserNotFound)
    ));
    assert!(matches!(
        s.set_enabled(&ghost, false, T0).await,
        Err(StoreError::UserNotFound)
    ));
    assert!(matches!(
        s.delete_user(&ghost).await,
        Err(StoreError::UserNotFound)
    ));
    assert!(matches!(
        s.change_roles(&ghost, &RoleChange::default()).await,
        Err(StoreError::UserNotFound)
    ));
}

async fn password_hash_upgrade_only_replaces_the_expected_hash(b: Backend) {
    let s = b.store.as_ref();
    let alice = add_user(s, "alice").await;
    let old = s
        .find_credentials(&name("alice"))
        .await
        .unwrap()
        .unwrap()
        .password_hash;
    // A concurrent password change got there first: the upgrade must not overwrite it.
    s.upgrade_password_hash(&alice.id, "not-the-current-hash", "upgraded-1")
        .await
        .unwrap();
    let now = s.find_credentials(&name("alice")).await.unwrap().unwrap();
    assert_eq!(now.password_hash, old);
    s.upgrade_password_hash(&alice.id, &old, "upgraded-2")
        .await
        .unwrap();
    let now = s.find_credentials(&name("alice")).await.unwrap().unwrap();
    assert_eq!(now.password_hash, "upgraded-2");
}

async fn roles_are_added_and_removed(b: Backend) {
    let s = b.store.as_ref();
    add_user(s, "alice").await;
    let role = |r: &str| Role::parse(r).unwrap();
    let changed = s
        .change_roles(
            &name("alice"),
            &RoleChange {
                add: vec![role("writer"), role("admin"), role("writer")],
                remove: vec![role("reader")],
            },
        )
        .await
        .unwrap();
    assert_eq!(changed.roles, vec![role("admin"), role("writer")]);
    let stored = s.find_user(&name("alice")).await.unwrap().unwrap();
    assert_eq!(stored.roles, changed.roles);
}

async fn disabling_a_user_revokes_its_families(b: Backend) {
    let s = b.store.as_ref();
    let p = policy(Duration::ZERO);
    let alice = add_user(s, "alice").await;
    let (_, first) = login(s, &alice, at(0), &p).await;
    let disabled = s.set_enabled(&name("alice"), false, at(1)).await.unwrap();
    assert!(!disabled.enabled);
    assert!(!s.find_user(&name("alice")).await.unwrap().unwrap().enabled);
    assert!(rejected(&outcome(s, &first, at(2), &p).await).is_some());
    // Enabling again does not bring old families back.
    s.set_enabled(&name("alice"), true, at(3)).await.unwrap();
    assert_eq!(
        rejected(&outcome(s, &first, at(4), &p).await),
        Some(Rejection::FamilyRevoked)
    );
    let (_, fresh) = login(s, &alice, at(5), &p).await;
    rotate(s, &fresh, at(6), &p).await;
}

async fn password_change_revokes_families(b: Backend) {
    let s = b.store.as_ref();
    let p = policy(Duration::ZERO);
    let alice = add_user(s, "alice").await;
    let (_, first) = login(s, &alice, at(0), &p).await;
    let (_, second) = login(s, &alice, at(0), &p).await;
    s.change_password(&name("alice"), "new-hash", at(1))
        .await
        .unwrap();
    let creds = s.find_credentials(&name("alice")).await.unwrap().unwrap();
    assert_eq!(creds.password_hash, "new-hash");
    for t in [first, second] {
        assert_eq!(
            rejected(&outcome(s, &t, at(2), &p).await),
            Some(Rejection::FamilyRevoked)
        );
    }
}

async fn deleting_a_user_deletes_its_families(b: Backend) {
    let s = b.store.as_ref();
    let p = policy(Duration::ZERO);
    let alice = add_user(s, "alice").await;
    let (_, first) = login(s, &alice, at(0), &p).await;
    let deleted = s.delete_user(&name("alice")).await.unwrap();
    assert_eq!(deleted.id, alice.id);
    assert_eq!(s.find_user(&name("alice")).await.unwrap(), None);
    assert_eq!(
        rejected(&outcome(s, &first, at(1), &p).await),
        Some(Rejection::Unknown)
    );
    // The name can be taken again, by a different user.
    let again = add_user(s, "alice").await;
    assert_ne!(again.id, alice.id);
}
