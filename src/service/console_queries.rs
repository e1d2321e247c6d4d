//! Read-side questions the web console asks that no other use case answers yet: audit events
//! filtered by type, user and time (newest first), the last hour's activity in buckets for the
//! overview chart, and retiring a signing key at once on behalf of an [`Actor`].
//!
//! The audit queries read the newest [`AUDIT_SCAN`] events through the store's one audit
//! query and filter them here, so they need no new storage method; a filter that matches
//! only older events finds nothing. (The admin API's own audit query by type and time, when it
//! lands, is the one to fold these into.)

use std::sync::Arc;
use std::time::Duration;

use super::{Actor, Auditor, EmergencyRetirement, KeyManager, KeySetupError};
use crate::domain::{AuditEvent, AuditKind, AuditRefresh, Clock, Timestamp, Username};
use crate::store::{Store, StoreError};

/// How many of the newest audit events a console query looks through.
pub const AUDIT_SCAN: u32 = 10_000;

/// Which audit events to show; every set condition must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    pub kind: Option<AuditKind>,
    pub username: Option<Username>,
    /// At or after.
    pub since: Option<Timestamp>,
    /// Before.
    pub until: Option<Timestamp>,
}

impl AuditFilter {
    fn matches(&self, e: &AuditEvent) -> bool {
        self.kind.is_none_or(|k| e.kind == k)
            && self.since.is_none_or(|t| e.time >= t)
            && self.until.is_none_or(|t| e.time < t)
    }
}

/// The newest `limit` events `filter` selects, newest first.
///
/// # Errors
/// When the store fails.
pub async fn audit_events(
    store: &dyn Store,
    filter: &AuditFilter,
    limit: usize,
) -> Result<Vec<AuditEvent>, StoreError> {
    let username = filter.username.as_ref().map(Username::as_str);
    // The store answers oldest first.
    let events = store.audit_events(username, AUDIT_SCAN).await?;
    Ok(events
        .into_iter()
        .rev()
        .filter(|e| filter.matches(e))
        .take(limit)
        .collect())
}

/// What happened in one stretch of time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ActivityCounts {
    pub logins: u64,
    pub failed_logins: u64,
    /// Refreshes as audited: with `audit_refresh = sample:N`, each audited one counts N.
    pub refreshes: u64,
    /// Logins refused by the throttle, locked names included.
    pub throttled: u64,
    pub reuse_detected: u64,
}

impl ActivityCounts {
    fn add(&mut self, kind: AuditKind, refresh_weight: u64) {
        match kind {
            AuditKind::LoginSucceeded => self.logins += 1,
            AuditKind::LoginFailed => self.failed_logins += 1,
            AuditKind::TokenRefreshed => self.refreshes += refresh_weight,
            AuditKind::LoginThrottled | AuditKind::LoginLocked => self.throttled += 1,
            AuditKind::RefreshReuseDetected => self.reuse_detected += 1,
            _ => {}
        }
    }
}

/// Activity over a window ending now, oldest bucket first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Activity {
    pub start: Timestamp,
    pub bucket: Duration,
    pub buckets: Vec<ActivityCounts>,
    pub total: ActivityCounts,
    /// Whether refreshes are audited at all (`audit_refresh` is not `none`).
    pub refreshes_audited: bool,
}

/// The audit events of the last `window` up to `now`, counted in `buckets` equal parts.
///
/// # Errors
/// When the store fails.
pub async fn activity(
    store: &dyn Store,
    now: Timestamp,
    window: Duration,
    buckets: u32,
    audit_refresh: AuditRefresh,
) -> Result<Activity, StoreError> {
    let buckets = buckets.max(1);
    let start = Timestamp::from_unix_millis(
        now.unix_millis()
            .saturating_sub(i64::try_from(window.as_millis()).unwrap_or(i64::MAX)),
    );
    let bucket = window / buckets;
    let bucket_ms = i64::try_from(bucket.as_millis()).unwrap_or(i64::MAX).max(1);
    let refresh_weight = match audit_refresh {
        AuditRefresh::Sample(n) => u64::from(n),
        _ => 1,
    };
    let filter = AuditFilter {
        since: Some(start),
        ..AuditFilter::default()
    };
    let events = audit_events(store, &filter, usize::MAX).await?;
    let mut counts = vec![ActivityCounts::default(); buckets as usize];
    let mut total = ActivityCounts::default();
    for e in &events {
        let index = (e.time.unix_millis() - start.unix_millis()) / bucket_ms;
        let index = usize::try_from(index).unwrap_or(0).min(counts.len() - 1);
        counts[index].add(e.kind, refresh_weight);
        total.add(e.kind, refresh_weight);
    }
    Ok(Activity {
        start,
        bucket,
        buckets: counts,
        total,
        refreshes_audited: !matches!(audit_refresh, AuditRefresh::None),
    })
}

/// [`KeyManager::retire_now`], audited as `authd keys retire --now` audits it, naming `actor`.
///
/// # Errors
/// As [`KeyManager::retire_now`].
pub async fn retire_key_as(
    keys: &KeyManager,
    store: Arc<dyn Store>,
    clock: &dyn Clock,
    actor: &Actor,
    kid: &str,
) -> Result<EmergencyRetirement, KeySetupError> {
    let done = keys.retire_now(kid).await?;
    let detail = format!(
        "kid={} retired={} reason=emergency",
        done.replacement, done.retired
    );
    Auditor::new(store)
        .record(actor.event(AuditKind::KeyRotated, clock.now(), Some(detail)))
        .await;
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: AuditKind, ms: i64) -> AuditEvent {
        AuditEvent::new(kind, Timestamp::from_unix_millis(ms))
    }

    #[test]
    fn filter_applies_every_condition() {
        let f = AuditFilter {
            kind: Some(AuditKind::LoginFailed),
            since: Some(Timestamp::from_unix_millis(10)),
            until: Some(Timestamp::from_unix_millis(20)),
            username: None,
        };
        assert!(f.matches(&event(AuditKind::LoginFailed, 10)));
        assert!(!f.matches(&event(AuditKind::LoginFailed, 20)));
        assert!(!f.matches(&event(AuditKind::LoginFailed, 9)));
        assert!(!f.matches(&event(AuditKind::LoginSucceeded, 15)));
        assert!(AuditFilter::default().matches(&event(AuditKind::KeyRotated, 0)));
    }

    #[test]
    fn counts_weigh_sampled_refreshes() {
        let mut c = ActivityCounts::default();
        c.add(AuditKind::TokenRefreshed, 8);
        c.add(AuditKind::LoginLocked, 8);
        c.add(AuditKind::LoginThrottled, 8);
        c.add(AuditKind::UserCreated, 8);
        assert_eq!((c.refreshes, c.throttled, c.logins), (8, 2, 0));
    }
}
