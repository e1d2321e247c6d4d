//! `StatsStore` on SQLite: row counts, and sizes from the `dbstat` virtual table (each table's
//! pages plus its indexes' pages).

use async_trait::async_trait;

use super::SqliteStore;
use crate::domain::Timestamp;
use crate::store::stats::{StatsStore, StoreStats, TABLES, TableStats, non_negative};
use crate::store::{StoreError, unavailable};

#[async_trait]
impl StatsStore for SqliteStore {
    async fn stats(&self, now: Timestamp) -> Result<StoreStats, StoreError> {
        let mut connection = self.pool.acquire().await.map_err(unavailable)?;
        let mut tables = Vec::with_capacity(TABLES.len());
        for &table in TABLES {
            // Table names come from the fixed list above, never from input.
            let rows: i64 =
                sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}")))
                    .fetch_one(&mut *connection)
                    .await
                    .map_err(unavailable)?;
            let bytes: Option<i64> = sqlx::query_scalar(
                "SELECT SUM(pgsize) FROM dbstat WHERE name = ?1 \
                 OR name IN (SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = ?1)",
            )
            .bind(table)
            .fetch_one(&mut *connection)
            .await
            .ok()
            .flatten();
            tables.push(TableStats {
                table,
                rows: non_negative(rows),
                bytes: bytes.map(non_negative),
            });
        }
        let page_count: i64 = sqlx::query_scalar("PRAGMA page_count")
            .fetch_one(&mut *connection)
            .await
            .map_err(unavailable)?;
        let page_size: i64 = sqlx::query_scalar("PRAGMA page_size")
            .fetch_one(&mut *connection)
            .await
            .map_err(unavailable)?;
        let live_sessions: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM refresh_families WHERE revoked_at IS NULL AND expires_at > ?1",
        )
        .bind(now.unix_millis())
        .fetch_one(&mut *connection)
        .await
        .map_err(unavailable)?;
        let oldest: Option<i64> = sqlx::query_scalar("SELECT MIN(at) FROM audit_events")
            .fetch_one(&mut *connection)
            .await
            .map_err(unavailable)?;
        Ok(StoreStats {
            tables,
            database_bytes: Some(non_negative(page_count.saturating_mul(page_size))),
            live_sessions: non_negative(live_sessions),
            oldest_audit_event: oldest.map(Timestamp::from_unix_millis),
        })
    }
}
