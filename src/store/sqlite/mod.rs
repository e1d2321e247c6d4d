//! The SQLite backend: the embedded default.
//!
//! WAL mode with `synchronous=FULL`, so a rotation acknowledged to a client is on disk, and a
//! busy timeout so the CLI can write while `serve` runs. Every read-modify-write runs in a
//! `BEGIN IMMEDIATE` transaction: the write lock is taken up front, so concurrent rotations of
//! one token serialise instead of failing on a lock upgrade.
//!
//! Rotations are *group-committed*: one writer thread takes every rotation waiting at that moment
//! and applies them, one after the other and each decided by [`decide`] on the state the
//! previous ones left, inside one `BEGIN IMMEDIATE … COMMIT`; then it answers each caller. So
//! many rotations share one fsync, nobody is answered before the batch is durable, and two
//! presentations of one token in one batch still have exactly one winner (the second sees the
//! first's write, as if it had run in a later transaction).

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{Row, Sqlite, SqliteConnection, Transaction};

use super::{
    InspectedToken, NewUser, Purged, RoleChange, RotationJob, RotationQueue, Store, StoreError,
    StoredApiKey, StoredKey,
};
use crate::crypto::api_key::ApiKeySecretHash;
use crate::domain::{
    ApiKey, ApiKeyId, ApiKeyListing, AuditEvent, AuditKind, Charge, FailureCount, FamilyId,
    NewFamily, NewToken, Origin, PresentedToken, RefreshPolicy, Role, Rotation, Session,
    SessionOrigin, Successor, ThrottlePolicy, Timestamp, TokenHash, User, UserCredentials, UserId,
    Username, normalise_roles,
};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// Most rotations committed in one transaction. Under load a batch is whatever arrived while
/// the previous one was being written, so this only bounds the worst case.
const MAX_ROTATION_BATCH: usize = 256;
/// The rotation writer's SQLite page cache, in KiB (negative: a size, not a page count).
const WRITER_CACHE_SIZE: i32 = -16 * 1024;
/// Rotations that may wait for the writer before callers wait to hand theirs over.
const ROTATION_QUEUE: usize = 4096;
/// WAL size (pages, 64 MiB) past which a commit checkpoints, on every connection. The rotation
/// writer's checkpointer does most of that work off the request path (see `writer`); this is
/// what bounds the WAL under constant load, and when nothing but the pool writes. SQLite's
/// default, 1,000, would make logins and rotations do the checkpointer's work.
const WAL_AUTOCHECKPOINT_PAGES: u32 = 16 * 1024;
/// How long a statement waits for another connection's write lock (the CLI's, say).
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Revokes family `?1` at `?2` for reason `?3`, unless it already is.
const REVOKE_FAMILY: &str = "UPDATE refresh_families SET revoked_at = ?2, revoked_reason = ?3 \
     WHERE id = ?1 AND revoked_at IS NULL";
/// Drops the sealed copies of family `?1`: a revoked family's are useless.
const DROP_SEALED_COPIES: &str =
    "UPDATE refresh_tokens SET sealed_by_predecessor = NULL WHERE family_id = ?1";
const INSERT_AUDIT_EVENT: &str = "INSERT INTO audit_events \
     (at, event_type, user_id, username, source, request_id, detail) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";

#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    rotations: RotationQueue,
}

impl SqliteStore {
    /// Opens (creating if missing) and migrates the database at `url`
    /// (`sqlite://relative/path` or `sqlite:///absolute/path`).
    ///
    /// # Errors
    /// When the file cannot be opened or created, or a migration fails.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url).map_err(unavailable)?;
        keep_private(options.get_filename());
        let options = options
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT)
            .pragma("wal_autocheckpoint", WAL_AUTOCHECKPOINT_PAGES.to_string());
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options.clone())
            .await
            .map_err(unavailable)?;
        MIGRATOR.run(&pool).await.map_err(unavailable)?;
        let rotations = writer::spawn(options.get_filename().to_path_buf())?;
        Ok(Self { pool, rotations })
    }

    async fn begin_immediate(&self) -> Result<Transaction<'static, Sqlite>, StoreError> {
        self.pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(unavailable)
    }
}

/// The database holds password hashes and, without a key encryption key, the private signing
/// keys (SECURITY-REFERENCES: readable only by the service). A missing file is created empty
/// (a valid SQLite database) with mode 0600, and SQLite gives its `-wal` and `-shm` files the
/// same mode. An existing file is left as it is, with a warning if others may read it.
#[cfg(unix)]
fn keep_private(path: &std::path::Path) {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    // In-memory databases (sqlx names them `file:sqlx-in-memory-N`) have no file.
    let in_memory = path
        .to_str()
        .is_some_and(|p| p.starts_with("file:") || p == ":memory:");
    if path.as_os_str().is_empty() || in_memory {
        return;
    }
    let created = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path);
    // Any other failure (a missing directory, no permission) is reported by the open that
    // follows, in its own words.
    if created.is_err()
        && let Ok(metadata) = std::fs::metadata(path)
        && metadata.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(
            path = %path.display(),
            mode = format!("{:o}", metadata.permissions().mode() & 0o777),
            "the database file can be read by other users; it holds password hashes and \
             signing keys: chmod 600 it (and its -wal and -shm files)"
        );
    }
}

