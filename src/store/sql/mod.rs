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

/// Records used token `$1` (its [`crate::store::rows::used_key`]) of family `$2` (its `seq`). Two
/// used tokens with one prefix leave it with no family, so neither is recognised (see
/// [`crate::store::rows::USED_KEY_BYTES`]).
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

mod api_keys;
mod audit;
mod listing;
mod retention;
mod sessions;
mod signing_keys;
mod throttle;
mod users;

pub(crate) use api_keys::*;
pub(crate) use audit::*;
pub(crate) use listing::*;
pub(crate) use retention::*;
pub(crate) use sessions::*;
pub(crate) use signing_keys::*;
pub(crate) use throttle::*;
pub(crate) use users::*;
