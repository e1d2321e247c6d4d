//! The audit trail: every event is logged as a JSON line on the `authd::audit` tracing target
//! and stored in the database, where `authd audit tail` reads it and the housekeeping task
//! purges it after the retention period.
//!
//! Events carry no secret (see [`AuditEvent`]). Storing one must not fail the operation it
//! records: a storage error is logged instead.

use std::sync::Arc;

use crate::domain::{AuditEvent, AuditKind, Timestamp};
use crate::store::{Store, StoreError};

/// The tracing target of audit events.
pub const AUDIT_TARGET: &str = "authd::audit";

/// Writes audit events to the log and the store.
#[derive(Clone)]
pub struct Auditor {
    store: Arc<dyn Store>,
}

impl std::fmt::Debug for Auditor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auditor").finish_non_exhaustive()
    }
}

impl Auditor {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self { store }
    }

    /// Logs and stores one event.
    pub async fn record(&self, event: AuditEvent) {
        log(&event);
        if let Err(e) = self.store.insert_audit_event(&event).await {
            tracing::error!(error = %e, event_type = event.kind.as_str(),
                "audit event could not be stored");
        }
    }

    /// Logs events the store has already recorded (in the transaction of the change they
    /// describe, as a refresh does).
    pub fn log_stored(&self, events: &[AuditEvent]) {
        events.iter().for_each(log);
    }

    /// Records that signing key `kid` became the active one. For the key-rotation code.
    pub async fn key_rotated(
        &self,
        kid: &str,
        now: Timestamp,
        source: Option<String>,
        request_id: &str,
    ) {
        self.record(
            AuditEvent::new(AuditKind::KeyRotated, now)
                .source(source)
                .request_id(request_id)
                .detail(format!("kid={kid}")),
        )
        .await;
    }

    /// The newest `limit` events, of `username` only when given, oldest first.
    ///
    /// # Errors
    /// When the store fails.
    pub async fn tail(
        &self,
        username: Option<&str>,
        limit: u32,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        self.store.audit_events(username, limit).await
    }
}

fn log(e: &AuditEvent) {
    tracing::info!(
        target: AUDIT_TARGET,
        time = %e.time,
        event_type = e.kind.as_str(),
        user_id = e.user_id.as_deref(),
        username = e.username.as_deref(),
        source = e.source.as_deref(),
        request_id = e.request_id.as_deref(),
        detail = e.detail.as_deref(),
        "audit"
    );
}

/// An event as one JSON object, as `authd audit tail` prints it.
pub fn to_json(e: &AuditEvent) -> serde_json::Value {
    serde_json::json!({
        "time": e.time.to_string(),
        "event_type": e.kind.as_str(),
        "user_id": e.user_id,
        "username": e.username,
        "source": e.source,
        "request_id": e.request_id,
        "detail": e.detail,
    })
}
