//! Row mapping both backends share: the columns the shared queries select, and one decoder
//! per stored thing over [`Columns`], which each backend implements for its row types (sqlx's
//! `SqliteRow` and `PgRow`, and rusqlite's row in the SQLite rotation writer). So a user, a
//! presented token, a session or a key is decoded in exactly one place, whatever read it.
//!
//! Only dialect-free SQL lives here (column lists and joins); each backend appends its own
//! `WHERE` with its own placeholders.

use super::{InspectedToken, StoreError, StoredApiKey, unavailable};
use crate::domain::{
    AccessStanding, ApiKey, ApiKeyId, ApiKeyListing, ApiKeySecretHash, Attempts, AuditEvent,
    AuditKind, FailureCount, FamilyId, PresentedToken, Role, Session, SessionOrigin, StoredKey,
    Timestamp, TokenHash, User, UserCredentials, UserId, Username,
};

/// Reading a row's columns by name; each failure is [`StoreError::Unavailable`].
pub(crate) trait Columns {
    fn int(&self, column: &str) -> Result<i64, StoreError>;
    fn opt_int(&self, column: &str) -> Result<Option<i64>, StoreError>;
    fn text(&self, column: &str) -> Result<String, StoreError>;
    fn opt_text(&self, column: &str) -> Result<Option<String>, StoreError>;
    fn flag(&self, column: &str) -> Result<bool, StoreError>;
    fn opt_flag(&self, column: &str) -> Result<Option<bool>, StoreError>;
    fn bytes(&self, column: &str) -> Result<Vec<u8>, StoreError>;
    fn opt_bytes(&self, column: &str) -> Result<Option<Vec<u8>>, StoreError>;

    /// A time stored as Unix milliseconds.
    fn millis(&self, column: &str) -> Result<Timestamp, StoreError> {
        self.int(column).map(Timestamp::from_unix_millis)
    }

    fn opt_millis(&self, column: &str) -> Result<Option<Timestamp>, StoreError> {
        Ok(self.opt_int(column)?.map(Timestamp::from_unix_millis))
    }
}

/// Implements [`Columns`] for a row type whose getter (`$get`: sqlx's `Row::try_get`,
/// rusqlite's `Row::get`) takes the row and a column name and infers the type it decodes.
macro_rules! impl_columns {
    ($row:ty, $get:path) => {
        impl $crate::store::rows::Columns for $row {
            fn int(&self, column: &str) -> Result<i64, $crate::store::StoreError> {
                $get(self, column).map_err($crate::store::unavailable)
            }
            fn opt_int(&self, column: &str) -> Result<Option<i64>, $crate::store::StoreError> {
                $get(self, column).map_err($crate::store::unavailable)
            }
            fn text(&self, column: &str) -> Result<String, $crate::store::StoreError> {
                $get(self, column).map_err($crate::store::unavailable)
            }
            fn opt_text(&self, column: &str) -> Result<Option<String>, $crate::store::StoreError> {
                $get(self, column).map_err($crate::store::unavailable)
            }
            fn flag(&self, column: &str) -> Result<bool, $crate::store::StoreError> {
                $get(self, column).map_err($crate::store::unavailable)
            }
            fn opt_flag(&self, column: &str) -> Result<Option<bool>, $crate::store::StoreError> {
                $get(self, column).map_err($crate::store::unavailable)
            }
            fn bytes(&self, column: &str) -> Result<Vec<u8>, $crate::store::StoreError> {
                $get(self, column).map_err($crate::store::unavailable)
            }
            fn opt_bytes(
                &self,
                column: &str,
            ) -> Result<Option<Vec<u8>>, $crate::store::StoreError> {
                $get(self, column).map_err($crate::store::unavailable)
            }
        }
    };
}
pub(crate) use impl_columns;

/// Selects a user (the columns [`user`] reads) from `users`, followed by the caller's clauses.
macro_rules! user_sql {
    ($rest:literal) => {
        concat!(
            "SELECT id, username, roles, enabled, created_at FROM users ",
            $rest
        )
    };
}
pub(crate) use user_sql;

/// Selects credentials (the columns [`credentials`] reads), followed by the caller's clauses.
macro_rules! credentials_sql {
    ($rest:literal) => {
        concat!(
            "SELECT id, username, roles, enabled, created_at, password_hash FROM users ",
            $rest
        )
    };
}
pub(crate) use credentials_sql;

