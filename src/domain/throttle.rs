//! Login throttling per account: the pure rule deciding whether an attempt may go ahead.
//!
//! Failures are counted per normalised username whether or not the user exists, so the
//! answer never depends on existence. After a few free failures each attempt must wait a
//! growing delay; after `max_failures` the name is locked until an administrator unlocks it
//! (NIST SP 800-63B-4 §3.2.2: at most 100 consecutive failures). Storage of the counters is the
//! store's job; this module only decides, from a counter and `now`, whether the next attempt is
//! admitted, and what a finished attempt leaves behind.
//!
//! Attempts in flight (admitted, password not yet checked) are counted apart from failures
//! ([`Attempts`]): delays come from completed failures only, so parallel logins with the right
//! password are never refused for being parallel; the hard stop counts failures *and* attempts
//! in flight, so parallel guesses can never pass `max_failures`; once delays apply, one attempt
//! at a time. An in-flight count not renewed for [`IN_FLIGHT_EXPIRY`] is stale (an attempt
//! that crashed before finishing must not block the name for good).

use std::time::Duration;

use super::Timestamp;

/// How failures turn into delays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottlePolicy {
    /// Consecutive failures allowed without any delay.
    pub free_failures: u32,
    /// The longest delay between attempts.
    pub max_delay: Duration,
    /// A counter whose last failure is older than this is forgotten (and may be purged),
    /// unless it is locked.
    pub forget_after: Duration,
    /// Consecutive failures that lock the name: no attempt is admitted any more, however long
    /// it waits, until the counter is cleared (`authd user unlock`).
    pub max_failures: u32,
}

/// NIST SP 800-63B-4 §3.2.2: no more than 100 consecutive failed attempts on one account.
pub const MAX_CONSECUTIVE_FAILURES: u32 = 100;

impl Default for ThrottlePolicy {
    fn default() -> Self {
        Self {
            free_failures: 5,
            max_delay: Duration::from_secs(15 * 60),
            forget_after: Duration::from_secs(24 * 3600),
            max_failures: MAX_CONSECUTIVE_FAILURES,
        }
    }
}

/// A stored failure counter for one normalised username.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailureCount {
    pub consecutive_failures: u32,
    pub last_failure_at: Timestamp,
}

/// How long an in-flight count lasts without a new attempt: far longer than an attempt takes
/// (the hashing queue's wait plus one hash), so only an attempt that never finished outlives it.
pub const IN_FLIGHT_EXPIRY: Duration = Duration::from_secs(60);

/// A stored login counter: completed failures, and attempts admitted but not yet finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attempts {
    /// Completed consecutive failures (`None`: none counted).
    pub failures: Option<FailureCount>,
    /// Attempts admitted and not yet finished.
    pub in_flight: u32,
    /// When the last attempt was admitted: the in-flight count is stale
    /// [`IN_FLIGHT_EXPIRY`] after it.
    pub in_flight_at: Timestamp,
}

/// The outcome of charging a login attempt to its counter ([`ThrottlePolicy::charge`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Charge {
    /// The attempt may check its password; it is counted in flight until it finishes
    /// ([`ThrottlePolicy::fail`], or a success clearing the counter): this is the counter it
    /// leaves.
    Charged(Attempts),
    /// Refused without checking the password, and not counted; retry after this many whole
    /// seconds (≥ 1).
    Throttled { retry_after_secs: u64 },
    /// Refused without checking the password, and not counted: the name is locked.
    Locked,
}

impl Charge {
    /// The counter to store after this charge: only an admitted attempt changes it.
    pub fn stored(self) -> Option<Attempts> {
        match self {
            Self::Charged(attempts) => Some(attempts),
            Self::Throttled { .. } | Self::Locked => None,
        }
    }
}

/// Whether an attempt may check a password now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Allowed,
    /// Refused without checking the password; retry after this many whole seconds (≥ 1).
    Throttled {
        retry_after_secs: u64,
    },
    /// Refused without checking the password until the counter is cleared.
    Locked,
}

impl ThrottlePolicy {
    /// The delay that must pass after the last of `failures` consecutive failures: none up to
    /// `free_failures`, then 1 s, doubling per further failure, capped at `max_delay`.
    pub fn delay_after(&self, failures: u32) -> Duration {
        let Some(extra) = failures.checked_sub(self.free_failures) else {
            return Duration::ZERO;
        };
        // 2^extra seconds; past 2^20 s (12 days) every sane cap has long been reached.
        let secs = 1u64 << extra.min(20);
        Duration::from_secs(secs).min(self.max_delay)
    }

