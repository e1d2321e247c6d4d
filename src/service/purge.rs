//! The purge job: every `purge_interval`, delete what no request can use any more.
//!
//! What counts as purgeable, and the batching, belong to the store
//! ([`crate::store::Store::purge_expired`]); this module only schedules it and stops with the
//! server. The deletes are idempotent, so every replica runs the job without coordination.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::domain::Clock;
use crate::store::Store;

/// Rows deleted per statement: short statements, short locks.
pub const PURGE_BATCH: u32 = 1000;

/// Purges every `interval` (the first run one interval after start) until `stop` is cancelled.
/// A failed run is logged and retried at the next tick; it never stops the job.
pub async fn run_purge_job(
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    interval: Duration,
    stop: CancellationToken,
) {
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            _ = ticks.tick() => {}
        }
        // A purge in progress is abandoned at shutdown: each batch commits on its own, so
        // nothing is left half done.
        tokio::select! {
            () = stop.cancelled() => break,
            result = store.purge_expired(clock.now(), PURGE_BATCH) => match result {
                Ok(purged) => tracing::info!(
                    tokens = purged.tokens, families = purged.families, "purged expired refresh tokens"
                ),
                Err(e) => tracing::warn!(error = %e, "purge failed; retrying at the next interval"),
            },
        }
    }
}