/// Selects presented refresh tokens (the columns [`presented`] reads) with their family and
/// user; `presented` is the key a token was found by. A family's newest token is found in
/// `refresh_tokens` by its whole key (`$head`, the caller's condition on `t.hash`); a used one
/// in `used_refresh_tokens` by its key's first [`USED_KEY_BYTES`] (`$used`, on `o.hash`), with
/// the family's newest token `h`: the used token was rotated when `h` was issued, and it is
/// `h`'s immediate predecessor when `h.predecessor` is its prefix.
macro_rules! presented_token_sql {
    ($head:literal, $used:literal) => {
        concat!(
            "SELECT t.hash AS presented, f.id AS family_id, f.seq AS family_seq, t.issued_at, \
                    t.expires_at AS token_expires_at, NULL AS used_at, \
                    NULL AS successor_sealed, FALSE AS successor_is_newest, \
                    f.revoked_at, f.expires_at AS family_expires_at, \
                    u.id, u.username, u.roles, u.enabled, u.created_at \
             FROM refresh_tokens t \
             JOIN refresh_families f ON f.seq = t.family \
             JOIN users u ON u.id = f.user_id ",
            $head,
            " UNION ALL \
             SELECT o.hash AS presented, f.id AS family_id, f.seq AS family_seq, \
                    COALESCE(h.issued_at, f.created_at) AS issued_at, \
                    COALESCE(h.issued_at, f.created_at) AS token_expires_at, \
                    COALESCE(h.issued_at, f.created_at) AS used_at, \
                    CASE WHEN h.predecessor = o.hash THEN h.sealed_by_predecessor END \
                        AS successor_sealed, \
                    COALESCE(h.predecessor = o.hash, FALSE) AS successor_is_newest, \
                    f.revoked_at, f.expires_at AS family_expires_at, \
                    u.id, u.username, u.roles, u.enabled, u.created_at \
             FROM used_refresh_tokens o \
             JOIN refresh_families f ON f.seq = o.family \
             JOIN users u ON u.id = f.user_id \
             LEFT JOIN refresh_tokens h ON h.family = o.family ",
            $used
        )
    };
}
pub(crate) use presented_token_sql;

/// How much of a used token's key is kept (`used_refresh_tokens.hash`): its issue time and 64
/// bits of its hash. Two used tokens sharing it (about 2^-64 for tokens of one millisecond)
/// are recorded with no family, so neither is recognised: a collision can never revoke a
/// session that does not own the token.
pub(crate) const USED_KEY_BYTES: usize = 16;

/// The part of a token's key [`USED_KEY_BYTES`] kept once it is used.
pub(crate) fn used_key(hash: &TokenHash) -> &[u8] {
    &hash.0[..USED_KEY_BYTES]
}

/// Selects sessions (the columns [`session`] reads) with their users; the caller adds its
/// clauses (a literal: no dynamic SQL).
macro_rules! session_sql {
    ($rest:literal) => {
        concat!(
            "SELECT f.id AS family_id, f.created_at AS family_created_at, \
                    CASE WHEN EXISTS (SELECT 1 FROM used_refresh_tokens o \
                                      WHERE o.family = f.seq) \
                         THEN (SELECT MAX(t.issued_at) FROM refresh_tokens t \
                               WHERE t.family = f.seq) END AS last_used_at, \
                    f.expires_at AS family_expires_at, f.source_addr, f.user_agent, \
                    u.id, u.username, u.roles, u.enabled, u.created_at \
             FROM refresh_families f JOIN users u ON u.id = f.user_id ",
            $rest
        )
    };
}
pub(crate) use session_sql;

/// Selects API keys (the columns [`api_key`] reads) with their owners; the caller adds its
/// clauses (a literal).
macro_rules! api_key_sql {
    ($rest:literal) => {
        concat!(
            "SELECT k.id AS key_id, k.name, k.secret_hash, k.roles AS key_roles, \
                    k.created_at AS key_created_at, k.expires_at AS key_expires_at, \
                    k.last_used_at, k.revoked_at, u.id, u.username, u.roles, u.enabled, \
                    u.created_at \
             FROM api_keys k JOIN users u ON u.id = k.user_id ",
            $rest
        )
    };
}
pub(crate) use api_key_sql;

