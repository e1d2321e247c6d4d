//! API keys.

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
