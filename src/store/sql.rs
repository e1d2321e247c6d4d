//! The statements both backends send alike, with their parameters bound. Placeholders are
//! `$n` (sqlx binds them on SQLite as on PostgreSQL) and the SQL is what both dialects read the
//! same way (`CAST(… AS …)` rather than `::`). Each macro expands to a bound `sqlx::query`, run
//! by the backend on its pool or in its transaction, with its own deadline, retries and error
//! mapping. What differs between the databases (locking, batching, `SKIP LOCKED`, arrays)
//! stays in the backend modules.

/// Revokes family `$3` at `$1` for reason `$2`, unless it already is. (Also run by the SQLite
/// rotation writer through rusqlite, which binds `$1…$3` in order.)
pub(crate) const REVOKE_FAMILY: &str = "UPDATE refresh_families \
     SET revoked_at = $1, revoked_reason = $2 WHERE id = $3 AND revoked_at IS NULL";
/// Drops the sealed copy of family `$1`'s newest token: a revoked family's is useless.
pub(crate) const DROP_SEALED_COPIES: &str = "UPDATE refresh_tokens \
     SET sealed_by_predecessor = NULL, predecessor = NULL \
     WHERE family = (SELECT seq FROM refresh_families WHERE id = $1) \
       AND sealed_by_predecessor IS NOT NULL";

/// Records used token `$1` (its [`super::rows::used_key`]) of family `$2` (its `seq`). Two
/// used tokens with one prefix leave it with no family, so neither is recognised (see
/// [`super::rows::USED_KEY_BYTES`]).
pub(crate) const INSERT_USED_TOKEN: &str = "INSERT INTO used_refresh_tokens (hash, family) \
     VALUES ($1, $2) ON CONFLICT (hash) DO UPDATE SET family = NULL";

/// The id of the family of token `$1` (its whole key), or of used token `$2` (its prefix).
/// Whether a presented refresh token was ever issued: the family's newest token, or a used one
/// (kept by its 16-byte prefix). Logout reads this first, outside any transaction (issue 16).
pub(crate) const TOKEN_KNOWN: &str = "SELECT CAST(1 AS BIGINT) FROM refresh_tokens WHERE hash = $1 \
     UNION ALL SELECT CAST(1 AS BIGINT) FROM used_refresh_tokens WHERE hash = $2 LIMIT 1";

pub(crate) const FAMILY_OF_TOKEN: &str = "SELECT id FROM refresh_families WHERE seq IN ( \
     SELECT family FROM refresh_tokens WHERE hash = $1 \
     UNION ALL SELECT family FROM used_refresh_tokens WHERE hash = $2)";

// --- users

