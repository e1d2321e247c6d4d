//! Administrative listings: keyset pages of users, sessions and audit events.

/// `$role` as a `LIKE` pattern matching it as one word of the space-separated `roles` column
/// (`_` is a role character and a `LIKE` wildcard: escaped).
pub(crate) fn role_pattern(role: &crate::domain::Role) -> String {
    format!("% {} %", role.as_str().replace('_', "\\_"))
}

/// One page of users by a [`crate::store::UserQuery`] `$q`, in username order, with `locked`. The
/// user columns are `rows::user_sql!`'s, so a column added there comes along.
macro_rules! users_page {
    ($q:expr) => {
        sqlx::query(concat!(
            "SELECT p.*, EXISTS (SELECT 1 FROM login_throttle t \
                                 WHERE t.username = p.username AND t.failures >= $1) AS locked \
             FROM (",
            $crate::store::rows::user_sql!(
                "WHERE (CAST($2 AS TEXT) IS NULL OR username > $2) \
                   AND (CAST($3 AS TEXT) IS NULL OR substr(username, 1, length($3)) = $3) \
                   AND (CAST($4 AS TEXT) IS NULL OR (' ' || roles || ' ') LIKE $4 ESCAPE '\\') \
                   AND (NOT CAST($5 AS BOOLEAN) OR NOT enabled) \
                   AND (NOT CAST($6 AS BOOLEAN) OR EXISTS (SELECT 1 FROM login_throttle t \
                        WHERE t.username = users.username AND t.failures >= $1)) \
                 ORDER BY username LIMIT $7"
            ),
            ") p ORDER BY p.username"
        ))
        .bind(i64::from($q.locked_at))
        .bind($q.after.as_deref())
        .bind($q.name_prefix.as_deref())
        .bind($q.role.as_ref().map($crate::store::sql::role_pattern))
        .bind($q.disabled_only)
        .bind($q.locked_only)
        .bind(i64::from($q.limit))
    };
}
pub(crate) use users_page;

/// Every user's live sessions at `$now`, newest first (ties by id), after the
/// [`crate::store::SessionCursor`] `$after` (an `Option<&_>`), at most `$limit`.
macro_rules! live_sessions_page {
    ($now:expr, $after:expr, $limit:expr) => {
        sqlx::query($crate::store::rows::session_sql!(
            "WHERE f.revoked_at IS NULL AND f.expires_at > $1 \
               AND EXISTS (SELECT 1 FROM refresh_tokens t WHERE t.family = f.seq \
                           AND t.expires_at > $1) \
               AND (CAST($2 AS BIGINT) IS NULL OR f.created_at < $2 \
                    OR (f.created_at = $2 AND f.id > $3)) \
             ORDER BY f.created_at DESC, f.id LIMIT $4"
        ))
        .bind($now.unix_millis())
        .bind($after.map(|c: &$crate::store::SessionCursor| c.created_at.unix_millis()))
        .bind($after.map_or("", |c: &$crate::store::SessionCursor| c.id.as_str()))
        .bind(i64::from($limit))
    };
}
pub(crate) use live_sessions_page;

/// A page of audit events by an [`crate::store::AuditQuery`] `$q`, newest first, with ids.
macro_rules! audit_page {
    ($q:expr) => {
        sqlx::query(
            "SELECT id, at, event_type, user_id, username, source, request_id, detail \
             FROM audit_events \
             WHERE (CAST($1 AS TEXT) IS NULL OR event_type = $1) \
               AND (CAST($2 AS TEXT) IS NULL OR username = $2) \
               AND (CAST($3 AS BIGINT) IS NULL OR at >= $3) \
               AND (CAST($4 AS BIGINT) IS NULL OR at < $4) \
               AND (CAST($5 AS BIGINT) IS NULL OR id < $5) \
             ORDER BY id DESC LIMIT $6",
        )
        .bind($q.kind.map(|k: $crate::domain::AuditKind| k.as_str()))
        .bind($q.username.as_deref())
        .bind($q.from.map($crate::domain::Timestamp::unix_millis))
        .bind($q.to.map($crate::domain::Timestamp::unix_millis))
        .bind($q.before_id)
        .bind(i64::from($q.limit))
    };
}
pub(crate) use audit_page;

/// Up to `$limit` audit events with an id above `$after`, oldest first, with ids.
macro_rules! audit_after {
    ($after:expr, $limit:expr) => {
        sqlx::query(
            "SELECT id, at, event_type, user_id, username, source, request_id, detail \
             FROM audit_events WHERE id > $1 ORDER BY id LIMIT $2",
        )
        .bind($after)
        .bind(i64::from($limit))
    };
}
pub(crate) use audit_after;

/// The newest audit event's id, 0 without events (a column `latest`).
macro_rules! latest_audit_id {
    () => {
        sqlx::query_scalar(
            "SELECT CAST(COALESCE(MAX(id), 0) AS BIGINT) AS latest FROM audit_events",
        )
    };
}
pub(crate) use latest_audit_id;