#[cfg(not(unix))]
fn keep_private(_path: &std::path::Path) {}

/// Tokens of families that ended (absolute lifetime) or were revoked: nothing can use them.
const PURGE_TOKENS_OF_ENDED_FAMILIES: &str = "DELETE FROM refresh_tokens WHERE hash IN ( \
       SELECT t.hash FROM refresh_tokens t JOIN refresh_families f ON f.id = t.family_id \
       WHERE f.expires_at <= ?1 OR f.revoked_at IS NOT NULL LIMIT ?2)";
/// Unused tokens past their idle timeout. Used tokens stay while their family lives: they are
/// what reuse detection recognises.
const PURGE_IDLE_TOKENS: &str = "DELETE FROM refresh_tokens WHERE hash IN ( \
       SELECT hash FROM refresh_tokens WHERE expires_at <= ?1 AND used_at IS NULL LIMIT ?2)";
/// Ended or revoked families (their tokens are gone by now; any left go by cascade).
const PURGE_ENDED_FAMILIES: &str = "DELETE FROM refresh_families WHERE id IN ( \
       SELECT id FROM refresh_families WHERE expires_at <= ?1 OR revoked_at IS NOT NULL LIMIT ?2)";

impl SqliteStore {
    /// Repeats one batch statement (`?1` = now, `?2` = batch size), each in its own short
    /// transaction so the write lock is released between batches, until a batch deletes fewer
    /// rows than its size.
    async fn delete_all_batches(
        &self,
        sql: &'static str,
        now: Timestamp,
        batch: u32,
    ) -> Result<u64, StoreError> {
        let mut total = 0;
        loop {
            let deleted = sqlx::query(sql)
                .bind(now.unix_millis())
                .bind(i64::from(batch))
                .execute(&self.pool)
                .await
                .map_err(unavailable)?
                .rows_affected();
            total += deleted;
            if deleted < u64::from(batch) {
                return Ok(total);
            }
        }
    }
}

fn unavailable(e: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError::Unavailable(Box::new(e))
}

fn user_write_error(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::DuplicateUser,
        _ => unavailable(e),
    }
}

fn encode_roles(roles: &[Role]) -> String {
    roles.iter().map(Role::as_str).collect::<Vec<_>>().join(" ")
}

fn decode_roles(stored: &str) -> Result<Vec<Role>, StoreError> {
    stored
        .split_whitespace()
        .map(|r| Role::parse(r).map_err(unavailable))
        .collect()
}

/// Reads a user from a row with columns `id, username, roles, enabled, created_at`.
fn user_from_row(row: &SqliteRow) -> Result<User, StoreError> {
    let username: String = row.try_get("username").map_err(unavailable)?;
    Ok(User {
        id: UserId::from_stored(row.try_get("id").map_err(unavailable)?),
        username: Username::parse(&username).map_err(unavailable)?,
        roles: decode_roles(row.try_get::<&str, _>("roles").map_err(unavailable)?)?,
        enabled: row.try_get("enabled").map_err(unavailable)?,
        created_at: Timestamp::from_unix_millis(row.try_get("created_at").map_err(unavailable)?),
    })
}

/// A presented token (`?1`, its hash) with its family and user, as the rotation rules need them.
const PRESENTED_TOKEN_SQL: &str = "\
    SELECT t.hash, t.family_id, t.issued_at, t.expires_at AS token_expires_at, t.used_at, \
           s.sealed_by_predecessor AS successor_sealed, \
           s.hash IS NOT NULL AND s.used_at IS NULL AS successor_is_newest, \
           f.revoked_at, f.expires_at AS family_expires_at, \
           u.id, u.username, u.roles, u.enabled, u.created_at \
    FROM refresh_tokens t \
    JOIN refresh_families f ON f.id = t.family_id \
    JOIN users u ON u.id = f.user_id \
    LEFT JOIN refresh_tokens s ON s.hash = t.successor_hash \
    WHERE t.hash = ?1";

mod writer;

fn millis(row: &SqliteRow, col: &str) -> Result<Timestamp, StoreError> {
    Ok(Timestamp::from_unix_millis(
        row.try_get(col).map_err(unavailable)?,
    ))
}

fn opt_millis(row: &SqliteRow, col: &str) -> Result<Option<Timestamp>, StoreError> {
    Ok(row
        .try_get::<Option<i64>, _>(col)
        .map_err(unavailable)?
        .map(Timestamp::from_unix_millis))
}