    /// Whether `count` locks its name.
    pub fn locks(&self, count: FailureCount) -> bool {
        count.consecutive_failures >= self.max_failures
    }

    /// Whether a counter last touched at `last_failure_at` is forgotten at `now` (a locked
    /// one is not, whatever this says: see [`Self::admit`]).
    pub fn is_forgotten(&self, last_failure_at: Timestamp, now: Timestamp) -> bool {
        now.since(last_failure_at) >= self.forget_after
    }

    /// The oldest `last_failure_at` a counter may have at `now` and still count: a counter
    /// last touched strictly before this is forgotten (agrees with [`Self::is_forgotten`]).
    pub fn forget_before(&self, now: Timestamp) -> Timestamp {
        let ms = i64::try_from(self.forget_after.as_millis()).unwrap_or(i64::MAX);
        Timestamp::from_unix_millis(now.unix_millis().saturating_sub(ms).saturating_add(1))
    }

    /// Decides whether an attempt at `now` may check a password.
    pub fn admit(&self, count: Option<FailureCount>, now: Timestamp) -> Admission {
        let Some(count) = count else {
            return Admission::Allowed;
        };
        if self.locks(count) {
            return Admission::Locked;
        }
        if self.is_forgotten(count.last_failure_at, now) {
            return Admission::Allowed;
        }
        let delay = self.delay_after(count.consecutive_failures);
        let waited = now.since(count.last_failure_at);
        if waited >= delay {
            return Admission::Allowed;
        }
        let remaining = delay - waited;
        let secs = remaining.as_secs() + u64::from(remaining.subsec_nanos() > 0);
        Admission::Throttled {
            retry_after_secs: secs.max(1),
        }
    }

    /// The failures of `seen` that still count at `now` (none once forgotten, unless locked).
    fn live_failures(&self, seen: Option<&Attempts>, now: Timestamp) -> Option<FailureCount> {
        seen.and_then(|a| a.failures)
            .filter(|c| self.locks(*c) || !self.is_forgotten(c.last_failure_at, now))
    }

    /// Decides an attempt at `now` against the stored counter `seen` and, when it is admitted,
    /// counts it in flight. Refused: a locked name; failures plus attempts in flight at
    /// `max_failures` (so parallel guesses never pass the hard stop); once delays apply,
    /// another attempt in flight, or the delay since the last failure not over. The store
    /// applies this inside one write transaction (`Store::charge_login_attempt`).
    pub fn charge(&self, seen: Option<Attempts>, now: Timestamp) -> Charge {
        let failures = self.live_failures(seen.as_ref(), now);
        let in_flight = seen.map_or(0, |a| a.in_flight_at_now(now));
        let failed = failures.map_or(0, |c| c.consecutive_failures);
        let retry_soon = Charge::Throttled {
            retry_after_secs: 1,
        };
        match self.admit(failures, now) {
            Admission::Locked => return Charge::Locked,
            Admission::Throttled { retry_after_secs } => {
                return Charge::Throttled { retry_after_secs };
            }
            Admission::Allowed => {}
        }
        if failed.saturating_add(in_flight) >= self.max_failures {
            return retry_soon;
        }
        if in_flight > 0 && !self.delay_after(failed).is_zero() {
            return retry_soon;
        }
        Charge::Charged(Attempts {
            failures,
            in_flight: in_flight.saturating_add(1),
            in_flight_at: now,
        })
    }

    /// What an admitted attempt that failed at `now` leaves: one more failure (or the first of
    /// a new count once forgotten), one fewer in flight. Returns the failures and the counter.
    pub fn fail(&self, seen: Option<Attempts>, now: Timestamp) -> (FailureCount, Attempts) {
        let earlier = self
            .live_failures(seen.as_ref(), now)
            .map_or(0, |c| c.consecutive_failures);
        let failures = FailureCount {
            consecutive_failures: earlier.saturating_add(1),
            last_failure_at: now,
        };
        let left = Attempts {
            failures: Some(failures),
            ..Self::release(seen, now)
        };
        (failures, left)
    }

    /// What an admitted attempt that succeeded at `now` leaves: no failures, one fewer in
    /// flight (the others still count against the hard stop).
    pub fn succeed(seen: Option<Attempts>, now: Timestamp) -> Attempts {
        Attempts {
            failures: None,
            ..Self::release(seen, now)
        }
    }

