//! Storage: the port the domain needs, by aggregate, and the backends behind it.
//!
//! [`Store`] is composed of one small trait per thing kept: [`UserStore`] (users and their
//! credentials), [`SessionStore`] (refresh families and tokens, with the atomic rotation, and
//! revoked access tokens), [`ApiKeyStore`], [`SigningKeyStore`], [`ThrottleStore`] (login
//! failure counters), [`AuditStore`], [`RetentionStore`] (one batch of what has expired;
//! the schedule is `crate::service::housekeeping`'s), and [`StatsStore`] (what is kept, for
//! `authd stats`). Each operation that must be atomic
//! (rotation, password change, disabling a user) is one method, done in one transaction by
//! the backend.
//!
//! Only the backend modules (`sqlite/`, `postgres/`, one file per aggregate in each) know which
//! database they talk to; everything above them sees `Arc<dyn Store>`. What both backends do
//! alike is written once: row decoding and column lists (`rows`), the statements both send
//! (`sql`), and the transactions both run step for step over their own locks (`procedures`).

pub mod listing;
mod postgres;
mod procedures;
mod retention;
mod rotation_queue;
mod rows;
mod sql;
mod sqlite;
pub mod stats;

use self::rotation_queue::{RotationJob, RotationQueue};

use std::sync::Arc;

use async_trait::async_trait;

use crate::domain::{
    AccessStanding, ApiKey, ApiKeyId, ApiKeyListing, AuditEvent, Charge, DirectoryAccount,
    DirectorySession, FailureCount, FamilyId, IdentitySource, NewFamily, NewToken, Origin,
    PresentedToken, RefreshPolicy, Role, Rotation, Session, Successor, ThrottlePolicy, Timestamp,
    TokenHash, User, UserCredentials, UserId, Username,
};
pub use crate::domain::{ApiKeySecretHash, StoredKey};
pub use listing::{AuditQuery, AuditRecord, SessionCursor, UserQuery, UserRow};
pub use postgres::PostgresStore;
pub use retention::{Expired, Purged, RetentionStore, purge_all};
pub use sqlite::SqliteStore;
pub use stats::{StatsStore, StoreStats, TableStats};

/// A storage failure. Everything but the first variants means "the database did not do what
/// was asked": callers fail closed with it (UNAVAILABLE), never treat it as success.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("a user with that name already exists")]
    DuplicateUser,
    #[error("no such user")]
    UserNotFound,
    #[error("unsupported database url scheme {0:?}: use sqlite://PATH or postgres://…")]
    UnsupportedUrl(String),
    #[error("database unavailable: {0}")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Any failure of the database (or of decoding what it returned) as [`StoreError::Unavailable`].
pub(crate) fn unavailable(e: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError::Unavailable(Box::new(e))
}

/// A failed insert or update of a user: a taken username is [`StoreError::DuplicateUser`].
pub(crate) fn user_write_error(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::DuplicateUser,
        _ => unavailable(e),
    }
}

/// A failed insert of an API key: an unknown owner is [`StoreError::UserNotFound`].
pub(crate) fn api_key_write_error(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(db) if db.is_foreign_key_violation() => StoreError::UserNotFound,
        _ => unavailable(e),
    }
}

/// A user row to create. Its `Debug` leaves the password hash out (issue 16).
pub struct NewUser {
    pub user: User,
    pub password_hash: String,
}

impl std::fmt::Debug for NewUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewUser")
            .field("user", &self.user)
            .field("password_hash", &"[redacted]")
            .finish()
    }
}

/// How to open a store; backends use what applies to them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreOptions {
    /// The most connections a replica holds to a database server (PostgreSQL).
    pub max_connections: u32,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            max_connections: 10,
        }
    }
}

/// Changes to a user's roles.
#[derive(Debug, Default)]
pub struct RoleChange {
    pub add: Vec<Role>,
    pub remove: Vec<Role>,
}