/// Inserts a [`super::NewUser`].
macro_rules! insert_user {
    ($new:expr) => {
        sqlx::query(
            "INSERT INTO users \
                 (id, username, password_hash, roles, enabled, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind($new.user.id.as_str())
        .bind($new.user.username.as_str())
        .bind(&$new.password_hash)
        .bind($crate::store::rows::encode_roles(&$new.user.roles))
        .bind($new.user.enabled)
        .bind($new.user.created_at.unix_millis())
        .bind($new.user.created_at.unix_millis())
    };
}
pub(crate) use insert_user;

/// The user named `$username`.
macro_rules! find_user {
    ($username:expr) => {
        sqlx::query($crate::store::rows::user_sql!("WHERE username = $1")).bind($username.as_str())
    };
}
pub(crate) use find_user;

/// Replaces user `$id`'s password hash `$old` by `$new`, only if it is still `$old`.
macro_rules! upgrade_password_hash {
    ($id:expr, $old:expr, $new:expr) => {
        sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2 AND password_hash = $3")
            .bind($new)
            .bind($id.as_str())
            .bind($old)
    };
}
pub(crate) use upgrade_password_hash;

/// Sets user `$id`'s password hash at `$now` (also when the password last changed).
macro_rules! set_password_hash {
    ($id:expr, $hash:expr, $now:expr) => {
        sqlx::query(
            "UPDATE users SET password_hash = $1, updated_at = $2, password_changed_at = $2 \
             WHERE id = $3",
        )
        .bind($hash)
        .bind($now.unix_millis())
        .bind($id.as_str())
    };
}
pub(crate) use set_password_hash;

/// Enables or disables user `$id` at `$now`.
macro_rules! set_enabled {
    ($id:expr, $enabled:expr, $now:expr) => {
        sqlx::query("UPDATE users SET enabled = $1, updated_at = $2 WHERE id = $3")
            .bind($enabled)
            .bind($now.unix_millis())
            .bind($id.as_str())
    };
}
pub(crate) use set_enabled;

/// Stores `$user`'s roles.
macro_rules! set_roles {
    ($user:expr) => {
        sqlx::query("UPDATE users SET roles = $1 WHERE id = $2")
            .bind($crate::store::rows::encode_roles(&$user.roles))
            .bind($user.id.as_str())
    };
}
pub(crate) use set_roles;

/// Deletes user `$id`; its families and tokens go by cascade.
macro_rules! delete_user {
    ($id:expr) => {
        sqlx::query("DELETE FROM users WHERE id = $1").bind($id.as_str())
    };
}
pub(crate) use delete_user;

// --- sessions

/// Revokes every live family of user `$id` at `$now` for `$reason`.
macro_rules! revoke_families_of {
    ($id:expr, $now:expr, $reason:expr) => {
        sqlx::query(
            "UPDATE refresh_families SET revoked_at = $1, revoked_reason = $2 \
             WHERE user_id = $3 AND revoked_at IS NULL",
        )
        .bind($now.unix_millis())
        .bind($reason)
        .bind($id.as_str())
    };
}
pub(crate) use revoke_families_of;

/// Drops the sealed copies of every family of user `$id` (all revoked by then).
macro_rules! drop_sealed_copies_of {
    ($id:expr) => {
        sqlx::query(
            "UPDATE refresh_tokens SET sealed_by_predecessor = NULL, predecessor = NULL \
             WHERE sealed_by_predecessor IS NOT NULL \
               AND family IN (SELECT seq FROM refresh_families WHERE user_id = $1)",
        )
        .bind($id.as_str())
    };
}
pub(crate) use drop_sealed_copies_of;

/// [`REVOKE_FAMILY`] for family `$family` at `$now` for `$reason`.
macro_rules! revoke_family {
    ($family:expr, $now:expr, $reason:expr) => {
        sqlx::query($crate::store::sql::REVOKE_FAMILY)
            .bind($now.unix_millis())
            .bind($reason)
            .bind($family.as_str())
    };
}
pub(crate) use revoke_family;

/// Inserts the family of a [`crate::domain::NewFamily`].
macro_rules! insert_family {
    ($family:expr) => {
        sqlx::query(
            "INSERT INTO refresh_families \
                 (id, user_id, created_at, expires_at, source_addr, user_agent) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind($family.id.as_str())
        .bind($family.user.id.as_str())
        .bind($family.created_at.unix_millis())
        .bind($family.expires_at.unix_millis())
        .bind($family.origin.source_addr.as_deref())
        .bind($family.origin.user_agent.as_deref())
    };
}
pub(crate) use insert_family;

/// Inserts a family's first token (it has no sealed copy: it has no predecessor).
macro_rules! insert_first_token {
    ($family:expr, $token:expr) => {
        sqlx::query(
            "INSERT INTO refresh_tokens (hash, family, issued_at, expires_at) \
             VALUES ($1, (SELECT seq FROM refresh_families WHERE id = $2), $3, $4)",
        )
        .bind(&$token.hash.0[..])
        .bind($family.as_str())
        .bind($token.issued_at.unix_millis())
        .bind($token.expires_at.unix_millis())
    };
}
pub(crate) use insert_first_token;

/// Records access token `$jti` as revoked until `$expires_at`, unless it already is.
macro_rules! revoke_access_token {
    ($jti:expr, $expires_at:expr) => {
        sqlx::query(
            "INSERT INTO revoked_access_tokens (jti, expires_at) VALUES ($1, $2) \
             ON CONFLICT (jti) DO NOTHING",
        )
        .bind($jti)
        .bind($expires_at.unix_millis())
    };
}
pub(crate) use revoke_access_token;

/// Whether access token `$jti` is revoked (a boolean column `revoked`).
macro_rules! access_token_revoked {
    ($jti:expr) => {
        sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM revoked_access_tokens WHERE jti = $1) AS revoked",
        )
        .bind($jti)
    };
}
pub(crate) use access_token_revoked;