    /// What an admitted attempt that ended without a verdict (a storage or hashing error)
    /// leaves: one fewer in flight, failures as they were.
    pub fn release(seen: Option<Attempts>, now: Timestamp) -> Attempts {
        Attempts {
            failures: seen.and_then(|a| a.failures),
            in_flight: seen.map_or(0, |a| a.in_flight_at_now(now).saturating_sub(1)),
            in_flight_at: seen.map_or(now, |a| a.in_flight_at),
        }
    }
}

impl Attempts {
    /// The attempts still counted in flight at `now`: none once stale.
    pub fn in_flight_at_now(&self, now: Timestamp) -> u32 {
        if now.since(self.in_flight_at) < IN_FLIGHT_EXPIRY {
            self.in_flight
        } else {
            0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_800_000_000_000;

    fn at(ms_after: i64) -> Timestamp {
        Timestamp::from_unix_millis(T0 + ms_after)
    }

    fn count(failures: u32) -> Option<FailureCount> {
        Some(FailureCount {
            consecutive_failures: failures,
            last_failure_at: at(0),
        })
    }

    #[test]
    fn no_counter_is_allowed() {
        assert_eq!(
            ThrottlePolicy::default().admit(None, at(0)),
            Admission::Allowed
        );
    }

    #[test]
    fn free_failures_cost_no_delay() {
        let p = ThrottlePolicy::default();
        for f in 0..5 {
            assert_eq!(p.admit(count(f), at(0)), Admission::Allowed, "{f}");
        }
    }

    #[test]
    fn delay_doubles_after_the_free_failures_and_is_capped() {
        let p = ThrottlePolicy::default();
        let delays: Vec<u64> = (5..=16).map(|f| p.delay_after(f).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 900, 900]);
        assert_eq!(p.delay_after(u32::MAX), Duration::from_secs(900));
    }

    #[test]
    fn attempt_inside_the_delay_is_throttled_with_whole_seconds_to_wait() {
        let p = ThrottlePolicy::default();
        // 7 failures: 4 s delay.
        assert_eq!(
            p.admit(count(7), at(0)),
            Admission::Throttled {
                retry_after_secs: 4
            }
        );
        assert_eq!(
            p.admit(count(7), at(2_500)),
            Admission::Throttled {
                retry_after_secs: 2
            }
        );
        assert_eq!(
            p.admit(count(7), at(3_999)),
            Admission::Throttled {
                retry_after_secs: 1
            }
        );
        assert_eq!(p.admit(count(7), at(4_000)), Admission::Allowed);
    }

    #[test]
    fn old_counters_are_forgotten() {
        let p = ThrottlePolicy {
            max_delay: Duration::from_secs(3600),
            forget_after: Duration::from_secs(60),
            ..ThrottlePolicy::default()
        };
        assert!(matches!(
            p.admit(count(20), at(59_999)),
            Admission::Throttled { .. }
        ));
        assert_eq!(p.admit(count(20), at(60_000)), Admission::Allowed);
        assert_eq!(p.forget_before(at(60_000)), at(1));
        assert!(p.is_forgotten(at(0), at(60_000)));
        assert!(!p.is_forgotten(at(1), at(60_000)));
    }

    fn attempts(failures: u32) -> Option<Attempts> {
        Some(Attempts {
            failures: count(failures),
            in_flight: 0,
            in_flight_at: at(0),
        })
    }

    /// One attempt admitted and then failed at `now`: the failures it leaves.
    fn fail_once(p: &ThrottlePolicy, seen: Option<Attempts>, now: Timestamp) -> (u32, Timestamp) {
        let Charge::Charged(admitted) = p.charge(seen, now) else {
            panic!("refused");
        };
        let (_, left) = p.fail(Some(admitted), now);
        assert_eq!(left.in_flight, 0);
        let failures = left.failures.unwrap();
        (failures.consecutive_failures, failures.last_failure_at)
    }

    #[test]
    fn a_failed_attempt_is_counted_on_top_of_the_counter_it_saw() {
        let p = ThrottlePolicy {
            forget_after: Duration::from_secs(60),
            ..ThrottlePolicy::default()
        };
        assert_eq!(fail_once(&p, None, at(5)), (1, at(5)));
        assert_eq!(fail_once(&p, attempts(3), at(5)), (4, at(5)));
        // A forgotten counter starts again.
        assert_eq!(fail_once(&p, attempts(3), at(60_000)), (1, at(60_000)));
        // 7 failures: 4 s delay, and a throttled attempt is not counted.
        assert_eq!(
            p.charge(attempts(7), at(1_000)),
            Charge::Throttled {
                retry_after_secs: 3
            }
        );
        assert_eq!(fail_once(&p, attempts(7), at(4_000)), (8, at(4_000)));
    }

    #[test]
    fn max_failures_lock_the_name_for_good() {
        let p = ThrottlePolicy {
            max_failures: 8,
            forget_after: Duration::from_secs(60),
            ..ThrottlePolicy::default()
        };
        assert!(matches!(
            p.charge(attempts(7), at(4_000)),
            Charge::Charged(_)
        ));
        assert_eq!(p.admit(count(8), at(0)), Admission::Locked);
        assert_eq!(p.charge(attempts(8), at(0)), Charge::Locked);
        // Neither the delay nor forgetting ends a lock.
        assert_eq!(p.admit(count(8), at(10_000_000)), Admission::Locked);
        assert_eq!(p.charge(attempts(9), at(10_000_000)), Charge::Locked);
        assert_eq!(ThrottlePolicy::default().max_failures, 100);
    }

    /// Issue 16: `n` attempts admitted at once, before any finishes.
    fn admit_parallel(p: &ThrottlePolicy, n: u32, now: Timestamp) -> (u32, Option<Attempts>) {
        let mut stored = None;
        let mut admitted = 0;
        for _ in 0..n {
            if let Charge::Charged(next) = p.charge(stored, now) {
                admitted += 1;
                stored = Some(next);
            }
        }
        (admitted, stored)
    }

    #[test]
    fn parallel_attempts_are_not_throttled_by_each_other_before_delays_apply() {
        let p = ThrottlePolicy::default();
        let (admitted, stored) = admit_parallel(&p, 16, at(0));
        assert_eq!(admitted, 16, "in-flight attempts are not failures");
        // Sixteen right passwords: each success leaves no failure.
        let mut right = stored;
        for _ in 0..16 {
            right = Some(ThrottlePolicy::succeed(right, at(1)));
        }
        assert_eq!(right.unwrap().failures, None);
        assert_eq!(right.unwrap().in_flight, 0);
        // Sixteen wrong ones: sixteen failures.
        let mut wrong = stored;
        for _ in 0..16 {
            wrong = Some(p.fail(wrong, at(1)).1);
        }
        assert_eq!(wrong.unwrap().failures.unwrap().consecutive_failures, 16);
        assert_eq!(wrong.unwrap().in_flight, 0);
    }

    #[test]
    fn attempts_in_flight_count_towards_the_hard_stop() {
        let p = ThrottlePolicy {
            free_failures: 100,
            max_failures: 8,
            ..ThrottlePolicy::default()
        };
        let (admitted, stored) = admit_parallel(&p, 12, at(0));
        assert_eq!(admitted, 8);
        assert_eq!(
            p.charge(stored, at(0)),
            Charge::Throttled {
                retry_after_secs: 1
            }
        );
        let mut left = stored;
        for _ in 0..8 {
            left = Some(p.fail(left, at(1)).1);
        }
        assert_eq!(p.charge(left, at(2)), Charge::Locked);
    }

    #[test]
    fn once_delays_apply_one_attempt_at_a_time() {
        let p = ThrottlePolicy::default();
        let Charge::Charged(one) = p.charge(attempts(5), at(1_000)) else {
            panic!("the delay after 5 failures (1 s) is over");
        };
        assert_eq!(
            p.charge(Some(one), at(1_000)),
            Charge::Throttled {
                retry_after_secs: 1
            }
        );
        // A crashed attempt does not block the name for good: its count goes stale.
        let stale = at(1_000 + i64::try_from(IN_FLIGHT_EXPIRY.as_millis()).unwrap());
        assert!(matches!(p.charge(Some(one), stale), Charge::Charged(_)));
        // A release without a verdict frees the place at once, failures unchanged.
        let released = ThrottlePolicy::release(Some(one), at(1_001));
        assert_eq!(released.in_flight, 0);
        assert_eq!(released.failures, count(5));
        assert!(matches!(
            p.charge(Some(released), at(1_001)),
            Charge::Charged(_)
        ));
    }

    proptest::proptest! {
        /// Whatever the policy and the timing of attempts, one after another as the store
        /// applies `charge` then `fail`: a refused attempt leaves the counter alone, an
        /// admitted one adds one failure (or starts again at 1 once forgotten), the counter
        /// never passes `max_failures`, and once it is there every attempt is refused as
        /// locked.
        #[test]
        fn charging_never_passes_the_hard_stop(
            free_failures in 0u32..8,
            max_failures in 1u32..20,
            max_delay_s in 1u64..100,
            forget_after_s in 1u64..500,
            gaps_ms in proptest::collection::vec(0i64..200_000, 1..120),
        ) {
            let p = ThrottlePolicy {
                free_failures,
                max_delay: Duration::from_secs(max_delay_s),
                forget_after: Duration::from_secs(forget_after_s),
                max_failures,
            };
            let mut stored: Option<Attempts> = None;
            let mut now = 0;
            for gap in gaps_ms {
                now += gap;
                let before = stored.and_then(|a| a.failures);
                match p.charge(stored, at(now)) {
                    Charge::Charged(admitted) => {
                        proptest::prop_assert_eq!(admitted.in_flight, 1);
                        let (_, next) = p.fail(Some(admitted), at(now));
                        let failures = next.failures.map_or(0, |c| c.consecutive_failures);
                        let expected = match before {
                            Some(c) if !p.is_forgotten(c.last_failure_at, at(now)) => {
                                c.consecutive_failures + 1
                            }
                            _ => 1,
                        };
                        proptest::prop_assert_eq!(failures, expected);
                        proptest::prop_assert!(failures <= max_failures);
                        proptest::prop_assert_eq!(next.in_flight, 0);
                        stored = Some(next);
                    }
                    Charge::Throttled { retry_after_secs } => {
                        proptest::prop_assert!(retry_after_secs >= 1);
                        proptest::prop_assert!(before.is_some_and(|c| !p.locks(c)));
                    }
                    Charge::Locked => {
                        proptest::prop_assert!(before.is_some_and(|c| p.locks(c)));
                    }
                }
                if stored.and_then(|a| a.failures).is_some_and(|c| p.locks(c)) {
                    proptest::prop_assert_eq!(p.charge(stored, at(now + 1_000_000_000)), Charge::Locked);
                }
            }
        }

        /// Issue 16: attempts overlapping in any order (admitted, then finished as a failure,
        /// a success or without a verdict, within the in-flight expiry): failures plus attempts
        /// in flight never pass `max_failures`, the stored in-flight count is exactly the
        /// attempts running, and once delays apply no two attempts run at once.
        #[test]
        fn overlapping_attempts_never_pass_the_hard_stop(
            free_failures in 0u32..8,
            max_failures in 1u32..20,
            steps in proptest::collection::vec((0i64..400, 0u8..4), 1..120),
        ) {
            let p = ThrottlePolicy {
                free_failures,
                max_delay: Duration::from_secs(1),
                forget_after: Duration::from_secs(3600),
                max_failures,
            };
            let mut stored: Option<Attempts> = None;
            let mut running = 0u32;
            let mut now = 0;
            for (gap, op) in steps {
                now += gap;
                let failures_before = stored.and_then(|a| a.failures).map_or(0, |c| c.consecutive_failures);
                match op {
                    0 | 1 => {
                        if let Charge::Charged(next) = p.charge(stored, at(now)) {
                            proptest::prop_assert!(running == 0 || p.delay_after(failures_before).is_zero());
                            running += 1;
                            stored = Some(next);
                        }
                    }
                    _ if running == 0 => {}
                    2 => {
                        running -= 1;
                        stored = Some(p.fail(stored, at(now)).1);
                    }
                    _ => {
                        running -= 1;
                        stored = Some(ThrottlePolicy::succeed(stored, at(now)));
                    }
                }
                let a = stored.unwrap_or(Attempts { failures: None, in_flight: 0, in_flight_at: at(0) });
                let failures = a.failures.map_or(0, |c| c.consecutive_failures);
                proptest::prop_assert_eq!(a.in_flight, running);
                proptest::prop_assert!(failures + running <= max_failures);
            }
        }
    }

    #[test]
    fn zero_free_failures_throttles_from_the_first_failure() {
        let p = ThrottlePolicy {
            free_failures: 0,
            ..ThrottlePolicy::default()
        };
        assert_eq!(p.delay_after(0), Duration::from_secs(1));
        assert_eq!(p.admit(None, at(0)), Admission::Allowed);
    }
}
