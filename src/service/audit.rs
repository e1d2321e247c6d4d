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

/// Who did an administrative change, as its audit event records it: the command line on the
/// database's host (source `cli`), or a principal authorised by the admin API (source: the
/// client's address; detail starting `by=user:<name>` or `by=cert:<subject>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    by: Option<String>,
    source: Option<String>,
    request_id: String,
}

impl Actor {
    /// The command line working on the database directly; one request id for everything
    /// this invocation does.
    pub fn cli() -> Self {
        Self {
            by: None,
            source: Some("cli".into()),
            request_id: super::RequestContext::new(None, None).request_id,
        }
    }

    /// `principal` (e.g. `user:alice`) acting through a request with context `ctx`.
    pub fn remote(principal: String, ctx: &super::RequestContext) -> Self {
        Self {
            by: Some(principal),
            source: ctx.source_label(),
            request_id: ctx.request_id.clone(),
        }
    }

    /// An event of `kind` at `now` by this actor, with `detail` after the actor's name.
    pub fn event(&self, kind: AuditKind, now: Timestamp, detail: Option<String>) -> AuditEvent {
        let mut event = AuditEvent::new(kind, now)
            .source(self.source.clone())
            .request_id(self.request_id.as_str());
        event.detail = match (&self.by, detail) {
            (Some(by), Some(detail)) => Some(format!("by={by}; {detail}")),
            (Some(by), None) => Some(format!("by={by}")),
            (None, detail) => detail,
        };
        event
    }
}

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
