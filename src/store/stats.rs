//! What the database holds, for an operator watching it grow before the disk fills: rows and
//! bytes per table, the live sessions, the oldest audit event (`authd stats`).

use async_trait::async_trait;

use super::StoreError;
use crate::domain::Timestamp;

/// Every table authd keeps, in the order `authd stats` shows them.
pub const TABLES: &[&str] = &[
    "users",
    "refresh_families",
    "refresh_tokens",
    "used_refresh_tokens",
    "revoked_access_tokens",
    "api_keys",
    "signing_keys",
    "login_throttle",
    "audit_events",
];

/// One table: its rows, and its size on disk with its indexes, where the database tells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableStats {
    pub table: &'static str,
    pub rows: u64,
    pub bytes: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreStats {
    pub tables: Vec<TableStats>,
    /// The whole database (SQLite: the main file; PostgreSQL: `pg_database_size`).
    pub database_bytes: Option<u64>,
    /// Sessions neither revoked nor past their absolute lifetime.
    pub live_sessions: u64,
    pub oldest_audit_event: Option<Timestamp>,
}

#[async_trait]
pub trait StatsStore: Send + Sync {
    /// # Errors
    /// When the database fails.
    async fn stats(&self, now: Timestamp) -> Result<StoreStats, StoreError>;
}

/// A count or size from the database as `u64` (they are never negative).
pub(crate) fn non_negative(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}
