//! Retention: the one background job that owns every lifetime, deleting what no request can use
//! any more, on two schedules.
//!
//! - Every `purge_interval` ([`purge_ended_sessions`]): refresh tokens and sessions that ended,
//!   and the revocations of access tokens that have expired.
//! - Every `maintenance_interval`: idle per-source rate-limit buckets, and
//!   ([`purge_expired_records`]) login-failure counters the throttle has forgotten and audit
//!   events past their retention.
//!
//! What counts as expired for each kind, and how one batch is deleted, belong to the store
//! ([`crate::store::Expired`], [`crate::store::RetentionStore`]); every delete goes through the
//! store's one batching loop ([`crate::store::purge_all`]) in batches of [`PURGE_BATCH`] rows,
//! each committed on its own, so no statement holds the database for long and a purge abandoned
//! at shutdown leaves nothing half done. The deletes are idempotent, so every replica runs the
//! job without coordination.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::{Instant, MissedTickBehavior, interval_at};
use tokio_util::sync::CancellationToken;

use super::TokenService;
use crate::domain::{AuditKind, AuditRetention, ThrottlePolicy, Timestamp, audit_retention};
use crate::store::{Expired, Purged, Store, StoreError, purge_all};

/// Rows deleted per statement: short statements, short locks.
pub const PURGE_BATCH: u32 = 1000;

/// When the job runs each of its purges.
#[derive(Debug, Clone)]
pub struct Schedule {
    /// Ended refresh tokens and sessions, expired access-token revocations (the first run one
    /// interval after start).
    pub purge_interval: Duration,
    /// Rate-limit buckets, throttle counters and audit events (the first run one interval
    /// after start, so start-up's first requests do not wait behind a purge for the
    /// database: on PostgreSQL that costs a second connection, BENCHMARKS.md "start-up").
    pub maintenance_interval: Duration,
    /// How long audit events are kept, per event class.
    pub audit_retention: AuditRetention,
}

/// Runs the purges on `schedule` until `stop` is cancelled. A failed purge is logged and tried
/// again at its next tick; it never stops the job. A purge in progress at shutdown is abandoned.
pub async fn run(service: Arc<TokenService>, schedule: Schedule, stop: CancellationToken) {
    let start = Instant::now();
    let mut sessions = interval_at(start + schedule.purge_interval, schedule.purge_interval);
    let mut records = interval_at(
        start + schedule.maintenance_interval,
        schedule.maintenance_interval,
    );
    sessions.set_missed_tick_behavior(MissedTickBehavior::Delay);
    records.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = sessions.tick() => tokio::select! {
                () = stop.cancelled() => return,
                result = service.purge_ended_sessions() => match result {
                    Ok(p) => tracing::info!(
                        refresh_tokens = p.refresh_tokens,
                        sealed_copies = p.sealed_copies,
                        families = p.families,
                        revoked_access_tokens = p.revoked_access_tokens,
                        "purged ended sessions"
                    ),
                    Err(e) => tracing::warn!(error = %e, "purge failed; retrying at the next interval"),
                },
            },
            _ = records.tick() => {
                service.limiter().retain_recent();
                tokio::select! {
                    () = stop.cancelled() => return,
                    result = service.purge_expired(schedule.audit_retention.clone()) => match result {
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

/// Deletes refresh tokens and sessions that ended at `now` (absolute lifetime, idle timeout or
/// revocation) and the revocations of access tokens expired by then, in batches of `batch`
/// rows. Tokens go before their families; used tokens of live families stay (reuse detection
/// needs them).
///
/// # Errors
/// When the store fails; what was deleted before stays deleted.
pub async fn purge_ended_sessions(
    store: &dyn Store,
    now: Timestamp,
    batch: u32,
) -> Result<Purged, StoreError> {
    let purge = |what| purge_all(store, what, batch);
    Ok(Purged {
        refresh_tokens: purge(Expired::TokensOfEndedFamilies { now }).await?
            + purge(Expired::UsedTokensOfEndedFamilies { now }).await?
            + purge(Expired::IdleTokens { now }).await?,
        families: purge(Expired::EndedFamilies { now }).await?,
        revoked_access_tokens: purge(Expired::RevokedAccessTokens { now }).await?,
        ..Purged::default()
    })
}

/// Drops the sealed copies of tokens issued more than `grace` before `now` (with their links
/// to their predecessors): the grace window in which the predecessor may be presented again
/// has passed, so nothing can open them. A rotation drops a family's copy anyway; this takes
/// the copies of sessions that went quiet. Returns how many.
///
/// # Errors
/// When the store fails; what was dropped before stays dropped.
pub async fn drop_expired_sealed_copies(
    store: &dyn Store,
    now: Timestamp,
    grace: Duration,
    batch: u32,
) -> Result<u64, StoreError> {
    let ms = i64::try_from(grace.as_millis()).unwrap_or(i64::MAX);
    let issued_before = Timestamp::from_unix_millis(now.unix_millis().saturating_sub(ms));
    purge_all(store, Expired::SealedCopies { issued_before }, batch).await
}

/// Deletes counters the throttle has forgotten at `now` (never a locked one) and audit events
/// past their class's `retention`, in batches of `batch` rows: one statement over every event
/// when all classes are kept alike, else one per event type (each scans the events older
/// than its own retention).
///
/// # Errors
/// When the store fails; what was deleted before stays deleted.
pub async fn purge_expired_records(
    store: &dyn Store,
    now: Timestamp,
    throttle: &ThrottlePolicy,
    retention: &AuditRetention,
    batch: u32,
) -> Result<Purged, StoreError> {
    let counters = Expired::LoginCounters {
        before: throttle.forget_before(now),
        locked_at: throttle.max_failures,
    };
    let login_counters = purge_all(store, counters, batch).await?;
    let mut audit_events = 0;
    if retention.is_uniform() {
        let before = audit_retention::cutoff(retention.default_retention(), now);
        audit_events += purge_all(store, Expired::AuditEvents { before }, batch).await?;
    } else {
        for kind in AuditKind::ALL {
            let before = retention.cutoff(kind, now);
            let events = Expired::AuditEventsOfKind { kind, before };
            audit_events += purge_all(store, events, batch).await?;
        }
    }
    Ok(Purged {
        login_counters,
        audit_events,
        ..Purged::default()
    })
}