/// What Introspect needs about an access token of user `$user` with `jti` `$jti` and session
/// `$session` (or `None`) at `$now`, in one query over primary keys; no row when the user is
/// gone. Columns `enabled`, `password_changed_at`, `revoked`, `session_live`.
macro_rules! access_standing {
    ($user:expr, $jti:expr, $session:expr, $now:expr) => {
        sqlx::query(
            "SELECT u.enabled, u.password_changed_at, \
                 EXISTS (SELECT 1 FROM revoked_access_tokens WHERE jti = $2) AS revoked, \
                 EXISTS (SELECT 1 FROM refresh_families f WHERE f.id = $3 AND f.user_id = u.id \
                         AND f.revoked_at IS NULL AND f.expires_at > $4) AS session_live \
             FROM users u WHERE u.id = $1",
        )
        .bind($user.as_str())
        .bind($jti)
        .bind($session.map(|s: &$crate::domain::FamilyId| s.as_str()))
        .bind($now.unix_millis())
    };
}
pub(crate) use access_standing;

/// The live sessions of user `$username` at `$now`, newest first.
macro_rules! live_sessions_of {
    ($username:expr, $now:expr) => {
        sqlx::query($crate::store::rows::session_sql!(
            "WHERE u.username = $1 AND f.revoked_at IS NULL AND f.expires_at > $2 \
               AND EXISTS (SELECT 1 FROM refresh_tokens t WHERE t.family = f.seq \
                           AND t.expires_at > $2) \
             ORDER BY f.created_at DESC, f.id"
        ))
        .bind($username.as_str())
        .bind($now.unix_millis())
    };
}
pub(crate) use live_sessions_of;

/// Session `$id`, live or not.
macro_rules! find_session {
    ($id:expr) => {
        sqlx::query($crate::store::rows::session_sql!("WHERE f.id = $1")).bind($id.as_str())
    };
}
pub(crate) use find_session;

// --- API keys

