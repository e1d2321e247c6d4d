//! Login throttling: counters charged under the policy, one attempt after another.

use authd::store::Expired;

use super::*;

conformance!(
    login_attempts_are_charged_under_the_policy,
    concurrent_attempts_on_one_counter_are_charged_one_by_one,
    login_failure_counters_are_cleared_and_purged,
);

async fn login_attempts_are_charged_under_the_policy(b: Backend) {
    let s = b.store.as_ref();
    let carol = name("carol");
    assert_eq!(s.login_failures(&carol).await.unwrap(), None);
    // The first attempt creates the counter; the free failures cost no delay.
    assert_eq!(charge(s, "carol", 1).await, charged(1, 1));
    assert_eq!(charge(s, "carol", 1).await, charged(2, 1));
    assert_eq!(
        s.login_failures(&carol).await.unwrap(),
        Some(FailureCount {
            consecutive_failures: 2,
            last_failure_at: at(1)
        })
    );
    // Then a delay: an attempt inside it is refused and changes nothing.
    assert_eq!(
        charge(s, "carol", 1).await,
        Charge::Throttled {
            retry_after_secs: 1
        }
    );
    assert_eq!(
        s.login_failures(&carol)
            .await
            .unwrap()
            .map(|c| c.consecutive_failures),
        Some(2)
    );
    assert_eq!(charge(s, "carol", 2).await, charged(3, 2));
    // A counter whose last failure is older than `forget_after` starts again at 1.
    assert_eq!(charge(s, "carol", 70).await, charged(1, 70));
    // At `max_failures` the name locks: nothing more is charged, however long the wait.
    for (minute, failures) in [(71, 2), (72, 3), (73, 4)] {
        assert_eq!(charge(s, "carol", minute).await, charged(failures, minute));
    }
    assert_eq!(charge(s, "carol", 74).await, Charge::Locked);
    assert_eq!(charge(s, "carol", 10_000).await, Charge::Locked);
    assert_eq!(s.locked_usernames(4).await.unwrap(), ["carol"]);
    assert!(s.locked_usernames(5).await.unwrap().is_empty());
    assert_eq!(
        s.login_failures(&carol).await.unwrap(),
        Some(FailureCount {
            consecutive_failures: 4,
            last_failure_at: at(73)
        })
    );
    assert!(s.clear_login_failures(&carol).await.unwrap());
    assert_eq!(charge(s, "carol", 10_001).await, charged(1, 10_001));
    // Counters are per name, whether or not such a user exists.
    assert_eq!(s.login_failures(&name("dave")).await.unwrap(), None);
}

/// Twelve attempts on `who` at once: how many got through, and the counter they left.
async fn simultaneous_attempts(
    store: &Arc<dyn Store>,
    policy: ThrottlePolicy,
    who: &'static str,
) -> (u32, Option<u32>) {
    let attempts: Vec<_> = (0..12)
        .map(|_| {
            let s = Arc::clone(store);
            tokio::spawn(async move {
                s.charge_login_attempt(&name(who), &policy, at(1))
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut through = 0;
    for attempt in attempts {
        through += u32::from(matches!(attempt.await.unwrap(), Charge::Charged(_)));
    }
    let stored = store.login_failures(&name(who)).await.unwrap();
    (through, stored.map(|c| c.consecutive_failures))
}

/// Simultaneous attempts on one name are charged one after another: exactly as many get
/// through as the policy lets through, and none is refused for losing a race.
async fn concurrent_attempts_on_one_counter_are_charged_one_by_one(b: Backend) {
    let lenient = ThrottlePolicy {
        free_failures: 100,
        max_failures: 100,
        ..throttle()
    };
    assert_eq!(
        simultaneous_attempts(&b.store, lenient, "carol").await,
        (12, Some(12))
    );
    assert_eq!(
        simultaneous_attempts(&b.store, throttle(), "dave").await,
        (2, Some(2))
    );
}

async fn login_failure_counters_are_cleared_and_purged(b: Backend) {
    let s = b.store.as_ref();
    for (n, minute) in [("a1", 1), ("a2", 2), ("a3", 3), ("b1", 50)] {
        assert_eq!(charge(s, n, minute).await, charged(1, minute));
    }
    // a2 is locked (at 3 failures, say), whatever its age.
    for minute in [2, 3] {
        assert!(matches!(charge(s, "a2", minute).await, Charge::Charged(_)));
    }
    assert!(s.clear_login_failures(&name("a3")).await.unwrap());
    assert!(!s.clear_login_failures(&name("a3")).await.unwrap());
    // Bounded batches: at most `limit` rows per call, only those older than `before`, and
    // never a locked one.
    let forgotten = |locked_at| Expired::LoginCounters {
        before: at(10),
        locked_at,
    };
    assert_eq!(s.purge_batch(forgotten(3), 1).await.unwrap(), 1);
    assert_eq!(s.purge_batch(forgotten(3), 100).await.unwrap(), 0);
    assert!(s.login_failures(&name("a2")).await.unwrap().is_some());
    assert!(s.login_failures(&name("b1")).await.unwrap().is_some());
    // Unlocked by a higher limit, it goes too.
    assert_eq!(s.purge_batch(forgotten(4), 100).await.unwrap(), 1);
    assert_eq!(s.login_failures(&name("a2")).await.unwrap(), None);
}
