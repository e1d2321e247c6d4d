//! Storage per refresh: what the database keeps of a run, table by table (`authd bench
//! --storage`). The load generator reads the server's database itself (the same
//! configuration), before the run and after it, once the retention job's purges have run, so
//! what is counted is what stays. It owns the figures and their printing, not the queries
//! (the store's `StatsStore`, as `authd stats`) nor the purges (`service::housekeeping`).

use std::fmt;
use std::time::Duration;

use serde_json::{Value, json};

use authd::domain::Timestamp;
use authd::service::housekeeping::{PURGE_BATCH, drop_expired_sealed_copies, purge_ended_sessions};
use authd::store::{Purged, Store, StoreError, StoreStats};

/// The database before a run and after it (purged), and the refreshes the run answered.
#[derive(Debug, Clone)]
pub struct StorageUse {
    pub refreshes: u64,
    pub before: StoreStats,
    pub after: StoreStats,
    pub purged: Purged,
}

/// One table's growth over the run.
#[derive(Debug, Clone, PartialEq)]
pub struct TableGrowth {
    pub table: &'static str,
    pub rows: i64,
    pub bytes: Option<i64>,
    pub bytes_per_refresh: Option<f64>,
}

/// The store's figures now.
///
/// # Errors
/// When the database fails.
pub async fn snapshot(store: &dyn Store, now: Timestamp) -> Result<StoreStats, StoreError> {
    store.stats(now).await
}

/// What the retention job would delete at `now` (ended sessions, sealed copies past `grace`),
/// done now, so the figures after a run are those of a database the job keeps.
///
/// # Errors
/// When the database fails.
pub async fn purge(
    store: &dyn Store,
    now: Timestamp,
    grace: Duration,
) -> Result<Purged, StoreError> {
    let mut purged = purge_ended_sessions(store, now, PURGE_BATCH).await?;
    purged.sealed_copies = drop_expired_sealed_copies(store, now, grace, PURGE_BATCH).await?;
    Ok(purged)
}

fn signed(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl StorageUse {
    /// Each table's growth, in the order `authd stats` shows them.
    pub fn growth(&self) -> Vec<TableGrowth> {
        self.after
            .tables
            .iter()
            .map(|after| {
                let before = self.before.tables.iter().find(|t| t.table == after.table);
                let rows = signed(after.rows) - before.map_or(0, |t| signed(t.rows));
                let bytes = after
                    .bytes
                    .map(|a| signed(a) - before.and_then(|t| t.bytes).map_or(0, signed));
                TableGrowth {
                    table: after.table,
                    rows,
                    bytes,
                    bytes_per_refresh: bytes.and_then(|b| self.per_refresh(b)),
                }
            })
            .collect()
    }

    /// Bytes kept per refresh, over every table.
    pub fn total_bytes_per_refresh(&self) -> Option<f64> {
        let total: Option<i64> = self.growth().iter().map(|g| g.bytes).sum();
        total.and_then(|b| self.per_refresh(b))
    }

    #[allow(clippy::cast_precision_loss)] // figures for a person to read
    fn per_refresh(&self, bytes: i64) -> Option<f64> {
        (self.refreshes > 0).then(|| bytes as f64 / self.refreshes as f64)
    }

    pub fn to_json(&self) -> Value {
        let tables: serde_json::Map<String, Value> = self
            .growth()
            .into_iter()
            .map(|g| {
                (
                    g.table.to_owned(),
                    json!({
                        "rows": g.rows,
                        "bytes": g.bytes,
                        "bytes_per_refresh": g.bytes_per_refresh,
                    }),
                )
            })
            .collect();
        json!({
            "refreshes": self.refreshes,
            "bytes_per_refresh": self.total_bytes_per_refresh(),
            "tables": tables,
            "purged": {
                "refresh_tokens": self.purged.refresh_tokens,
                "families": self.purged.families,
                "sealed_copies": self.purged.sealed_copies,
            },
        })
    }
}

impl fmt::Display for StorageUse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "storage kept after {} refreshes and a purge (rows, bytes, bytes per refresh):",
            self.refreshes
        )?;
        for g in self.growth() {
            if g.rows == 0 && g.bytes.unwrap_or(0) == 0 {
                continue;
            }
            write!(f, "  {:<22} {:>+10} rows", g.table, g.rows)?;
            match (g.bytes, g.bytes_per_refresh) {
                (Some(b), Some(per)) => writeln!(f, " {b:>+13} B {per:>8.1} B/refresh")?,
                (Some(b), None) => writeln!(f, " {b:>+13} B")?,
                _ => writeln!(f)?,
            }
        }
        match self.total_bytes_per_refresh() {
            Some(per) => writeln!(f, "  total {per:.1} bytes per refresh"),
            None => writeln!(f, "  total: no refresh answered"),
        }
    }
}
