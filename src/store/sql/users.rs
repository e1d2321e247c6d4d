//! Users and their credentials, local and from a directory.

/// Inserts a [`crate::store::NewUser`].
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

// --- directory users (issue 19)

/// Creates or updates the row of directory user `$account` (a [`crate::domain::DirectoryAccount`])
/// at `$now`, returning it (the columns [`crate::store::rows::user`] reads): a new row has no usable
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
