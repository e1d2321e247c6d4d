//! Housekeeping: one background job that deletes what no request can use any more, on two
//! schedules.
//!
//! - Every `purge_interval`: refresh tokens and sessions that ended. What counts as ended, and
//!   the batching, belong to the store ([`crate::store::Store::purge_expired`]).
//! - Every `maintenance_interval`: idle per-source rate-limit buckets, login-failure counters the
//!   throttle has forgotten, and audit events past their retention.
//!
//! Every delete runs in batches of [`PURGE_BATCH`] rows, each committed on its own, so no
//! statement holds the database for long and a purge abandoned at shutdown leaves nothing half
//! done. The deletes are idempotent, so every replica runs the job without coordination.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::{Instant, MissedTickBehavior, interval_at};
use tokio_util::sync::CancellationToken;

use super::TokenService;
use crate::domain::{ThrottlePolicy, Timestamp};
use crate::store::{Store, StoreError};

/// Rows deleted per statement: short statements, short locks.
pub const PURGE_BATCH: u32 = 1000;

/// When the job runs each of its purges.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    /// Ended refresh tokens and sessions (the first run one interval after start).
    pub purge_interval: Duration,
    /// Rate-limit buckets, throttle counters and audit events (the first run at start).
    pub maintenance_interval: Duration,
    /// How long audit events are kept.
    pub audit_retention: Duration,
}

/// Runs the purges on `schedule` until `stop` is cancelled. A failed purge is logged and tried
/// again at its next tick; it never stops the job. A purge in progress at shutdown is abandoned.
pub async fn run(service: Arc<TokenService>, schedule: Schedule, stop: CancellationToken) {
    let start = Instant::now();
    let mut sessions = interval_at(start + schedule.purge_interval, schedule.purge_interval);
    let mut records = interval_at(start, schedule.maintenance_interval);
    sessions.set_missed_tick_behavior(MissedTickBehavior::Delay);
    records.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = sessions.tick() => tokio::select! {
                () = stop.cancelled() => return,
                result = service.purge_ended_sessions() => match result {
                    Ok(p) => tracing::info!(
                        tokens = p.tokens, families = p.families, "purged expired refresh tokens"
                    ),
                    Err(e) => tracing::warn!(error = %e, "purge failed; retrying at the next interval"),
                },
            },
            _ = records.tick() => {
                service.limiter().retain_recent();
                tokio::select! {
                    () = stop.cancelled() => return,
                    result = service.purge_expired(schedule.audit_retention) => match result {
                        Ok(p) if p.login_counters + p.audit_events > 0 => tracing::info!(
                            login_counters = p.login_counters,
                            audit_events = p.audit_events,
                            "purged expired records"
                        ),
                        Ok(_) => {}
                        Err(e) => tracing::warn!(error = %e, "housekeeping failed; will retry"),
                    },
                }
            }
        }
    }
}

/// What one purge of throttle counters and audit events removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Purged {
    pub login_counters: u64,
    pub audit_events: u64,
}

/// Deletes counters the throttle has forgotten and audit events older than `retention`.
///
/// # Errors
/// When the store fails; what was deleted before stays deleted.
pub async fn purge_expired(
    store: &dyn Store,
    now: Timestamp,
    throttle: &ThrottlePolicy,
    retention: Duration,
) -> Result<Purged, StoreError> {
    let forget_before = throttle.forget_before(now);
    let ms = i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
    let audit_before = Timestamp::from_unix_millis(now.unix_millis().saturating_sub(ms));
    Ok(Purged {
        login_counters: in_batches(|| {
            store.purge_login_failures(forget_before, throttle.max_failures, PURGE_BATCH)
        })
        .await?,
        audit_events: in_batches(|| store.purge_audit_events(audit_before, PURGE_BATCH)).await?,
    })
}

/// Repeats `batch` (one delete of at most [`PURGE_BATCH`] rows) until one deletes fewer, and
/// returns the total.
async fn in_batches<F, Fut>(mut batch: F) -> Result<u64, StoreError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<u64, StoreError>>,
{
    let mut total = 0;
    loop {
        let n = batch().await?;
        total += n;
        if n < u64::from(PURGE_BATCH) {
            return Ok(total);
        }
        tokio::task::yield_now().await;
    }
}
