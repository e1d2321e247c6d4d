//! The one read-side question only the web console asks: the last hour's activity in buckets
//! for the overview chart. (Its audit log and key retirement use the admin API's own use
//! cases, `AuditReader` and `KeyManager::retire_as`.)

use std::time::Duration;

use crate::domain::{AuditKind, AuditRefresh, Timestamp};
use crate::store::{AuditQuery, Store, StoreError};

/// The most events the overview counts (the newest of the window): past this, a busy hour's
/// oldest buckets read low rather than the page reading the whole trail.
pub const ACTIVITY_SCAN: u32 = 100_000;

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
    let records = store
        .query_audit(&AuditQuery {
            kind: None,
            username: None,
            from: Some(start),
            to: None,
            before_id: None,
            limit: ACTIVITY_SCAN,
        })
        .await?;
    let mut counts = vec![ActivityCounts::default(); buckets as usize];
    let mut total = ActivityCounts::default();
    for e in records.iter().map(|r| &r.event) {
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

#[cfg(test)]
mod tests {
    use super::*;

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
