//! Login throttling: counters charged under the policy, one attempt after another.

use authd::store::Expired;

use super::*;

conformance!(
    login_attempts_are_charged_under_the_policy,
    concurrent_attempts_on_one_counter_are_charged_one_by_one,
    attempts_in_flight_are_released_and_cleared_by_a_session,
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
        Err(Charge::Throttled {
            retry_after_secs: 1
        })
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
    assert_eq!(charge(s, "carol", 74).await, Err(Charge::Locked));
    assert_eq!(charge(s, "carol", 10_000).await, Err(Charge::Locked));
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

/// Twelve wrong passwords on `who` at once: how many were admitted, and the failures they
/// left once all had finished.
async fn simultaneous_attempts(
    store: &Arc<dyn Store>,
    policy: ThrottlePolicy,
    who: &'static str,
) -> (u32, Option<u32>) {
    let attempts: Vec<_> = (0..12)
        .map(|_| {
            let s = Arc::clone(store);
            tokio::spawn(async move {
                let who = name(who);
                let charge = s.charge_login_attempt(&who, &policy, at(1)).await;
                matches!(charge.unwrap(), Charge::Charged(_))
            })
        })
        .collect();
    let mut through = 0;
    for attempt in attempts {
        through += u32::from(attempt.await.unwrap());
    }
    let failures: Vec<_> = (0..through)
        .map(|_| {
            let s = Arc::clone(store);
            tokio::spawn(async move {
                s.record_login_failure(&name(who), &policy, at(1))
                    .await
                    .unwrap()
            })
        })
        .collect();
    for failure in failures {
        failure.await.unwrap();
    }
    let stored = store.login_failures(&name(who)).await.unwrap();
    (through, stored.map(|c| c.consecutive_failures))
}

/// Simultaneous attempts on one name are decided one after another: exactly as many get
/// through as the policy lets through, none is refused for losing a race, and N parallel
/// wrong guesses charge N failures (issue 16: attempts in flight are not failures, so they
/// do not throttle each other; they do count towards the hard stop).
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
    // The default policy (5 free failures): twelve at once all go ahead, and all count.
    assert_eq!(
        simultaneous_attempts(&b.store, ThrottlePolicy::default(), "erin").await,
        (12, Some(12))
    );
    // Locked at 4: failures plus attempts in flight never pass it.
    assert_eq!(
        simultaneous_attempts(&b.store, throttle(), "dave").await,
        (4, Some(4))
    );
    assert_eq!(
        charge(b.store.as_ref(), "dave", 2).await,
        Err(Charge::Locked)
    );
}

/// An attempt without a verdict gives its place back; a session clears the failures but not
/// the other attempts in flight.
async fn attempts_in_flight_are_released_and_cleared_by_a_session(b: Backend) {
    let s = b.store.as_ref();
    let p = throttle();
    for minute in [1, 1] {
        assert!(charge(s, "alice", minute).await.is_ok());
    }
    // Delays apply now (2 free failures): one attempt at a time.
    let first = s.charge_login_attempt(&name("alice"), &p, at(2)).await;
    assert!(matches!(first.unwrap(), Charge::Charged(_)));
    let second = s.charge_login_attempt(&name("alice"), &p, at(2)).await;
    assert_eq!(
        second.unwrap(),
        Charge::Throttled {
            retry_after_secs: 1
        }
    );
    s.release_login_attempt(&name("alice"), at(2))
        .await
        .unwrap();
    let third = s.charge_login_attempt(&name("alice"), &p, at(2)).await;
    assert!(matches!(third.unwrap(), Charge::Charged(_)));
    assert_eq!(
        s.login_failures(&name("alice"))
            .await
            .unwrap()
            .unwrap()
            .consecutive_failures,
        2
    );
    // The attempt succeeds: its session clears the failures.
    let alice = add_user(s, "alice").await;
    login(s, &alice, at(2), &policy(MINUTE)).await;
    assert_eq!(s.login_failures(&name("alice")).await.unwrap(), None);
    assert!(charge(s, "alice", 3).await.is_ok());
    // Releasing an unknown name's attempt changes nothing.
    s.release_login_attempt(&name("nobody"), at(3))
        .await
        .unwrap();
    assert_eq!(s.login_failures(&name("nobody")).await.unwrap(), None);
}

async fn login_failure_counters_are_cleared_and_purged(b: Backend) {
    let s = b.store.as_ref();
    for (n, minute) in [("a1", 1), ("a2", 2), ("a3", 3), ("b1", 50)] {
        assert_eq!(charge(s, n, minute).await, charged(1, minute));
    }
    // a2 is locked (at 3 failures, say), whatever its age.
    for minute in [2, 3] {
        assert!(charge(s, "a2", minute).await.is_ok());
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
