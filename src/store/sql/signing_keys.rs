//! Signing keys and their schedule.

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