/// Selects every signing key (the columns [`signing_key`] reads), in activation order.
pub(crate) const SIGNING_KEYS_SQL: &str = "SELECT kid, algorithm, private_key, encrypted, \
     created_at, activates_at, retires_at FROM signing_keys ORDER BY activates_at, kid";

/// Roles as stored: space-separated.
pub(crate) fn encode_roles(roles: &[Role]) -> String {
    roles.iter().map(Role::as_str).collect::<Vec<_>>().join(" ")
}

fn decode_roles(stored: &str) -> Result<Vec<Role>, StoreError> {
    stored
        .split_whitespace()
        .map(|r| Role::parse(r).map_err(unavailable))
        .collect()
}

/// A user from the columns `id, username, roles, enabled, created_at`.
pub(crate) fn user(row: &impl Columns) -> Result<User, StoreError> {
    Ok(User {
        id: UserId::from_stored(row.text("id")?),
        username: Username::parse(&row.text("username")?).map_err(unavailable)?,
        roles: decode_roles(&row.text("roles")?)?,
        enabled: row.flag("enabled")?,
        created_at: row.millis("created_at")?,
    })
}

/// A user and its password hash (`credentials_sql!`).
pub(crate) fn credentials(row: &impl Columns) -> Result<UserCredentials, StoreError> {
    Ok(UserCredentials {
        user: user(row)?,
        password_hash: row.text("password_hash")?,
    })
}

/// A presented token's state, as [`crate::domain::decide`] needs it (`presented_token_sql!`).
pub(crate) fn presented(row: &impl Columns) -> Result<PresentedToken, StoreError> {
    Ok(PresentedToken {
        user: user(row)?,
        family_id: FamilyId::from_stored(row.text("family_id")?),
        family_revoked: row.opt_millis("revoked_at")?.is_some(),
        family_expires_at: row.millis("family_expires_at")?,
        expires_at: row.millis("token_expires_at")?,
        used_at: row.opt_millis("used_at")?,
        successor_is_newest: row.opt_flag("successor_is_newest")?.unwrap_or(false),
        sealed_successor: row.opt_bytes("successor_sealed")?,
    })
}

/// The key (`seq`) of a presented token's family (`presented_token_sql!`), which its
/// successor and its record as a used token refer to.
pub(crate) fn family_seq(row: &impl Columns) -> Result<i64, StoreError> {
    row.int("family_seq")
}

/// A presented token's state with its issue time, for `Introspect`.
pub(crate) fn inspected(row: &impl Columns) -> Result<InspectedToken, StoreError> {
    Ok(InspectedToken {
        state: presented(row)?,
        issued_at: row.millis("issued_at")?,
    })
}

/// A session with its user (`session_sql!`).
pub(crate) fn session(row: &impl Columns) -> Result<Session, StoreError> {
    Ok(Session {
        id: FamilyId::from_stored(row.text("family_id")?),
        user: user(row)?,
        created_at: row.millis("family_created_at")?,
        last_used_at: row.opt_millis("last_used_at")?,
        expires_at: row.millis("family_expires_at")?,
        origin: SessionOrigin {
            source_addr: row.opt_text("source_addr")?,
            user_agent: row.opt_text("user_agent")?,
        },
    })
}

/// An API key and its owner (`api_key_sql!`).
pub(crate) fn api_key(row: &impl Columns) -> Result<(ApiKey, User), StoreError> {
    let owner = user(row)?;
    let id = row.text("key_id")?;
    let key = ApiKey {
        id: ApiKeyId::parse(&id).ok_or_else(|| {
            StoreError::Unavailable(format!("malformed api key id {id:?}").into())
        })?,
        user_id: owner.id.clone(),
        name: row.text("name")?,
        roles: decode_roles(&row.text("key_roles")?)?,
        created_at: row.millis("key_created_at")?,
        expires_at: row.opt_millis("key_expires_at")?,
        last_used_at: row.opt_millis("last_used_at")?,
        revoked_at: row.opt_millis("revoked_at")?,
    };
    Ok((key, owner))
}

/// An API key with its owner's name, for listings (`api_key_sql!`).
pub(crate) fn api_key_listing(row: &impl Columns) -> Result<ApiKeyListing, StoreError> {
    let (key, owner) = api_key(row)?;
    Ok(ApiKeyListing {
        key,
        username: owner.username,
    })
}

