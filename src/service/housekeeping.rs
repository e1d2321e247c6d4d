//! Periodic clean-up: forgotten login-failure counters and audit events past their retention
//! are deleted in bounded batches, so no single statement holds the database for long.

use std::time::Duration;

use crate::domain::{ThrottlePolicy, Timestamp};
use crate::store::{Store, StoreError};

/// Rows deleted per statement.
pub const PURGE_BATCH: u32 = 1000;

/// What one clean-up removed.
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
    let mut purged = Purged::default();
    let forget_before = throttle.forget_before(now);
    loop {
        let n = store
            .purge_login_failures(forget_before, PURGE_BATCH)
            .await?;
        purged.login_counters += n;
        if n < u64::from(PURGE_BATCH) {
            break;
        }
        tokio::task::yield_now().await;
    }
    let ms = i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
    let audit_before = Timestamp::from_unix_millis(now.unix_millis().saturating_sub(ms));
    loop {
        let n = store.purge_audit_events(audit_before, PURGE_BATCH).await?;
        purged.audit_events += n;
        if n < u64::from(PURGE_BATCH) {
            break;
        }
        tokio::task::yield_now().await;
    }
    Ok(purged)
}
