//! The audit trail on SQLite. `insert_audit` is also how a login (`sessions`) records its
//! event in its own transaction; the rotation writer binds [`INSERT_AUDIT_EVENT`] itself.

use async_trait::async_trait;
use sqlx::SqliteConnection;

use super::SqliteStore;
use crate::domain::AuditEvent;
use crate::store::rows;
use crate::store::{AuditStore, StoreError, unavailable};

pub(super) const INSERT_AUDIT_EVENT: &str = "INSERT INTO audit_events \
     (at, event_type, user_id, username, source, request_id, detail) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";

pub(super) async fn insert_audit(
    connection: &mut SqliteConnection,
    event: &AuditEvent,
) -> Result<(), StoreError> {
    sqlx::query(INSERT_AUDIT_EVENT)
        .bind(event.time.unix_millis())
        .bind(event.kind.as_str())
        .bind(event.user_id.as_deref())
        .bind(event.username.as_deref())
        .bind(event.source.as_deref())
        .bind(event.request_id.as_deref())
        .bind(event.detail.as_deref())
        .execute(connection)
        .await
        .map_err(unavailable)?;
    Ok(())
}

#[async_trait]
impl AuditStore for SqliteStore {
    async fn insert_audit_event(&self, event: &AuditEvent) -> Result<(), StoreError> {
        let mut connection = self.pool.acquire().await.map_err(unavailable)?;
        insert_audit(&mut connection, event).await
    }

    async fn audit_events(
        &self,
        username: Option<&str>,
        limit: u32,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        let found = sqlx::query(
            "SELECT at, event_type, user_id, username, source, request_id, detail FROM \
                 (SELECT * FROM audit_events WHERE ? IS NULL OR username = ? \
                  ORDER BY id DESC LIMIT ?) \
             ORDER BY id",
        )
        .bind(username)
        .bind(username)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(unavailable)?;
        found.iter().map(rows::audit_event).collect()
    }
}
