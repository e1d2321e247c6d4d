//! Audit events.

/// The newest `$limit` audit events (of `$username` only, when `Some`), oldest first.
macro_rules! audit_events {
    ($username:expr, $limit:expr) => {
        sqlx::query(
            "SELECT at, event_type, user_id, username, source, request_id, detail FROM \
                 (SELECT * FROM audit_events WHERE CAST($1 AS TEXT) IS NULL OR username = $1 \
                  ORDER BY id DESC LIMIT $2) e \
             ORDER BY id",
        )
        .bind($username)
        .bind(i64::from($limit))
    };
}
pub(crate) use audit_events;