impl RoleChange {
    /// `roles` with this change applied, normalised.
    pub(crate) fn apply(&self, roles: &[Role]) -> Vec<Role> {
        let mut roles = roles.to_vec();
        roles.retain(|r| !self.remove.contains(r));
        roles.extend(self.add.iter().cloned());
        crate::domain::normalise_roles(roles)
    }
}

/// An API key as loaded for a login: its record, its owner and the hash of its secret.
#[derive(Debug, Clone)]
pub struct StoredApiKey {
    pub key: ApiKey,
    pub owner: User,
    pub secret_hash: ApiKeySecretHash,
}

/// A refresh token's stored state, for `Introspect`.
#[derive(Debug, Clone)]
pub struct InspectedToken {
    pub state: PresentedToken,
    pub issued_at: Timestamp,
}

/// The whole storage port: every aggregate's trait, plus the store's own life.
#[async_trait]
pub trait Store:
    UserStore
    + SessionStore
    + ApiKeyStore
    + SigningKeyStore
    + ThrottleStore
    + AuditStore
    + RetentionStore
    + StatsStore
    + Send
    + Sync
    + 'static
{
    /// Checks the database answers and the rotation writer runs.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Whether the rotation writer (SQLite's writer thread, PostgreSQL's batcher task) still
    /// runs. Nothing restarts it: once it has stopped other than by [`Store::close`], no
    /// refresh can succeed, and the process must exit so that it is restarted (issue 16).
    fn rotation_writer_running(&self) -> bool;

    /// Stops the rotation writer as a crash would leave it (stopped, the rest of the store
    /// open), so tests can check what follows. authd never calls it.
    #[doc(hidden)]
    async fn stop_rotation_writer_for_tests(&self);

    /// Finishes the writes in progress and closes every connection; the store refuses work
    /// afterwards. `serve` calls it last, at shutdown. On SQLite the last connection to close
    /// folds the WAL into the database file, so the next start has no WAL to read.
    async fn close(&self);
}

/// Users and their credentials. Changes that end a user's sessions (password, disabling,
/// deletion) end them in the same transaction.
#[async_trait]
pub trait UserStore: Send + Sync {
    /// # Errors
    /// [`StoreError::DuplicateUser`] when the (normalised) username is taken.
    async fn create_user(&self, user: &NewUser) -> Result<(), StoreError>;
    async fn find_credentials(
        &self,
        username: &Username,
    ) -> Result<Option<UserCredentials>, StoreError>;
    async fn find_user(&self, username: &Username) -> Result<Option<User>, StoreError>;
    async fn list_users(&self) -> Result<Vec<User>, StoreError>;
    /// Replaces a hash with a stronger one after a successful login, only if it is still
    /// `old_hash` (a concurrent password change wins). Families are kept.
    async fn upgrade_password_hash(
        &self,
        user: &UserId,
        old_hash: &str,
        new_hash: &str,
    ) -> Result<(), StoreError>;
    /// Sets a new password and revokes every family of the user, atomically.
    async fn change_password(
        &self,
        username: &Username,
        new_hash: &str,
        now: Timestamp,
    ) -> Result<User, StoreError>;
    /// Enables or disables a user; disabling also revokes every family, atomically.
    async fn set_enabled(
        &self,
        username: &Username,
        enabled: bool,
        now: Timestamp,
    ) -> Result<User, StoreError>;
    /// Deletes a user with all its families and tokens.
    async fn delete_user(&self, username: &Username) -> Result<User, StoreError>;
    async fn change_roles(
        &self,
        username: &Username,
        change: &RoleChange,
    ) -> Result<User, StoreError>;
    /// One page of the users `query` selects, in username order, each with whether it is
    /// locked: filtered, ordered and cut in SQL (keyset on the username).
    async fn list_users_page(&self, query: &UserQuery) -> Result<Vec<UserRow>, StoreError>;

    // --- directory users (issue 19)