fn presented_from_row(row: &SqliteRow) -> Result<InspectedToken, StoreError> {
    let state = PresentedToken {
        user: user_from_row(row)?,
        family_id: FamilyId::from_stored(row.try_get("family_id").map_err(unavailable)?),
        family_revoked: opt_millis(row, "revoked_at")?.is_some(),
        family_expires_at: millis(row, "family_expires_at")?,
        expires_at: millis(row, "token_expires_at")?,
        used_at: opt_millis(row, "used_at")?,
        successor_is_newest: row
            .try_get::<Option<bool>, _>("successor_is_newest")
            .map_err(unavailable)?
            .unwrap_or(false),
        sealed_successor: row.try_get("successor_sealed").map_err(unavailable)?,
    };
    Ok(InspectedToken {
        state,
        issued_at: millis(row, "issued_at")?,
    })
}

/// Sessions with their users, followed by the caller's WHERE clause (a literal: no dynamic
/// SQL).
macro_rules! session_sql {
    ($rest:literal) => {
        concat!(
            "\
    SELECT f.id AS family_id, f.created_at AS family_created_at, \
           (SELECT MAX(t.used_at) FROM refresh_tokens t WHERE t.family_id = f.id) AS last_used_at, \
           f.expires_at AS family_expires_at, f.source_addr, f.user_agent, \
           u.id, u.username, u.roles, u.enabled, u.created_at \
    FROM refresh_families f JOIN users u ON u.id = f.user_id ",
            $rest
        )
    };
}

fn session_from_row(row: &SqliteRow) -> Result<Session, StoreError> {
    Ok(Session {
        id: FamilyId::from_stored(row.try_get("family_id").map_err(unavailable)?),
        user: user_from_row(row)?,
        created_at: millis(row, "family_created_at")?,
        last_used_at: opt_millis(row, "last_used_at")?,
        expires_at: millis(row, "family_expires_at")?,
        origin: SessionOrigin {
            source_addr: row.try_get("source_addr").map_err(unavailable)?,
            user_agent: row.try_get("user_agent").map_err(unavailable)?,
        },
    })
}

/// API keys with their owners, followed by the caller's clauses (a literal).
macro_rules! api_key_sql {
    ($rest:literal) => {
        concat!(
            "\
    SELECT k.id AS key_id, k.name, k.secret_hash, k.roles AS key_roles, \
           k.created_at AS key_created_at, k.expires_at AS key_expires_at, k.last_used_at, \
           k.revoked_at, u.id, u.username, u.roles, u.enabled, u.created_at \
    FROM api_keys k JOIN users u ON u.id = k.user_id ",
            $rest
        )
    };
}

fn api_key_from_row(row: &SqliteRow) -> Result<(ApiKey, User), StoreError> {
    let owner = user_from_row(row)?;
    let id: String = row.try_get("key_id").map_err(unavailable)?;
    let key = ApiKey {
        id: ApiKeyId::parse(&id).ok_or_else(|| {
            StoreError::Unavailable(format!("malformed api key id {id:?}").into())
        })?,
        user_id: owner.id.clone(),
        name: row.try_get("name").map_err(unavailable)?,
        roles: decode_roles(row.try_get::<&str, _>("key_roles").map_err(unavailable)?)?,
        created_at: millis(row, "key_created_at")?,
        expires_at: opt_millis(row, "key_expires_at")?,
        last_used_at: opt_millis(row, "last_used_at")?,
        revoked_at: opt_millis(row, "revoked_at")?,
    };
    Ok((key, owner))
}

async fn fetch_user(
    tx: &mut Transaction<'static, Sqlite>,
    username: &Username,
) -> Result<User, StoreError> {
    let row = sqlx::query(
        "SELECT id, username, roles, enabled, created_at FROM users WHERE username = ?",
    )
    .bind(username.as_str())
    .fetch_optional(&mut **tx)
    .await
    .map_err(unavailable)?
    .ok_or(StoreError::UserNotFound)?;
    user_from_row(&row)
}

async fn revoke_families_of(
    tx: &mut Transaction<'static, Sqlite>,
    user: &UserId,
    now: Timestamp,
    reason: &str,
) -> Result<u64, StoreError> {
    let done = sqlx::query(
        "UPDATE refresh_families SET revoked_at = ?, revoked_reason = ? \
         WHERE user_id = ? AND revoked_at IS NULL",
    )
    .bind(now.unix_millis())
    .bind(reason)
    .bind(user.as_str())
    .execute(&mut **tx)
    .await
    .map_err(unavailable)?;
    // A revoked family's sealed copies are useless; drop them.
    sqlx::query(
        "UPDATE refresh_tokens SET sealed_by_predecessor = NULL \
         WHERE sealed_by_predecessor IS NOT NULL \
           AND family_id IN (SELECT id FROM refresh_families WHERE user_id = ?)",
    )
    .bind(user.as_str())
    .execute(&mut **tx)
    .await
    .map_err(unavailable)?;
    Ok(done.rows_affected())
}

