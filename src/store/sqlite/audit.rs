//! The audit trail on SQLite. `insert_audit` is also how a login (`sessions`) records its
//! event in its own transaction; the rotation writer binds [`INSERT_AUDIT_EVENT`] itself.

use async_trait::async_trait;
use sqlx::SqliteConnection;

use super::SqliteStore;
use crate::domain::AuditEvent;
use crate::store::rows;
use crate::store::{AuditQuery, AuditRecord, AuditStore, StoreError, sql, unavailable};

pub(super) const INSERT_AUDIT_EVENT: &str = "INSERT INTO audit_events \
     (at, event_type, user_id, username, source, request_id, detail) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";

/// Records `events`, one statement each.
pub(super) async fn insert_audit(
    connection: &mut SqliteConnection,
    events: &[AuditEvent],
) -> Result<(), StoreError> {
    for event in events {
        sqlx::query(INSERT_AUDIT_EVENT)
            .bind(event.time.unix_millis())
            .bind(event.kind.as_str())
            .bind(event.user_id.as_deref())
            .bind(event.username.as_deref())
            .bind(event.source.as_deref())
            .bind(event.request_id.as_deref())
            .bind(event.detail.as_deref())
            .execute(&mut *connection)
            .await
            .map_err(unavailable)?;
    }
    Ok(())
}

#[async_trait]
impl AuditStore for SqliteStore {
    async fn insert_audit_event(&self, event: &AuditEvent) -> Result<(), StoreError> {
        let mut connection = self.pool.acquire().await.map_err(unavailable)?;
        insert_audit(&mut connection, std::slice::from_ref(event)).await
    }

    async fn audit_events(
        &self,
        username: Option<&str>,
        limit: u32,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        let found = sql::audit_events!(username, limit)
            .fetch_all(&self.pool)
            .await
            .map_err(unavailable)?;
        found.iter().map(rows::audit_event).collect()
    }

    async fn query_audit(&self, query: &AuditQuery) -> Result<Vec<AuditRecord>, StoreError> {
        let found = sql::audit_page!(query)
            .fetch_all(&self.pool)
            .await
            .map_err(unavailable)?;
        found.iter().map(rows::audit_record).collect()
    }

    async fn audit_after(&self, after_id: i64, limit: u32) -> Result<Vec<AuditRecord>, StoreError> {
        let found = sql::audit_after!(after_id, limit)
            .fetch_all(&self.pool)
            .await
            .map_err(unavailable)?;
        found.iter().map(rows::audit_record).collect()
    }

    async fn latest_audit_id(&self) -> Result<i64, StoreError> {
        sql::latest_audit_id!()
            .fetch_one(&self.pool)
            .await
            .map_err(unavailable)
    }
}