    /// Makes (just in time) or updates the local row of a directory user after the directory
    /// accepted their password: the directory's name and roles, checked `now`, no usable
    /// password hash. An existing row keeps its id, creation time and enabled flag (an
    /// administrator's `disable` stands).
    ///
    /// # Errors
    /// [`StoreError::DuplicateUser`] when the name is held by a local user or another entry.
    async fn upsert_directory_user(
        &self,
        account: &DirectoryAccount,
        now: Timestamp,
    ) -> Result<User, StoreError>;
    /// The directory user and live family behind an unused refresh token, for the refresh's
    /// recheck; `None` for a local user's token and for anything the rotation will refuse.
    async fn directory_session(
        &self,
        presented: &TokenHash,
    ) -> Result<Option<DirectorySession>, StoreError>;
    /// Records a recheck that found directory user `user` still entitled, with `roles`.
    async fn record_directory_check(
        &self,
        user: &UserId,
        roles: &[Role],
        now: Timestamp,
    ) -> Result<(), StoreError>;
    /// Where `username`'s password is checked; `None` when there is no such user.
    async fn user_source(&self, username: &Username) -> Result<Option<IdentitySource>, StoreError>;
}

/// Sessions: refresh families with their tokens (the atomic rotation), logout, and the
/// access tokens a logout revoked.
#[async_trait]
pub trait SessionStore: Send + Sync {
    /// Starts a family at a successful login, with its first token. In the same transaction
    /// the user's login-failure counter is cleared and `events` (the login's audit record) are
    /// written, so a login and its record commit, or fail, together.
    async fn start_family(
        &self,
        family: &NewFamily,
        first: &NewToken,
        events: &[AuditEvent],
    ) -> Result<(), StoreError>;

    /// Looks up the presented token and applies [`crate::domain::decide`] atomically: of any
    /// number of concurrent calls with one token, at most one rotates it. The outcome's audit
    /// events ([`Rotation::audit_events`], stamped with `origin`) are written in the same
    /// transaction, so a refresh and its record commit, or fail, together.
    async fn rotate_refresh(
        &self,
        presented: &TokenHash,
        successor: &Successor,
        now: Timestamp,
        policy: &RefreshPolicy,
        origin: &Origin,
    ) -> Result<Rotation, StoreError>;

    /// Revokes one family. Idempotent.
    async fn revoke_family(&self, family: &FamilyId, now: Timestamp) -> Result<(), StoreError>;

    /// Looks up the presented token without changing anything: for `Introspect`, which then
    /// applies [`crate::domain::is_live`].
    async fn inspect_refresh(
        &self,
        presented: &TokenHash,
    ) -> Result<Option<InspectedToken>, StoreError>;

    /// Revokes the whole family of the presented token (any token of it, used or not), in a
    /// transaction that serialises with [`SessionStore::rotate_refresh`]: a rotation either
    /// commits before (its successor is revoked with the family) or sees the family revoked.
    /// Returns the family, or `None` for an unknown token. Idempotent.
    async fn revoke_family_of(
        &self,
        presented: &TokenHash,
        now: Timestamp,
    ) -> Result<Option<FamilyId>, StoreError>;

    /// Records an access token's `jti` as revoked until `expires_at`. Idempotent. The row
    /// goes with the retention job once the token has expired ([`Expired::RevokedAccessTokens`]).
    async fn revoke_access_token(&self, jti: &str, expires_at: Timestamp)
    -> Result<(), StoreError>;

    /// Whether an access token's `jti` was revoked by a logout.
    async fn is_access_token_revoked(&self, jti: &str) -> Result<bool, StoreError>;

    /// What Introspect needs to judge an access token of `user` with `jti` and (its `sid`)
    /// `session` at `now` ([`AccessStanding::allows`]), in one indexed query. `None` when the
    /// user no longer exists.
    async fn access_standing(
        &self,
        user: &UserId,
        jti: &str,
        session: Option<&FamilyId>,
        now: Timestamp,
    ) -> Result<Option<AccessStanding>, StoreError>;

    /// The user's live sessions at `now` (not revoked, within their lifetime, with an unused
    /// token within its idle timeout), newest first.
    ///
    /// # Errors
    /// [`StoreError::UserNotFound`] for an unknown user.
    async fn list_sessions(
        &self,
        username: &Username,
        now: Timestamp,
    ) -> Result<Vec<Session>, StoreError>;