async fn revoke_family_in(
    tx: &mut Transaction<'_, Sqlite>,
    family: &FamilyId,
    now: Timestamp,
    reason: &str,
) -> Result<(), StoreError> {
    sqlx::query(REVOKE_FAMILY)
        .bind(family.as_str())
        .bind(now.unix_millis())
        .bind(reason)
        .execute(&mut **tx)
        .await
        .map_err(unavailable)?;
    sqlx::query(DROP_SEALED_COPIES)
        .bind(family.as_str())
        .execute(&mut **tx)
        .await
        .map_err(unavailable)?;
    Ok(())
}

async fn insert_token(
    tx: &mut Transaction<'_, Sqlite>,
    family: &FamilyId,
    token: &NewToken,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO refresh_tokens (hash, family_id, issued_at, expires_at) VALUES (?, ?, ?, ?)",
    )
    .bind(&token.hash.0[..])
    .bind(family.as_str())
    .bind(token.issued_at.unix_millis())
    .bind(token.expires_at.unix_millis())
    .execute(&mut **tx)
    .await
    .map_err(unavailable)?;
    Ok(())
}

async fn insert_audit(
    connection: &mut SqliteConnection,
    event: &AuditEvent,
) -> Result<(), StoreError> {
    sqlx::query(INSERT_AUDIT_EVENT)
        .bind(event.time.unix_millis())
        .bind(event.kind.as_str())
        .bind(event.user_id.as_deref())
        .bind(event.username.as_deref())
        .bind(event.source.as_deref())
        .bind(event.request_id.as_deref())
        .bind(event.detail.as_deref())
        .execute(connection)
        .await
        .map_err(unavailable)?;
    Ok(())
}

#[async_trait]
impl Store for SqliteStore {
    async fn close(&self) {
        self.rotations.close().await;
        self.pool.close().await;
    }

    async fn ping(&self) -> Result<(), StoreError> {
        // Touch every table, so a database that answers but lost its schema is not "up".
        sqlx::query(
            "SELECT (SELECT COUNT(*) FROM (SELECT 1 FROM users LIMIT 1)), \
                    (SELECT COUNT(*) FROM (SELECT 1 FROM refresh_families LIMIT 1)), \
                    (SELECT COUNT(*) FROM (SELECT 1 FROM refresh_tokens LIMIT 1)), \
                    (SELECT COUNT(*) FROM (SELECT 1 FROM signing_keys LIMIT 1))",
        )
        .execute(&self.pool)
        .await
        .map_err(unavailable)?;
        Ok(())
    }

