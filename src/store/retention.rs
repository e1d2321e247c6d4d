//! Retention, the store's half: what can expire, one bounded batch of it at a time, and the
//! one loop that repeats batches. *When* each kind is purged is the retention job's
//! (`crate::service::housekeeping`); what counts as expired, and how a batch is deleted, is
//! each backend's `retention.rs`.

use async_trait::async_trait;

use super::StoreError;
use crate::domain::{AuditKind, Timestamp};

/// A kind of row that no request can use any more, as of the time it carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expired {
    /// The newest refresh tokens of families that ended (absolute lifetime) or were revoked.
    TokensOfEndedFamilies { now: Timestamp },
    /// What is kept of the used tokens of families that ended or were revoked. While their
    /// family lives they stay: they are what reuse detection recognises.
    UsedTokensOfEndedFamilies { now: Timestamp },
    /// Unused refresh tokens past their idle timeout.
    IdleTokens { now: Timestamp },
    /// The sealed copies (and predecessor links) of tokens issued before `issued_before`: the
    /// grace window of their predecessor has passed, so no retry can use them.
    SealedCopies { issued_before: Timestamp },
    /// Families that ended or were revoked (their tokens are gone by then; any left go by
    /// cascade).
    EndedFamilies { now: Timestamp },
    /// Revoked access-token ids whose token has expired: no verifier accepts the token any more.
    RevokedAccessTokens { now: Timestamp },
    /// Login-failure counters whose last failure is before `before`, except locked ones
    /// (`locked_at` failures or more: they stay until unlocked).
    LoginCounters { before: Timestamp, locked_at: u32 },
    /// Audit events older than `before`.
    AuditEvents { before: Timestamp },
    /// Audit events of one kind older than `before` (a retention per event class).
    AuditEventsOfKind { kind: AuditKind, before: Timestamp },
}

impl Expired {
    /// The time the kind is judged at (`?1`/`$1` of its statement).
    pub(crate) fn time(self) -> Timestamp {
        match self {
            Self::TokensOfEndedFamilies { now }
            | Self::UsedTokensOfEndedFamilies { now }
            | Self::IdleTokens { now }
            | Self::EndedFamilies { now }
            | Self::RevokedAccessTokens { now } => now,
            Self::LoginCounters { before, .. } | Self::AuditEvents { before } => before,
            Self::SealedCopies { issued_before } => issued_before,
            Self::AuditEventsOfKind { before, .. } => before,
        }
    }

    /// For audit events of one kind, that kind's stored name (`?3`/`$3`).
    pub(crate) fn event_type(self) -> Option<&'static str> {
        match self {
            Self::AuditEventsOfKind { kind, .. } => Some(kind.as_str()),
            _ => None,
        }
    }

    /// For login counters, the failures at which one is locked and kept (`?3`/`$3`).
    pub(crate) fn locked_at(self) -> Option<u32> {
        match self {
            Self::LoginCounters { locked_at, .. } => Some(locked_at),
            _ => None,
        }
    }
}

/// Deleting what has expired, one bounded batch at a time.
#[async_trait]
pub trait RetentionStore: Send + Sync {
    /// Deletes at most `limit` rows of `what`, in one short transaction of its own; returns
    /// how many. Idempotent; on PostgreSQL the batch skips rows another transaction holds
    /// (`FOR UPDATE SKIP LOCKED`), so replicas purging at once take disjoint rows, and skips
    /// tokens a rotation holds.
    async fn purge_batch(&self, what: Expired, limit: u32) -> Result<u64, StoreError>;
}

/// Deletes every row of `what` in batches of at most `batch` rows (at least 1), each its own
/// transaction, until a batch deletes fewer than its size; returns the total. Between batches
/// it yields, so a long purge does not hold a runtime worker, and a purge abandoned at
/// shutdown leaves nothing half done.
///
/// # Errors
/// When a batch fails; what earlier batches deleted stays deleted.
pub async fn purge_all<S: RetentionStore + ?Sized>(
    store: &S,
    what: Expired,
    batch: u32,
) -> Result<u64, StoreError> {
    let batch = batch.max(1);
    let mut total = 0;
    loop {
        let deleted = store.purge_batch(what, batch).await?;
        total += deleted;
        if deleted < u64::from(batch) {
            return Ok(total);
        }
        tokio::task::yield_now().await;
    }
}

/// What one run of the retention job deleted, by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Purged {
    pub refresh_tokens: u64,
    /// Sealed copies dropped (rows kept, not deleted).
    pub sealed_copies: u64,
    pub families: u64,
    pub revoked_access_tokens: u64,
    pub login_counters: u64,
    pub audit_events: u64,
}