    /// One session by id, live or not.
    async fn find_session(&self, id: &FamilyId) -> Result<Option<Session>, StoreError>;

    /// Revokes every family of the user; returns the user and how many were live.
    ///
    /// # Errors
    /// [`StoreError::UserNotFound`] for an unknown user.
    async fn revoke_sessions_of(
        &self,
        username: &Username,
        now: Timestamp,
    ) -> Result<(User, u64), StoreError>;

    /// Every user's live sessions at `now` (as [`Self::list_sessions`] judges them), newest
    /// first (ties by id), starting after `after`, at most `limit`: a keyset page in SQL.
    async fn list_live_sessions(
        &self,
        now: Timestamp,
        after: Option<&SessionCursor>,
        limit: u32,
    ) -> Result<Vec<Session>, StoreError>;
}

/// API keys: the record and the hash of the secret, never the secret.
#[async_trait]
pub trait ApiKeyStore: Send + Sync {
    /// Stores a new key: its record and the hash of its secret, never the secret.
    async fn create_api_key(
        &self,
        key: &ApiKey,
        secret_hash: &ApiKeySecretHash,
    ) -> Result<(), StoreError>;

    /// The key with this id and its owner, for a login.
    async fn find_api_key(&self, id: &ApiKeyId) -> Result<Option<StoredApiKey>, StoreError>;

    /// Records a successful use.
    async fn touch_api_key(&self, id: &ApiKeyId, now: Timestamp) -> Result<(), StoreError>;

    /// Keys of one user, or of everyone, with owners' names; never secrets or hashes.
    async fn list_api_keys(
        &self,
        owner: Option<&Username>,
    ) -> Result<Vec<ApiKeyListing>, StoreError>;

    /// Revokes a key. Returns `false` when no key has this id. Idempotent.
    async fn revoke_api_key(&self, id: &ApiKeyId, now: Timestamp) -> Result<bool, StoreError>;
}

/// What [`SigningKeyStore::rewrap_signing_keys`] does to each key: its new private part and
/// whether that is sealed, or why the key cannot be rewrapped (which cancels them all).
pub type Rewrap<'a> = dyn Fn(&StoredKey) -> Result<(Vec<u8>, bool), String> + Send + Sync + 'a;

/// Signing keys, shared by every process that signs.
#[async_trait]
pub trait SigningKeyStore: Send + Sync {
    async fn signing_keys(&self) -> Result<Vec<StoredKey>, StoreError>;
    /// Inserts `key` only if no stored key activates after `unless_activation_after` (`None`:
    /// only if there is no key at all), and in the same transaction sets `retires_at` to the
    /// new key's activation on every key that had none and activates earlier. Returns whether
    /// it inserted: of several processes rotating at once, one does.
    async fn insert_signing_key_if(
        &self,
        key: &StoredKey,
        unless_activation_after: Option<Timestamp>,
    ) -> Result<bool, StoreError>;
    /// Sets a key's retirement time (`authd keys retire --now` backdates it so the key is
    /// unpublished at once). Returns whether the key exists.
    async fn set_key_retirement(
        &self,
        kid: &str,
        retires_at: Timestamp,
    ) -> Result<bool, StoreError>;
    /// Replaces every key's private part with what `rewrap` makes of it, all in one
    /// transaction that holds off key inserts (another process rotating) until it ends: all or
    /// nothing. Returns how many keys were rewrapped, or, having changed nothing, the first
    /// refusal of `rewrap` (`authd keys rewrap`).
    async fn rewrap_signing_keys(
        &self,
        rewrap: &Rewrap<'_>,
    ) -> Result<Result<usize, String>, StoreError>;
    /// Replaces a key's private part, e.g. to encrypt a key stored in the clear.
    async fn reseal_signing_key(
        &self,
        kid: &str,
        private_key: &[u8],
        encrypted: bool,
    ) -> Result<(), StoreError>;
}

