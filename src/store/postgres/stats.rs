//! `StatsStore` on PostgreSQL: row counts, and sizes from `pg_total_relation_size` (table,
//! indexes and TOAST).

use async_trait::async_trait;

use super::{PostgresStore, within_deadline};
use crate::domain::Timestamp;
use crate::store::stats::{StatsStore, StoreStats, TABLES, TableStats, non_negative};
use crate::store::{StoreError, unavailable};

#[async_trait]
impl StatsStore for PostgresStore {
    async fn stats(&self, now: Timestamp) -> Result<StoreStats, StoreError> {
        within_deadline(async {
            let mut connection = self.pool.acquire().await.map_err(unavailable)?;
            let mut tables = Vec::with_capacity(TABLES.len());
            for &table in TABLES {
                // Table names come from the fixed list above, never from input.
                let (rows, bytes): (i64, i64) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT (SELECT COUNT(*) FROM {table}), pg_total_relation_size('{table}')"
                )))
                .fetch_one(&mut *connection)
                .await
                .map_err(unavailable)?;
                tables.push(TableStats {
                    table,
                    rows: non_negative(rows),
                    bytes: Some(non_negative(bytes)),
                });
            }
            let (database_bytes, live_sessions, oldest): (i64, i64, Option<i64>) = sqlx::query_as(
                "SELECT pg_database_size(current_database()), \
                 (SELECT COUNT(*) FROM refresh_families \
                  WHERE revoked_at IS NULL AND expires_at > $1), \
                 (SELECT MIN(at) FROM audit_events)",
            )
            .bind(now.unix_millis())
            .fetch_one(&mut *connection)
            .await
            .map_err(unavailable)?;
            Ok(StoreStats {
                tables,
                database_bytes: Some(non_negative(database_bytes)),
                live_sessions: non_negative(live_sessions),
                oldest_audit_event: oldest.map(Timestamp::from_unix_millis),
            })
        })
        .await
    }
}
