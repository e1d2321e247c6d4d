//! The per-username login throttle.

/// The failure counter of `$username` (see `rows::failure_count`).
macro_rules! failure_count_of {
    ($username:expr) => {
        sqlx::query("SELECT failures, last_failure_at FROM login_throttle WHERE username = $1")
            .bind($username.as_str())
    };
}
pub(crate) use failure_count_of;

/// The names whose counter has `$locked_at` failures or more.
macro_rules! locked_usernames {
    ($locked_at:expr) => {
        sqlx::query_scalar("SELECT username FROM login_throttle WHERE failures >= $1")
            .bind(i64::from($locked_at))
    };
}
pub(crate) use locked_usernames;

/// The whole counter of `$username`, failures and attempts in flight (see `rows::attempts`).
macro_rules! attempts_of {
    ($username:expr) => {
        sqlx::query(
            "SELECT failures, last_failure_at, in_flight, in_flight_at FROM login_throttle \
             WHERE username = $1",
        )
        .bind($username.as_str())
    };
}
pub(crate) use attempts_of;

/// Stores `$attempts` (a [`crate::domain::Attempts`]) as the counter of `$username`.
macro_rules! store_attempts {
    ($username:expr, $attempts:expr) => {
        sqlx::query(
            "INSERT INTO login_throttle (username, failures, last_failure_at, in_flight, in_flight_at) \
             VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (username) DO UPDATE SET failures = excluded.failures, \
                 last_failure_at = excluded.last_failure_at, in_flight = excluded.in_flight, \
                 in_flight_at = excluded.in_flight_at",
        )
        .bind($username.as_str())
        .bind(i64::from(
            $attempts.failures.map_or(0, |c| c.consecutive_failures),
        ))
        .bind(
            $attempts
                .failures
                .map_or($attempts.in_flight_at, |c| c.last_failure_at)
                .unix_millis(),
        )
        .bind(i64::from($attempts.in_flight))
        .bind($attempts.in_flight_at.unix_millis())
    };
}
pub(crate) use store_attempts;

/// A successful login on `$username`: no failures, one attempt fewer in flight
/// ([`crate::domain::ThrottlePolicy::succeed`]; a stale count is at most decremented). Run
/// before [`forget_idle_counter`].
macro_rules! succeed_login_attempt {
    ($username:expr) => {
        sqlx::query(
            "UPDATE login_throttle SET failures = 0, \
                 in_flight = CASE WHEN in_flight > 0 THEN in_flight - 1 ELSE 0 END \
             WHERE username = $1",
        )
        .bind($username.as_str())
    };
}
pub(crate) use succeed_login_attempt;

/// Removes `$username`'s counter when it counts nothing (no failures, no attempt in flight).
macro_rules! forget_idle_counter {
    ($username:expr) => {
        sqlx::query(
            "DELETE FROM login_throttle WHERE username = $1 AND failures = 0 AND in_flight = 0",
        )
        .bind($username.as_str())
    };
}
pub(crate) use forget_idle_counter;

/// Removes the failure counter of `$username`.
macro_rules! clear_login_failures {
    ($username:expr) => {
        sqlx::query("DELETE FROM login_throttle WHERE username = $1").bind($username.as_str())
    };
}
pub(crate) use clear_login_failures;
