//! Sessions (refresh families), their tokens, and revoked access tokens.

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
