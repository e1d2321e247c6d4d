//! Login throttling per account: the pure rule deciding whether an attempt may go ahead.
//!
//! Failures are counted per normalised username whether or not the user exists, so the
//! answer never depends on existence. After a few free failures each attempt must wait a
//! growing delay; after `max_failures` the name is locked until an administrator unlocks it
//! (NIST SP 800-63B-4 §3.2.2: at most 100 consecutive failures). Storage of the counters is the store's job; this module
//! only decides, from a counter and `now`, whether the next attempt is admitted.

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

/// The outcome of charging a login attempt to its counter ([`ThrottlePolicy::charge`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Charge {
    /// The attempt may check its password, and is counted as a failure until it succeeds:
    /// this is the counter it leaves.
    Charged(FailureCount),
    /// Refused without checking the password, and not counted; retry after this many whole
    /// seconds (≥ 1).
    Throttled { retry_after_secs: u64 },
    /// Refused without checking the password, and not counted: the name is locked.
    Locked,
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

    /// Decides an attempt at `now` against the stored counter `seen` and, when it is admitted,
    /// counts it as a failure before its password is checked: one more failure at `now`, or
    /// the first of a new count when `seen` is missing or forgotten. The store applies this
    /// inside one write transaction (`Store::charge_login_attempt`).
    pub fn charge(&self, seen: Option<FailureCount>, now: Timestamp) -> Charge {
        match self.admit(seen, now) {
            Admission::Allowed => {}
            Admission::Throttled { retry_after_secs } => {
                return Charge::Throttled { retry_after_secs };
            }
            Admission::Locked => return Charge::Locked,
        }
        let earlier = seen
            .filter(|c| !self.is_forgotten(c.last_failure_at, now))
            .map_or(0, |c| c.consecutive_failures);
        Charge::Charged(FailureCount {
            consecutive_failures: earlier.saturating_add(1),
            last_failure_at: now,
        })
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

    #[test]
    fn an_admitted_attempt_is_charged_on_top_of_the_counter_it_saw() {
        let p = ThrottlePolicy {
            forget_after: Duration::from_secs(60),
            ..ThrottlePolicy::default()
        };
        let charged = |seen, now| match p.charge(seen, now) {
            Charge::Charged(c) => (c.consecutive_failures, c.last_failure_at),
            Charge::Throttled { .. } | Charge::Locked => panic!("refused"),
        };
        assert_eq!(charged(None, at(5)), (1, at(5)));
        assert_eq!(charged(count(3), at(5)), (4, at(5)));
        // A forgotten counter starts again.
        assert_eq!(charged(count(3), at(60_000)), (1, at(60_000)));
        // 7 failures: 4 s delay, and a throttled attempt is not counted.
        assert_eq!(
            p.charge(count(7), at(1_000)),
            Charge::Throttled {
                retry_after_secs: 3
            }
        );
        assert_eq!(charged(count(7), at(4_000)), (8, at(4_000)));
    }

    #[test]
    fn max_failures_lock_the_name_for_good() {
        let p = ThrottlePolicy {
            max_failures: 8,
            forget_after: Duration::from_secs(60),
            ..ThrottlePolicy::default()
        };
        assert!(matches!(p.charge(count(7), at(4_000)), Charge::Charged(_)));
        assert_eq!(p.admit(count(8), at(0)), Admission::Locked);
        assert_eq!(p.charge(count(8), at(0)), Charge::Locked);
        // Neither the delay nor forgetting ends a lock.
        assert_eq!(p.admit(count(8), at(10_000_000)), Admission::Locked);
        assert_eq!(p.charge(count(9), at(10_000_000)), Charge::Locked);
        assert_eq!(ThrottlePolicy::default().max_failures, 100);
    }

    proptest::proptest! {
        /// Whatever the policy and the timing of attempts, as the store applies `charge`:
        /// a refused attempt leaves the counter alone, an admitted one adds one failure (or
        /// starts again at 1 once forgotten), the counter never passes `max_failures`, and
        /// once it is there every attempt is refused as locked.
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
            let mut stored: Option<FailureCount> = None;
            let mut now = 0;
            for gap in gaps_ms {
                now += gap;
                let before = stored;
                match p.charge(stored, at(now)) {
                    Charge::Charged(next) => {
                        let expected = match before {
                            Some(c) if !p.is_forgotten(c.last_failure_at, at(now)) => {
                                c.consecutive_failures + 1
                            }
                            _ => 1,
                        };
                        proptest::prop_assert_eq!(next.consecutive_failures, expected);
                        proptest::prop_assert!(next.consecutive_failures <= max_failures);
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
                if stored.is_some_and(|c| p.locks(c)) {
                    proptest::prop_assert_eq!(p.charge(stored, at(now + 1_000_000_000)), Charge::Locked);
                }
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