/// Inserts API key `$key` with the hash of its secret.
macro_rules! insert_api_key {
    ($key:expr, $secret_hash:expr) => {
        sqlx::query(
            "INSERT INTO api_keys \
                 (id, user_id, name, secret_hash, roles, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind($key.id.as_str())
        .bind($key.user_id.as_str())
        .bind(&$key.name)
        .bind(&$secret_hash.0[..])
        .bind($crate::store::rows::encode_roles(&$key.roles))
        .bind($key.created_at.unix_millis())
        .bind($key.expires_at.map($crate::domain::Timestamp::unix_millis))
    };
}
pub(crate) use insert_api_key;

/// API key `$id` with its owner.
macro_rules! find_api_key {
    ($id:expr) => {
        sqlx::query($crate::store::rows::api_key_sql!("WHERE k.id = $1")).bind($id.as_str())
    };
}
pub(crate) use find_api_key;

/// The API keys of user `$username`, or of everyone (`None`), with their owners.
macro_rules! list_api_keys {
    ($owner:expr) => {
        match $owner {
            Some(username) => sqlx::query($crate::store::rows::api_key_sql!(
                "WHERE u.username = $1 ORDER BY k.created_at, k.id"
            ))
            .bind(username.as_str()),
            None => sqlx::query($crate::store::rows::api_key_sql!(
                "ORDER BY u.username, k.created_at, k.id"
            )),
        }
    };
}
pub(crate) use list_api_keys;

/// Records a use of API key `$id` at `$now`.
macro_rules! touch_api_key {
    ($id:expr, $now:expr) => {
        sqlx::query("UPDATE api_keys SET last_used_at = $1 WHERE id = $2")
            .bind($now.unix_millis())
            .bind($id.as_str())
    };
}
pub(crate) use touch_api_key;

/// Revokes API key `$id` at `$now`, unless it already is.
macro_rules! revoke_api_key {
    ($id:expr, $now:expr) => {
        sqlx::query("UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
            .bind($now.unix_millis())
            .bind($id.as_str())
    };
}
pub(crate) use revoke_api_key;

// --- signing keys

/// How many keys activate after `$after` (`None`: how many keys there are).
macro_rules! count_keys_activating_after {
    ($after:expr) => {
        sqlx::query_scalar(
            "SELECT COUNT(*) FROM signing_keys \
             WHERE CAST($1 AS BIGINT) IS NULL OR activates_at > $1",
        )
        .bind($after.map($crate::domain::Timestamp::unix_millis))
    };
}
pub(crate) use count_keys_activating_after;

/// Retires, at `$at`, every key that activates earlier and has no retirement yet.
macro_rules! retire_keys_before {
    ($at:expr) => {
        sqlx::query(
            "UPDATE signing_keys SET retires_at = $1 \
             WHERE retires_at IS NULL AND activates_at < $1",
        )
        .bind($at.unix_millis())
    };
}
pub(crate) use retire_keys_before;

/// Sets key `$kid`'s retirement to `$at` (an emergency retirement backdates it, so the key
/// leaves the JWKS at once).
macro_rules! set_key_retirement {
    ($kid:expr, $at:expr) => {
        sqlx::query("UPDATE signing_keys SET retires_at = $1 WHERE kid = $2")
            .bind($at.unix_millis())
            .bind($kid)
    };
}
pub(crate) use set_key_retirement;

/// Inserts signing key `$key` (a [`crate::domain::StoredKey`]).
macro_rules! insert_signing_key {
    ($key:expr) => {
        sqlx::query(
            "INSERT INTO signing_keys \
             (kid, algorithm, private_key, encrypted, created_at, activates_at, retires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&$key.kid)
        .bind(&$key.algorithm)
        .bind(&$key.private_key)
        .bind($key.encrypted)
        .bind($key.created_at.unix_millis())
        .bind($key.activates_at.unix_millis())
        .bind($key.retires_at.map($crate::domain::Timestamp::unix_millis))
    };
}
pub(crate) use insert_signing_key;

/// Replaces key `$kid`'s private part.
macro_rules! reseal_signing_key {
    ($kid:expr, $private_key:expr, $encrypted:expr) => {
        sqlx::query("UPDATE signing_keys SET private_key = $1, encrypted = $2 WHERE kid = $3")
            .bind($private_key)
            .bind($encrypted)
            .bind($kid)
    };
}
pub(crate) use reseal_signing_key;

// --- login throttling

/// The failure counter of `$username` (see `rows::failure_count`).
macro_rules! failure_count_of {
    ($username:expr) => {
        sqlx::query("SELECT failures, last_failure_at FROM login_throttle WHERE username = $1")
            .bind($username.as_str())
    };
}
pub(crate) use failure_count_of;

/// The names whose counter has `$locked_at` failures or more.
macro_rules! locked_usernames {
    ($locked_at:expr) => {
        sqlx::query_scalar("SELECT username FROM login_throttle WHERE failures >= $1")
            .bind(i64::from($locked_at))
    };
}
pub(crate) use locked_usernames;

/// The whole counter of `$username`, failures and attempts in flight (see `rows::attempts`).
macro_rules! attempts_of {
    ($username:expr) => {
        sqlx::query(
            "SELECT failures, last_failure_at, in_flight, in_flight_at FROM login_throttle \
             WHERE username = $1",
        )
        .bind($username.as_str())
    };
}
pub(crate) use attempts_of;

/// Stores `$attempts` (a [`crate::domain::Attempts`]) as the counter of `$username`.
macro_rules! store_attempts {
    ($username:expr, $attempts:expr) => {
        sqlx::query(
            "INSERT INTO login_throttle (username, failures, last_failure_at, in_flight, in_flight_at) \
             VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (username) DO UPDATE SET failures = excluded.failures, \
                 last_failure_at = excluded.last_failure_at, in_flight = excluded.in_flight, \
                 in_flight_at = excluded.in_flight_at",
        )
        .bind($username.as_str())
        .bind(i64::from(
            $attempts.failures.map_or(0, |c| c.consecutive_failures),
        ))
        .bind(
            $attempts
                .failures
                .map_or($attempts.in_flight_at, |c| c.last_failure_at)
                .unix_millis(),
        )
        .bind(i64::from($attempts.in_flight))
        .bind($attempts.in_flight_at.unix_millis())
    };
}
pub(crate) use store_attempts;

/// A successful login on `$username`: no failures, one attempt fewer in flight
/// ([`crate::domain::ThrottlePolicy::succeed`]; a stale count is at most decremented). Run
/// before [`forget_idle_counter`].
macro_rules! succeed_login_attempt {
    ($username:expr) => {
        sqlx::query(
            "UPDATE login_throttle SET failures = 0, \
                 in_flight = CASE WHEN in_flight > 0 THEN in_flight - 1 ELSE 0 END \
             WHERE username = $1",
        )
        .bind($username.as_str())
    };
}
pub(crate) use succeed_login_attempt;

/// Removes `$username`'s counter when it counts nothing (no failures, no attempt in flight).
macro_rules! forget_idle_counter {
    ($username:expr) => {
        sqlx::query(
            "DELETE FROM login_throttle WHERE username = $1 AND failures = 0 AND in_flight = 0",
        )
        .bind($username.as_str())
    };
}
pub(crate) use forget_idle_counter;

/// Removes the failure counter of `$username`.
macro_rules! clear_login_failures {
    ($username:expr) => {
        sqlx::query("DELETE FROM login_throttle WHERE username = $1").bind($username.as_str())
    };
}
pub(crate) use clear_login_failures;

// --- audit

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

// --- retention

/// A backend's purge statements, one per [`super::Expired`] kind: `$1` is the kind's time, `$2`
/// the batch size, `$3` (login counters only) the failures at which a counter is locked.
pub(crate) struct PurgeStatements {
    /// Tokens of families that ended (absolute lifetime) or were revoked.
    pub(crate) tokens_of_ended_families: &'static str,
    /// Used tokens of families that ended or were revoked.
    pub(crate) used_tokens_of_ended_families: &'static str,
    /// Unused tokens past their idle timeout (used ones stay while their family lives).
    pub(crate) idle_tokens: &'static str,
    /// Sealed copies past the grace window (an update, not a delete).
    pub(crate) sealed_copies: &'static str,
    /// Ended or revoked families (their tokens are gone by then; any left go by cascade).
    pub(crate) ended_families: &'static str,
    /// Revocations of access tokens that have expired.
    pub(crate) revoked_access_tokens: &'static str,
    /// Forgotten login-failure counters, never a locked one (`$3`).
    pub(crate) login_counters: &'static str,
    /// Audit events past their retention, oldest first.
    pub(crate) audit_events: &'static str,
    /// Audit events of one type (`$3`) past its retention, oldest first.
    pub(crate) audit_events_of_kind: &'static str,
}

/// One purge batch of `$what` (an [`super::Expired`]) of at most `$limit` rows, from the
/// backend's [`PurgeStatements`]. `$3` is the kind's extra parameter, if any.
macro_rules! purge_batch {
    ($statements:expr, $what:expr, $limit:expr) => {{
        use $crate::store::Expired;
        let sql = match $what {
            Expired::TokensOfEndedFamilies { .. } => $statements.tokens_of_ended_families,
            Expired::UsedTokensOfEndedFamilies { .. } => $statements.used_tokens_of_ended_families,
            Expired::IdleTokens { .. } => $statements.idle_tokens,
            Expired::SealedCopies { .. } => $statements.sealed_copies,
            Expired::EndedFamilies { .. } => $statements.ended_families,
            Expired::RevokedAccessTokens { .. } => $statements.revoked_access_tokens,
            Expired::LoginCounters { .. } => $statements.login_counters,
            Expired::AuditEvents { .. } => $statements.audit_events,
            Expired::AuditEventsOfKind { .. } => $statements.audit_events_of_kind,
        };
        let query = sqlx::query(sql)
            .bind($what.time().unix_millis())
            .bind(i64::from($limit));
        let query = match $what.locked_at() {
            Some(locked_at) => query.bind(i64::from(locked_at)),
            None => query,
        };
        match $what.event_type() {
            Some(event_type) => query.bind(event_type),
            None => query,
        }
    }};
}
pub(crate) use purge_batch;

// --- administrative listings: keyset pages (`store::listing`)

/// `$role` as a `LIKE` pattern matching it as one word of the space-separated `roles` column
/// (`_` is a role character and a `LIKE` wildcard: escaped).
pub(crate) fn role_pattern(role: &crate::domain::Role) -> String {
    format!("% {} %", role.as_str().replace('_', "\\_"))
}

/// One page of users by a [`super::UserQuery`] `$q`, in username order, with `locked`. The
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
/// [`super::SessionCursor`] `$after` (an `Option<&_>`), at most `$limit`.
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

/// A page of audit events by an [`super::AuditQuery`] `$q`, newest first, with ids.
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

// --- directory users (issue 19)

/// Creates or updates the row of directory user `$account` (a [`crate::domain::DirectoryAccount`])
/// at `$now`, returning it (the columns [`super::rows::user`] reads): a new row has no usable
/// password hash; an existing one takes the directory's name and roles and is marked checked.
/// Its id is derived from the entry's, so concurrent first logins meet on the primary key. No
/// row comes back when the id belongs to a local user; a name held by another row is a unique
/// violation.
macro_rules! upsert_directory_user {
    ($account:expr, $now:expr) => {
        sqlx::query(
            "INSERT INTO users (id, username, password_hash, roles, enabled, created_at, \
                                updated_at, source, external_id, directory_checked_at) \
             VALUES ($1, $2, '', $3, $4, $5, $5, 'ldap', $6, $5) \
             ON CONFLICT (id) DO UPDATE SET username = excluded.username, \
                 roles = excluded.roles, updated_at = excluded.updated_at, \
                 directory_checked_at = excluded.directory_checked_at \
             WHERE users.source = 'ldap' AND users.external_id = excluded.external_id \
             RETURNING id, username, roles, enabled, created_at",
        )
        .bind($account.user_id.as_str())
        .bind($account.username.as_str())
        .bind($crate::store::rows::encode_roles(&$account.roles))
        .bind(true)
        .bind($now.unix_millis())
        .bind($account.external_id.as_str())
    };
}
pub(crate) use upsert_directory_user;

/// The directory user, live family and last check behind presented refresh token `$hash`
/// (bytes): no row for a local user, or a token already used (only a family's newest token
/// is in `refresh_tokens`) or of an ended family (the rotation answers those — refusal,
/// reuse detection, a grace replay — without asking the directory).
macro_rules! directory_session {
    ($hash:expr) => {
        sqlx::query(
            "SELECT u.id, u.username, u.roles, u.enabled, u.created_at, u.external_id, \
                    u.directory_checked_at, f.id AS family_id \
             FROM refresh_tokens t \
             JOIN refresh_families f ON f.seq = t.family \
             JOIN users u ON u.id = f.user_id \
             WHERE t.hash = $1 AND f.revoked_at IS NULL \
               AND u.source = 'ldap'",
        )
        .bind($hash)
    };
}
pub(crate) use directory_session;

/// Records that directory user `$id` was found again at `$now` with roles `$roles`.
macro_rules! record_directory_check {
    ($id:expr, $roles:expr, $now:expr) => {
        sqlx::query(
            "UPDATE users SET roles = $1, directory_checked_at = $2 \
             WHERE id = $3 AND source = 'ldap'",
        )
        .bind($crate::store::rows::encode_roles($roles))
        .bind($now.unix_millis())
        .bind($id.as_str())
    };
}
pub(crate) use record_directory_check;

/// Where user `$username`'s password is checked (a text column `source`).
macro_rules! user_source {
    ($username:expr) => {
        sqlx::query_scalar("SELECT source FROM users WHERE username = $1").bind($username.as_str())
    };
}
pub(crate) use user_source;
