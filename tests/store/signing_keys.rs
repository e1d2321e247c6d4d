//! Signing keys: the conditional insert, resealing, and rewrapping them all at once.

use super::*;

conformance!(signing_keys_round_trip, rewrapping_is_all_or_nothing,);

/// Issue 16 item 9: `authd keys rewrap` replaces every key's private part in one
/// transaction; one key that cannot be rewrapped leaves every key as it was.
async fn rewrapping_is_all_or_nothing(b: Backend) {
    let s = b.store.as_ref();
    for (kid, activates) in [("a", 0), ("b", 10), ("c", 20)] {
        let key = StoredKey {
            kid: kid.into(),
            algorithm: "ES256".into(),
            private_key: kid.as_bytes().to_vec(),
            encrypted: false,
            created_at: at(activates),
            activates_at: at(activates),
            retires_at: None,
        };
        assert!(
            s.insert_signing_key_if(&key, Some(at(activates)))
                .await
                .unwrap()
        );
    }
    let before = s.signing_keys().await.unwrap();
    // "a" would be rewrapped first, then "b" refuses: nothing is written.
    let refused = s
        .rewrap_signing_keys(&|k: &StoredKey| {
            if k.kid == "b" {
                Err("cannot open b".into())
            } else {
                Ok((b"sealed".to_vec(), true))
            }
        })
        .await
        .unwrap();
    assert_eq!(refused, Err("cannot open b".to_owned()));
    let after = s.signing_keys().await.unwrap();
    let parts = |keys: &[StoredKey]| {
        keys.iter()
            .map(|k| (k.kid.clone(), k.private_key.clone(), k.encrypted))
            .collect::<Vec<_>>()
    };
    assert_eq!(parts(&after), parts(&before));
    // All accepted: every key rewrapped, nothing else about them changed.
    let done = s
        .rewrap_signing_keys(&|k: &StoredKey| Ok(([k.kid.as_bytes(), b"!"].concat(), true)))
        .await
        .unwrap();
    assert_eq!(done, Ok(3));
    let after = s.signing_keys().await.unwrap();
    assert_eq!(
        parts(&after),
        vec![
            ("a".into(), b"a!".to_vec(), true),
            ("b".into(), b"b!".to_vec(), true),
            ("c".into(), b"c!".to_vec(), true),
        ]
    );
    assert_eq!(
        after.iter().map(|k| k.retires_at).collect::<Vec<_>>(),
        before.iter().map(|k| k.retires_at).collect::<Vec<_>>()
    );
}

async fn signing_keys_round_trip(b: Backend) {
    let s = b.store.as_ref();
    assert!(s.signing_keys().await.unwrap().is_empty());
    let key = |kid: &str, created: Timestamp, activates: Timestamp| StoredKey {
        kid: kid.into(),
        algorithm: "ES256".into(),
        private_key: vec![1, 2, 3, 0, 255],
        encrypted: false,
        created_at: created,
        activates_at: activates,
        retires_at: None,
    };
    // `None`: only into an empty table.
    assert!(
        s.insert_signing_key_if(&key("a", at(0), at(0)), None)
            .await
            .unwrap()
    );
    assert!(
        !s.insert_signing_key_if(&key("x", at(0), at(0)), None)
            .await
            .unwrap()
    );
    // A rotation: refused while a key activates after the given time...
    assert!(
        !s.insert_signing_key_if(
            &key("x", at(1), at(10)),
            Some(Timestamp::from_unix_millis(at(0).unix_millis() - 1))
        )
        .await
        .unwrap()
    );
    // ...accepted otherwise, retiring the older key when the new one activates.
    assert!(
        s.insert_signing_key_if(&key("b", at(1), at(10)), Some(at(0)))
            .await
            .unwrap()
    );
    assert!(
        !s.insert_signing_key_if(&key("c", at(2), at(12)), Some(at(2)))
            .await
            .unwrap(),
        "b is pending"
    );
    let keys = s.signing_keys().await.unwrap();
    let seen: Vec<_> = keys
        .iter()
        .map(|k| (k.kid.as_str(), k.activates_at, k.retires_at))
        .collect();
    assert_eq!(seen, vec![("a", at(0), Some(at(10))), ("b", at(10), None)]);
    assert_eq!(keys[0].private_key, vec![1, 2, 3, 0, 255]);
    assert_eq!(keys[0].algorithm, "ES256");
    assert!(!keys[0].encrypted);
    // Resealing replaces the private part only.
    s.reseal_signing_key("a", &[9, 9], true).await.unwrap();
    let keys = s.signing_keys().await.unwrap();
    assert_eq!(
        (keys[0].private_key.clone(), keys[0].encrypted),
        (vec![9, 9], true)
    );
    assert_eq!(keys[0].retires_at, Some(at(10)));
    // A duplicate kid is an error, never a silent overwrite.
    assert!(
        s.insert_signing_key_if(&key("a", at(20), at(30)), Some(at(20)))
            .await
            .is_err()
    );
}
