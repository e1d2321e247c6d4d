//! The audit trail on PostgreSQL. `insert_audit` writes any number of events in one
//! statement: a login's (`sessions`) and a whole rotation batch's (`rotations`).

use async_trait::async_trait;
use sqlx::PgConnection;

use super::{PostgresStore, within_deadline};
use crate::domain::AuditEvent;
use crate::store::rows;
use crate::store::{AuditQuery, AuditRecord, AuditStore, StoreError, sql, unavailable};

/// Records `events` in one statement (none when there are none).
pub(super) async fn insert_audit(
    connection: &mut PgConnection,
    events: &[AuditEvent],
) -> Result<(), StoreError> {
    if events.is_empty() {
        return Ok(());
    }
    let column = |field: fn(&AuditEvent) -> Option<&str>| -> Vec<Option<&str>> {
        events.iter().map(field).collect()
    };
    sqlx::query(
        "INSERT INTO audit_events (at, event_type, user_id, username, source, request_id, detail) \
         SELECT * FROM UNNEST($1::BIGINT[], $2::TEXT[], $3::TEXT[], $4::TEXT[], $5::TEXT[], \
                              $6::TEXT[], $7::TEXT[])",
    )
    .bind(
        events
            .iter()
            .map(|e| e.time.unix_millis())
            .collect::<Vec<_>>(),
    )
    .bind(events.iter().map(|e| e.kind.as_str()).collect::<Vec<_>>())
    .bind(column(|e| e.user_id.as_deref()))
    .bind(column(|e| e.username.as_deref()))
    .bind(column(|e| e.source.as_deref()))
    .bind(column(|e| e.request_id.as_deref()))
    .bind(column(|e| e.detail.as_deref()))
    .execute(connection)
    .await
    .map_err(unavailable)?;
    Ok(())
}

#[async_trait]
impl AuditStore for PostgresStore {
    async fn insert_audit_event(&self, event: &AuditEvent) -> Result<(), StoreError> {
        within_deadline(async {
            let mut connection = self.pool.acquire().await.map_err(unavailable)?;
            insert_audit(&mut connection, std::slice::from_ref(event)).await
        })
        .await
    }

    async fn audit_events(
        &self,
        username: Option<&str>,
        limit: u32,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        let found = within_deadline(async {
            sql::audit_events!(username, limit)
                .fetch_all(&self.pool)
                .await
                .map_err(unavailable)
        })
        .await?;
        found.iter().map(rows::audit_event).collect()
    }

    async fn query_audit(&self, query: &AuditQuery) -> Result<Vec<AuditRecord>, StoreError> {
        let found = within_deadline(async {
            sql::audit_page!(query)
                .fetch_all(&self.pool)
                .await
                .map_err(unavailable)
        })
        .await?;
        found.iter().map(rows::audit_record).collect()
    }

    async fn audit_after(&self, after_id: i64, limit: u32) -> Result<Vec<AuditRecord>, StoreError> {
        let found = within_deadline(async {
            sql::audit_after!(after_id, limit)
                .fetch_all(&self.pool)
                .await
                .map_err(unavailable)
        })
        .await?;
        found.iter().map(rows::audit_record).collect()
    }

    async fn latest_audit_id(&self) -> Result<i64, StoreError> {
        within_deadline(async {
            sql::latest_audit_id!()
                .fetch_one(&self.pool)
                .await
                .map_err(unavailable)
        })
        .await
    }
}
