//! API keys: stored without their secret, listed, revoked.

use super::*;

conformance!(api_keys_round_trip_without_their_secret,);

async fn api_keys_round_trip_without_their_secret(b: Backend) {
    let s = b.store.as_ref();
    let alice = add_user(s, "alice").await;
    let secret = ApiKeySecret::generate().unwrap();
    let key = ApiKey {
        id: secret.id().clone(),
        user_id: alice.id.clone(),
        name: "ci".into(),
        roles: vec![Role::parse("ops").unwrap()],
        created_at: at(0),
        expires_at: Some(at(60)),
        last_used_at: None,
        revoked_at: None,
    };
    s.create_api_key(&key, &secret.hash()).await.unwrap();
    let found = s.find_api_key(secret.id()).await.unwrap().unwrap();
    assert_eq!(found.key, key);
    assert_eq!(found.owner.id, alice.id);
    assert!(found.secret_hash.matches(&secret.hash()));
    s.touch_api_key(secret.id(), at(5)).await.unwrap();
    let listed = s.list_api_keys(Some(&name("alice"))).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].key.last_used_at, Some(at(5)));
    assert_eq!(listed[0].username, name("alice"));
    assert_eq!(s.list_api_keys(None).await.unwrap().len(), 1);
    assert!(matches!(
        s.list_api_keys(Some(&name("nobody"))).await,
        Err(StoreError::UserNotFound)
    ));
    assert!(s.revoke_api_key(secret.id(), at(6)).await.unwrap());
    assert!(s.revoke_api_key(secret.id(), at(7)).await.unwrap());
    let revoked = s.find_api_key(secret.id()).await.unwrap().unwrap();
    assert_eq!(
        revoked.key.revoked_at,
        Some(at(6)),
        "the first revocation stands"
    );
    let other = ApiKeySecret::generate().unwrap();
    assert!(!s.revoke_api_key(other.id(), at(7)).await.unwrap());
    assert!(s.find_api_key(other.id()).await.unwrap().is_none());
    // A key of an unknown user is refused.
    let orphan = ApiKey {
        id: other.id().clone(),
        user_id: UserId::generate(),
        ..key
    };
    assert!(matches!(
        s.create_api_key(&orphan, &other.hash()).await,
        Err(StoreError::UserNotFound)
    ));
    // Keys go with their user.
    s.delete_user(&name("alice")).await.unwrap();
    assert!(s.find_api_key(secret.id()).await.unwrap().is_none());
}