    async fn create_user(&self, new: &NewUser) -> Result<(), StoreError> {
        let user = &new.user;
        sqlx::query(
            "INSERT INTO users (id, username, password_hash, roles, enabled, created_at, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(user.id.as_str())
        .bind(user.username.as_str())
        .bind(&new.password_hash)
        .bind(encode_roles(&user.roles))
        .bind(user.enabled)
        .bind(user.created_at.unix_millis())
        .bind(user.created_at.unix_millis())
        .execute(&self.pool)
        .await
        .map_err(user_write_error)?;
        Ok(())
    }

    async fn find_credentials(
        &self,
        username: &Username,
    ) -> Result<Option<UserCredentials>, StoreError> {
        let row = sqlx::query(
            "SELECT id, username, roles, enabled, created_at, password_hash \
             FROM users WHERE username = ?",
        )
        .bind(username.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(unavailable)?;
        row.map(|row| {
            Ok(UserCredentials {
                user: user_from_row(&row)?,
                password_hash: row.try_get("password_hash").map_err(unavailable)?,
            })
        })
        .transpose()
    }

    async fn find_user(&self, username: &Username) -> Result<Option<User>, StoreError> {
        let row = sqlx::query(
            "SELECT id, username, roles, enabled, created_at FROM users WHERE username = ?",
        )
        .bind(username.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(unavailable)?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn list_users(&self) -> Result<Vec<User>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, username, roles, enabled, created_at FROM users ORDER BY username",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(unavailable)?;
        rows.iter().map(user_from_row).collect()
    }

    async fn upgrade_password_hash(
        &self,
        user: &UserId,
        old_hash: &str,
        new_hash: &str,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE users SET password_hash = ? WHERE id = ? AND password_hash = ?")
            .bind(new_hash)
            .bind(user.as_str())
            .bind(old_hash)
            .execute(&self.pool)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn change_password(
        &self,
        username: &Username,
        new_hash: &str,
        now: Timestamp,
    ) -> Result<User, StoreError> {
        let mut tx = self.begin_immediate().await?;
        let user = fetch_user(&mut tx, username).await?;
        sqlx::query("UPDATE users SET password_hash = ?, updated_at = ? WHERE id = ?")
            .bind(new_hash)
            .bind(now.unix_millis())
            .bind(user.id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        revoke_families_of(&mut tx, &user.id, now, "password changed").await?;
        tx.commit().await.map_err(unavailable)?;
        Ok(user)
    }

    async fn set_enabled(
        &self,
        username: &Username,
        enabled: bool,
        now: Timestamp,
    ) -> Result<User, StoreError> {
        let mut tx = self.begin_immediate().await?;
        let mut user = fetch_user(&mut tx, username).await?;
        sqlx::query("UPDATE users SET enabled = ?, updated_at = ? WHERE id = ?")
            .bind(enabled)
            .bind(now.unix_millis())
            .bind(user.id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        if !enabled {
            revoke_families_of(&mut tx, &user.id, now, "user disabled").await?;
        }
        tx.commit().await.map_err(unavailable)?;
        user.enabled = enabled;
        Ok(user)
    }

    async fn delete_user(&self, username: &Username) -> Result<User, StoreError> {
        let mut tx = self.begin_immediate().await?;
        let user = fetch_user(&mut tx, username).await?;
        // Families and tokens go with it (ON DELETE CASCADE).
        sqlx::query("DELETE FROM users WHERE id = ?")
            .bind(user.id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        tx.commit().await.map_err(unavailable)?;
        Ok(user)
    }

    async fn change_roles(
        &self,
        username: &Username,
        change: &RoleChange,
    ) -> Result<User, StoreError> {
        let mut tx = self.begin_immediate().await?;
        let mut user = fetch_user(&mut tx, username).await?;
        let mut roles = user.roles.clone();
        roles.retain(|r| !change.remove.contains(r));
        roles.extend(change.add.iter().cloned());
        user.roles = normalise_roles(roles);
        sqlx::query("UPDATE users SET roles = ? WHERE id = ?")
            .bind(encode_roles(&user.roles))
            .bind(user.id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        tx.commit().await.map_err(unavailable)?;
        Ok(user)
    }

    async fn start_family(
        &self,
        family: &NewFamily,
        first: &NewToken,
        events: &[AuditEvent],
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_immediate().await?;
        sqlx::query("DELETE FROM login_throttle WHERE username = ?")
            .bind(family.user.username.as_str())
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        sqlx::query(
            "INSERT INTO refresh_families \
                 (id, user_id, created_at, expires_at, source_addr, user_agent) \
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(family.id.as_str())
        .bind(family.user.id.as_str())
        .bind(family.created_at.unix_millis())
        .bind(family.expires_at.unix_millis())
        .bind(family.origin.source_addr.as_deref())
        .bind(family.origin.user_agent.as_deref())
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
        insert_token(&mut tx, &family.id, first).await?;
        for event in events {
            insert_audit(&mut tx, event).await?;
        }
        tx.commit().await.map_err(unavailable)?;
        Ok(())
    }

    async fn rotate_refresh(
        &self,
        presented: &TokenHash,
        successor: &Successor,
        now: Timestamp,
        policy: &RefreshPolicy,
        origin: &Origin,
    ) -> Result<Rotation, StoreError> {
        self.rotations
            .rotate(RotationJob {
                presented: *presented,
                successor: successor.clone(),
                now,
                policy: *policy,
                origin: origin.clone(),
            })
            .await
    }

    async fn revoke_family(&self, family: &FamilyId, now: Timestamp) -> Result<(), StoreError> {
        let mut tx = self.begin_immediate().await?;
        revoke_family_in(&mut tx, family, now, "revoked").await?;
        tx.commit().await.map_err(unavailable)?;
        Ok(())
    }

    async fn inspect_refresh(
        &self,
        presented: &TokenHash,
    ) -> Result<Option<InspectedToken>, StoreError> {
        let row = sqlx::query(PRESENTED_TOKEN_SQL)
            .bind(&presented.0[..])
            .fetch_optional(&self.pool)
            .await
            .map_err(unavailable)?;
        row.as_ref().map(presented_from_row).transpose()
    }

    async fn revoke_family_of(
        &self,
        presented: &TokenHash,
        now: Timestamp,
    ) -> Result<Option<FamilyId>, StoreError> {
        // BEGIN IMMEDIATE, like rotate_refresh: the two serialise on the write lock.
        let mut tx = self.begin_immediate().await?;
        let family: Option<String> =
            sqlx::query_scalar("SELECT family_id FROM refresh_tokens WHERE hash = ?")
                .bind(&presented.0[..])
                .fetch_optional(&mut *tx)
                .await
                .map_err(unavailable)?;
        let Some(family) = family.map(FamilyId::from_stored) else {
            return Ok(None);
        };
        revoke_family_in(&mut tx, &family, now, "logout").await?;
        tx.commit().await.map_err(unavailable)?;
        Ok(Some(family))
    }

    async fn revoke_access_token(
        &self,
        jti: &str,
        expires_at: Timestamp,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_immediate().await?;
        sqlx::query("DELETE FROM revoked_access_tokens WHERE expires_at <= ?")
            .bind(now.unix_millis())
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        sqlx::query(
            "INSERT INTO revoked_access_tokens (jti, expires_at) VALUES (?, ?) \
             ON CONFLICT (jti) DO NOTHING",
        )
        .bind(jti)
        .bind(expires_at.unix_millis())
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
        tx.commit().await.map_err(unavailable)?;
        Ok(())
    }

    async fn is_access_token_revoked(&self, jti: &str) -> Result<bool, StoreError> {
        let found: Option<i64> =
            sqlx::query_scalar("SELECT 1 FROM revoked_access_tokens WHERE jti = ?")
                .bind(jti)
                .fetch_optional(&self.pool)
                .await
                .map_err(unavailable)?;
        Ok(found.is_some())
    }

    async fn list_sessions(
        &self,
        username: &Username,
        now: Timestamp,
    ) -> Result<Vec<Session>, StoreError> {
        if self.find_user(username).await?.is_none() {
            return Err(StoreError::UserNotFound);
        }
        let rows = sqlx::query(session_sql!(
            "WHERE u.username = ? AND f.revoked_at IS NULL AND f.expires_at > ? \
               AND EXISTS (SELECT 1 FROM refresh_tokens t WHERE t.family_id = f.id \
                           AND t.used_at IS NULL AND t.expires_at > ?) \
             ORDER BY f.created_at DESC, f.id"
        ))
        .bind(username.as_str())
        .bind(now.unix_millis())
        .bind(now.unix_millis())
        .fetch_all(&self.pool)
        .await
        .map_err(unavailable)?;
        rows.iter().map(session_from_row).collect()
    }

    async fn find_session(&self, id: &FamilyId) -> Result<Option<Session>, StoreError> {
        let row = sqlx::query(session_sql!("WHERE f.id = ?"))
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(unavailable)?;
        row.as_ref().map(session_from_row).transpose()
    }

    async fn revoke_sessions_of(
        &self,
        username: &Username,
        now: Timestamp,
    ) -> Result<(User, u64), StoreError> {
        let mut tx = self.begin_immediate().await?;
        let user = fetch_user(&mut tx, username).await?;
        let revoked = revoke_families_of(&mut tx, &user.id, now, "sessions revoked").await?;
        tx.commit().await.map_err(unavailable)?;
        Ok((user, revoked))
    }

    async fn create_api_key(
        &self,
        key: &ApiKey,
        secret_hash: &ApiKeySecretHash,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO api_keys (id, user_id, name, secret_hash, roles, created_at, expires_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(key.id.as_str())
        .bind(key.user_id.as_str())
        .bind(&key.name)
        .bind(&secret_hash.0[..])
        .bind(encode_roles(&key.roles))
        .bind(key.created_at.unix_millis())
        .bind(key.expires_at.map(Timestamp::unix_millis))
        .execute(&self.pool)
        .await
        .map_err(|e| match &e {
            sqlx::Error::Database(db) if db.is_foreign_key_violation() => StoreError::UserNotFound,
            _ => unavailable(e),
        })?;
        Ok(())
    }

    async fn find_api_key(&self, id: &ApiKeyId) -> Result<Option<StoredApiKey>, StoreError> {
        let row = sqlx::query(api_key_sql!("WHERE k.id = ?"))
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(unavailable)?;
        let Some(row) = row else { return Ok(None) };
        let (key, owner) = api_key_from_row(&row)?;
        let hash: Vec<u8> = row.try_get("secret_hash").map_err(unavailable)?;
        let hash: [u8; 32] = hash
            .try_into()
            .map_err(|_| StoreError::Unavailable("malformed api key hash".into()))?;
        Ok(Some(StoredApiKey {
            key,
            owner,
            secret_hash: ApiKeySecretHash(hash),
        }))
    }

    async fn touch_api_key(&self, id: &ApiKeyId, now: Timestamp) -> Result<(), StoreError> {
        sqlx::query("UPDATE api_keys SET last_used_at = ? WHERE id = ?")
            .bind(now.unix_millis())
            .bind(id.as_str())
            .execute(&self.pool)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn list_api_keys(
        &self,
        owner: Option<&Username>,
    ) -> Result<Vec<ApiKeyListing>, StoreError> {
        let rows = match owner {
            Some(username) => {
                if self.find_user(username).await?.is_none() {
                    return Err(StoreError::UserNotFound);
                }
                sqlx::query(api_key_sql!(
                    "WHERE u.username = ? ORDER BY k.created_at, k.id"
                ))
                .bind(username.as_str())
                .fetch_all(&self.pool)
                .await
            }
            None => {
                sqlx::query(api_key_sql!("ORDER BY u.username, k.created_at, k.id"))
                    .fetch_all(&self.pool)
                    .await
            }
        }
        .map_err(unavailable)?;
        rows.iter()
            .map(|row| {
                let (key, owner) = api_key_from_row(row)?;
                Ok(ApiKeyListing {
                    key,
                    username: owner.username,
                })
            })
            .collect()
    }

    async fn revoke_api_key(&self, id: &ApiKeyId, now: Timestamp) -> Result<bool, StoreError> {
        let mut tx = self.begin_immediate().await?;
        let exists: Option<i64> = sqlx::query_scalar("SELECT 1 FROM api_keys WHERE id = ?")
            .bind(id.as_str())
            .fetch_optional(&mut *tx)
            .await
            .map_err(unavailable)?;
        sqlx::query("UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL")
            .bind(now.unix_millis())
            .bind(id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        tx.commit().await.map_err(unavailable)?;
        Ok(exists.is_some())
    }

    async fn purge_expired(&self, now: Timestamp, batch: u32) -> Result<Purged, StoreError> {
        let batch = batch.max(1);
        let mut purged = Purged {
            tokens: self
                .delete_all_batches(PURGE_TOKENS_OF_ENDED_FAMILIES, now, batch)
                .await?,
            families: 0,
        };
        purged.tokens += self
            .delete_all_batches(PURGE_IDLE_TOKENS, now, batch)
            .await?;
        purged.families = self
            .delete_all_batches(PURGE_ENDED_FAMILIES, now, batch)
            .await?;
        Ok(purged)
    }

    async fn signing_keys(&self) -> Result<Vec<StoredKey>, StoreError> {
        let rows = sqlx::query(
            "SELECT kid, algorithm, private_key, encrypted, created_at, activates_at, retires_at \
             FROM signing_keys ORDER BY activates_at, kid",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(unavailable)?;
        rows.iter()
            .map(|row| {
                Ok(StoredKey {
                    kid: row.try_get("kid").map_err(unavailable)?,
                    algorithm: row.try_get("algorithm").map_err(unavailable)?,
                    private_key: row.try_get("private_key").map_err(unavailable)?,
                    encrypted: row.try_get("encrypted").map_err(unavailable)?,
                    created_at: Timestamp::from_unix_millis(
                        row.try_get("created_at").map_err(unavailable)?,
                    ),
                    activates_at: Timestamp::from_unix_millis(
                        row.try_get("activates_at").map_err(unavailable)?,
                    ),
                    retires_at: row
                        .try_get::<Option<i64>, _>("retires_at")
                        .map_err(unavailable)?
                        .map(Timestamp::from_unix_millis),
                })
            })
            .collect()
    }

    async fn insert_signing_key_if(
        &self,
        key: &StoredKey,
        unless_activation_after: Option<Timestamp>,
    ) -> Result<bool, StoreError> {
        // BEGIN IMMEDIATE: the check and the insert happen under the write lock, so processes
        // rotating at once serialise here and only the first inserts.
        let mut tx = self.begin_immediate().await?;
        let later: i64 = match unless_activation_after {
            Some(t) => {
                sqlx::query_scalar("SELECT COUNT(*) FROM signing_keys WHERE activates_at > ?")
                    .bind(t.unix_millis())
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(unavailable)?
            }
            None => sqlx::query_scalar("SELECT COUNT(*) FROM signing_keys")
                .fetch_one(&mut *tx)
                .await
                .map_err(unavailable)?,
        };
        if later > 0 {
            return Ok(false);
        }
        sqlx::query(
            "UPDATE signing_keys SET retires_at = ? WHERE retires_at IS NULL AND activates_at < ?",
        )
        .bind(key.activates_at.unix_millis())
        .bind(key.activates_at.unix_millis())
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
        sqlx::query(
            "INSERT INTO signing_keys \
             (kid, algorithm, private_key, encrypted, created_at, activates_at, retires_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&key.kid)
        .bind(&key.algorithm)
        .bind(&key.private_key)
        .bind(key.encrypted)
        .bind(key.created_at.unix_millis())
        .bind(key.activates_at.unix_millis())
        .bind(key.retires_at.map(Timestamp::unix_millis))
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
        tx.commit().await.map_err(unavailable)?;
        Ok(true)
    }

    async fn reseal_signing_key(
        &self,
        kid: &str,
        private_key: &[u8],
        encrypted: bool,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE signing_keys SET private_key = ?, encrypted = ? WHERE kid = ?")
            .bind(private_key)
            .bind(encrypted)
            .bind(kid)
            .execute(&self.pool)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn login_failures(
        &self,
        username: &Username,
    ) -> Result<Option<FailureCount>, StoreError> {
        let row =
            sqlx::query("SELECT failures, last_failure_at FROM login_throttle WHERE username = ?")
                .bind(username.as_str())
                .fetch_optional(&self.pool)
                .await
                .map_err(unavailable)?;
        row.as_ref().map(failure_count_from_row).transpose()
    }

    async fn charge_login_attempt(
        &self,
        username: &Username,
        policy: &ThrottlePolicy,
        now: Timestamp,
    ) -> Result<Charge, StoreError> {
        // BEGIN IMMEDIATE: the read, the decision and the write happen under the write lock.
        let mut tx = self.begin_immediate().await?;
        let row =
            sqlx::query("SELECT failures, last_failure_at FROM login_throttle WHERE username = ?")
                .bind(username.as_str())
                .fetch_optional(&mut *tx)
                .await
                .map_err(unavailable)?;
        let seen = row.as_ref().map(failure_count_from_row).transpose()?;
        let charge = policy.charge(seen, now);
        if let Charge::Charged(count) = charge {
            sqlx::query(
                "INSERT INTO login_throttle (username, failures, last_failure_at) VALUES (?, ?, ?) \
                 ON CONFLICT (username) DO UPDATE SET \
                     failures = excluded.failures, last_failure_at = excluded.last_failure_at",
            )
            .bind(username.as_str())
            .bind(i64::from(count.consecutive_failures))
            .bind(count.last_failure_at.unix_millis())
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        }
        tx.commit().await.map_err(unavailable)?;
        Ok(charge)
    }

    async fn locked_usernames(&self, locked_at: u32) -> Result<Vec<String>, StoreError> {
        sqlx::query_scalar("SELECT username FROM login_throttle WHERE failures >= ?")
            .bind(i64::from(locked_at))
            .fetch_all(&self.pool)
            .await
            .map_err(unavailable)
    }

    async fn clear_login_failures(&self, username: &Username) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM login_throttle WHERE username = ?")
            .bind(username.as_str())
            .execute(&self.pool)
            .await
            .map_err(unavailable)?;
        Ok(done.rows_affected() > 0)
    }

    async fn purge_login_failures(
        &self,
        before: Timestamp,
        locked_at: u32,
        limit: u32,
    ) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "DELETE FROM login_throttle WHERE username IN \
                 (SELECT username FROM login_throttle \
                  WHERE last_failure_at < ? AND failures < ? LIMIT ?)",
        )
        .bind(before.unix_millis())
        .bind(i64::from(locked_at))
        .bind(i64::from(limit))
        .execute(&self.pool)
        .await
        .map_err(unavailable)?;
        Ok(done.rows_affected())
    }

    async fn insert_audit_event(&self, event: &AuditEvent) -> Result<(), StoreError> {
        let mut connection = self.pool.acquire().await.map_err(unavailable)?;
        insert_audit(&mut connection, event).await
    }

    async fn audit_events(
        &self,
        username: Option<&str>,
        limit: u32,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        let rows = sqlx::query(
            "SELECT at, event_type, user_id, username, source, request_id, detail FROM \
                 (SELECT * FROM audit_events WHERE ? IS NULL OR username = ? \
                  ORDER BY id DESC LIMIT ?) \
             ORDER BY id",
        )
        .bind(username)
        .bind(username)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(unavailable)?;
        rows.iter()
            .map(|row| {
                let kind: String = row.try_get("event_type").map_err(unavailable)?;
                Ok(AuditEvent {
                    time: Timestamp::from_unix_millis(row.try_get("at").map_err(unavailable)?),
                    kind: AuditKind::parse(&kind).ok_or_else(|| {
                        StoreError::Unavailable(format!("unknown audit event {kind:?}").into())
                    })?,
                    user_id: row.try_get("user_id").map_err(unavailable)?,
                    username: row.try_get("username").map_err(unavailable)?,
                    source: row.try_get("source").map_err(unavailable)?,
                    request_id: row.try_get("request_id").map_err(unavailable)?,
                    detail: row.try_get("detail").map_err(unavailable)?,
                })
            })
            .collect()
    }

    async fn purge_audit_events(&self, before: Timestamp, limit: u32) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "DELETE FROM audit_events WHERE id IN \
                 (SELECT id FROM audit_events WHERE at < ? ORDER BY id LIMIT ?)",
        )
        .bind(before.unix_millis())
        .bind(i64::from(limit))
        .execute(&self.pool)
        .await
        .map_err(unavailable)?;
        Ok(done.rows_affected())
    }
}

fn failure_count_from_row(row: &SqliteRow) -> Result<FailureCount, StoreError> {
    let failures: i64 = row.try_get("failures").map_err(unavailable)?;
    Ok(FailureCount {
        consecutive_failures: u32::try_from(failures).unwrap_or(u32::MAX),
        last_failure_at: Timestamp::from_unix_millis(
            row.try_get("last_failure_at").map_err(unavailable)?,
        ),
    })
}