/// Login throttling: failure counters per normalised username, existing or not.
#[async_trait]
pub trait ThrottleStore: Send + Sync {
    /// The failure counter of `username`, if any.
    async fn login_failures(&self, username: &Username)
    -> Result<Option<FailureCount>, StoreError>;
    /// Decides a login attempt on `username`'s counter by `policy` and, when it is admitted,
    /// counts it in flight ([`ThrottlePolicy::charge`]): the read, the decision and the write
    /// happen in one write transaction. Concurrent attempts on one counter are therefore
    /// decided one after another: parallel guesses cannot slip past the hard stop (failures
    /// plus attempts in flight), and parallel logins are not refused for being parallel until
    /// failures make delays apply. A throttled attempt changes nothing. The attempt ends with
    /// [`Self::record_login_failure`], [`Self::release_login_attempt`] or a session
    /// ([`SessionStore::start_family`] clears the failures).
    async fn charge_login_attempt(
        &self,
        username: &Username,
        policy: &ThrottlePolicy,
        now: Timestamp,
    ) -> Result<Charge, StoreError>;
    /// An admitted attempt failed: one more failure, one fewer in flight
    /// ([`ThrottlePolicy::fail`]), in one write transaction. Returns the failures now counted.
    async fn record_login_failure(
        &self,
        username: &Username,
        policy: &ThrottlePolicy,
        now: Timestamp,
    ) -> Result<FailureCount, StoreError>;
    /// An admitted attempt ended without a verdict (storage or hashing failed): one fewer in
    /// flight ([`ThrottlePolicy::release`]).
    async fn release_login_attempt(
        &self,
        username: &Username,
        now: Timestamp,
    ) -> Result<(), StoreError>;
    /// The names whose counter has `locked_at` failures or more (locked).
    async fn locked_usernames(&self, locked_at: u32) -> Result<Vec<String>, StoreError>;
    /// Removes the counter (a successful login, or `authd user unlock`). Returns whether one
    /// existed.
    async fn clear_login_failures(&self, username: &Username) -> Result<bool, StoreError>;
}

/// The audit trail.
#[async_trait]
pub trait AuditStore: Send + Sync {
    async fn insert_audit_event(&self, event: &AuditEvent) -> Result<(), StoreError>;
    /// The newest `limit` events (of `username` only, when given), oldest first.
    async fn audit_events(
        &self,
        username: Option<&str>,
        limit: u32,
    ) -> Result<Vec<AuditEvent>, StoreError>;
    /// A page of the events `query` selects, newest first (by id), with their ids.
    async fn query_audit(&self, query: &AuditQuery) -> Result<Vec<AuditRecord>, StoreError>;
    /// Up to `limit` events with an id above `after_id`, oldest first: what a follower has
    /// not seen yet. Ids may have gaps (PostgreSQL: a transaction still open, or rolled back).
    async fn audit_after(&self, after_id: i64, limit: u32) -> Result<Vec<AuditRecord>, StoreError>;
    /// The id of the newest event (0 when there is none).
    async fn latest_audit_id(&self) -> Result<i64, StoreError>;
}

/// Opens the store named by `url` with default [`StoreOptions`]; see [`open_with`].
///
/// # Errors
/// See [`open_with`].
pub async fn open(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    open_with(url, &StoreOptions::default()).await
}

/// Opens the store named by `url` (`sqlite:…`, `postgres://…` or `postgresql://…`), creating
/// (SQLite) and migrating the database as needed. Migrations run under a lock, so processes
/// opening one database at once apply each migration once.
///
/// # Errors
/// When the URL names no supported backend, or the database cannot be opened or migrated.
pub async fn open_with(url: &str, options: &StoreOptions) -> Result<Arc<dyn Store>, StoreError> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(SqliteStore::open(url).await?))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(PostgresStore::open(url, options).await?))
    } else {
        // Not the URL itself: it may carry a password.
        Err(StoreError::UnsupportedUrl(
            url.split(':').next().unwrap_or_default().to_owned(),
        ))
    }
}