/// An API key with its owner and the hash of its secret, for a login (`api_key_sql!`).
pub(crate) fn stored_api_key(row: &impl Columns) -> Result<StoredApiKey, StoreError> {
    let (key, owner) = api_key(row)?;
    let hash: [u8; 32] = row
        .bytes("secret_hash")?
        .try_into()
        .map_err(|_| StoreError::Unavailable("malformed api key hash".into()))?;
    Ok(StoredApiKey {
        key,
        owner,
        secret_hash: ApiKeySecretHash(hash),
    })
}

/// A signing key ([`SIGNING_KEYS_SQL`]).
pub(crate) fn signing_key(row: &impl Columns) -> Result<StoredKey, StoreError> {
    Ok(StoredKey {
        kid: row.text("kid")?,
        algorithm: row.text("algorithm")?,
        private_key: row.bytes("private_key")?,
        encrypted: row.flag("encrypted")?,
        created_at: row.millis("created_at")?,
        activates_at: row.millis("activates_at")?,
        retires_at: row.opt_millis("retires_at")?,
    })
}

/// A login-failure counter (`failures, last_failure_at`).
pub(crate) fn failure_count(row: &impl Columns) -> Result<FailureCount, StoreError> {
    Ok(FailureCount {
        consecutive_failures: u32::try_from(row.int("failures")?).unwrap_or(u32::MAX),
        last_failure_at: row.millis("last_failure_at")?,
    })
}

/// A login counter (`failures, last_failure_at, in_flight, in_flight_at`); no failures is
/// `failures: None`.
pub(crate) fn attempts(row: &impl Columns) -> Result<Attempts, StoreError> {
    let count = failure_count(row)?;
    Ok(Attempts {
        failures: (count.consecutive_failures > 0).then_some(count),
        in_flight: u32::try_from(row.int("in_flight")?).unwrap_or(0),
        in_flight_at: row.millis("in_flight_at")?,
    })
}

/// An audit event (`at, event_type, user_id, username, source, request_id, detail`).
pub(crate) fn audit_event(row: &impl Columns) -> Result<AuditEvent, StoreError> {
    let kind = row.text("event_type")?;
    Ok(AuditEvent {
        time: row.millis("at")?,
        kind: AuditKind::parse(&kind).ok_or_else(|| {
            StoreError::Unavailable(format!("unknown audit event {kind:?}").into())
        })?,
        user_id: row.opt_text("user_id")?,
        username: row.opt_text("username")?,
        source: row.opt_text("source")?,
        request_id: row.opt_text("request_id")?,
        detail: row.opt_text("detail")?,
    })
}

/// What [`crate::store::sql::access_standing!`] selected.
pub(crate) fn access_standing(row: &impl Columns) -> Result<AccessStanding, StoreError> {
    Ok(AccessStanding {
        revoked: row.flag("revoked")?,
        user_enabled: row.flag("enabled")?,
        password_changed_at: row.opt_millis("password_changed_at")?,
        session_live: row.flag("session_live")?,
    })
}

/// An audit event with its id (`id` and the columns [`audit_event`] reads).
pub(crate) fn audit_record(row: &impl Columns) -> Result<super::AuditRecord, StoreError> {
    Ok(super::AuditRecord {
        id: row.int("id")?,
        event: audit_event(row)?,
    })
}

/// A user with whether it is locked (the columns [`user`] reads and `locked`).
pub(crate) fn user_row(row: &impl Columns) -> Result<super::UserRow, StoreError> {
    Ok(super::UserRow {
        user: user(row)?,
        locked: row.flag("locked")?,
    })
}

/// A directory user's live session (`sql::directory_session!`).
pub(crate) fn directory_session(
    row: &impl Columns,
) -> Result<crate::domain::DirectorySession, StoreError> {
    Ok(crate::domain::DirectorySession {
        user: user(row)?,
        external_id: row.opt_text("external_id")?.unwrap_or_default(),
        checked_at: row.opt_millis("directory_checked_at")?,
        family_id: FamilyId::from_stored(row.text("family_id")?),
    })
}

/// A stored `users.source`.
pub(crate) fn identity_source(stored: &str) -> Result<crate::domain::IdentitySource, StoreError> {
    crate::domain::IdentitySource::parse(stored)
        .ok_or_else(|| StoreError::Unavailable(format!("unknown user source {stored:?}").into()))
}
