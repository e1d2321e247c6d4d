//! The PostgreSQL backend: one database shared by any number of authd replicas.
//!
//! Everything a replica needs (users, families, tokens, signing keys) lives in the database, so
//! any replica serves any request. Concurrency rests on row locks, not on the process:
//!
//! - Every change to a refresh family (rotation, reuse revocation) first locks the family row
//!   (`SELECT … FOR UPDATE`), then reads the state afresh and applies [`decide`]. Of any number
//!   of concurrent rotations of one token, on any replicas, exactly one sees it unused.
//!   Rotations go through the replica's batcher ([`rotations`]), which does this for all the
//!   rotations that arrived together in one transaction.
//! - Transactions that fail with a serialization failure or a deadlock (SQLSTATE 40001, 40P01)
//!   are retried a bounded number of times, then reported as unavailable.
//! - Every operation, retries included, has a deadline ([`OPERATION_TIMEOUT`]); a database that
//!   does not answer becomes [`StoreError::Unavailable`], never a hang.
//!
//! Migrations run under sqlx's PostgreSQL advisory lock (`pg_advisory_lock` keyed by the
//! database name), so replicas starting together apply them once. The SQL sticks to what
//! CockroachDB also accepts (`FOR UPDATE`, `$n` parameters, `LIMIT` in subqueries), though
//! CockroachDB itself is not tested.
//!
//! Adding a method: write `x_once`, one transaction doing the work once, and call it from the
//! trait impl through `retrying!` (single statements that need no retry: `within_deadline`).
//!
//! This module does not know the rotation rules (see `crate::domain::refresh`) and is the only
//! code that knows it talks to PostgreSQL.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::{PgConnection, Postgres, Row, Transaction};

use super::{
    InspectedToken, NewUser, Purged, RoleChange, RotationJob, RotationQueue, Store, StoreError,
    StoreOptions, StoredApiKey, StoredKey,
};
use crate::crypto::api_key::ApiKeySecretHash;
use crate::domain::{
    ApiKey, ApiKeyId, ApiKeyListing, AuditEvent, AuditKind, Charge, FailureCount, FamilyId,
    NewFamily, NewToken, Origin, PresentedToken, RefreshPolicy, Role, Rotation, Session,
    SessionOrigin, Successor, ThrottlePolicy, Timestamp, TokenHash, User, UserCredentials, UserId,
    Username, normalise_roles,
};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// The longest any store operation may take, retries included, before it fails as unavailable.
/// Callers turn that into UNAVAILABLE well within 2 s.
pub const OPERATION_TIMEOUT: Duration = Duration::from_millis(1500);
/// How long to wait for a pooled connection, or to open a new one.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(1);
/// Attempts of a transaction that fails with a serialization failure or deadlock.
const MAX_ATTEMPTS: u32 = 5;
/// Migrations may wait for another replica's migration lock: a longer deadline at start.
const MIGRATION_TIMEOUT: Duration = Duration::from_secs(120);

/// The state of each presented refresh token (`$1`, an array of hashes), as [`decide`] needs
/// it, with its family, user and successor; `presented` is the hash it was found by.
const PRESENTED_TOKENS_SQL: &str = "\
    SELECT t.hash AS presented, t.family_id, t.issued_at, t.expires_at AS token_expires_at, \
           t.used_at, s.sealed_by_predecessor AS successor_sealed, \
           s.hash IS NOT NULL AND s.used_at IS NULL AS successor_is_newest, \
           f.revoked_at, f.expires_at AS family_expires_at, \
           u.id, u.username, u.roles, u.enabled, u.created_at \
    FROM refresh_tokens t \
    JOIN refresh_families f ON f.id = t.family_id \
    JOIN users u ON u.id = f.user_id \
    LEFT JOIN refresh_tokens s ON s.hash = t.successor_hash \
    WHERE t.hash = ANY($1)";

/// Runs `$op` (an expression producing a fresh future on each evaluation) until it succeeds,
/// fails for a reason other than a transient conflict, or runs out of attempts; the whole
/// loop runs under [`OPERATION_TIMEOUT`].
macro_rules! retrying {
    ($op:expr) => {
        within_deadline(async {
            let mut attempt = 1;
            loop {
                match $op.await {
                    Err(e) if attempt < MAX_ATTEMPTS && is_transient(&e) => {
                        tracing::debug!(attempt, error = %e, "transaction conflict; retrying");
                        tokio::time::sleep(Duration::from_millis(5 << attempt)).await;
                        attempt += 1;
                    }
                    other => break other,
                }
            }
        })
        .await
    };
}

// After `retrying!`, which it uses.
mod rotations;

#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
    rotations: RotationQueue,
}

impl PostgresStore {
    /// Connects to `url` (`postgres://` or `postgresql://`; `sslmode=require` and stricter use
    /// rustls) and applies pending migrations under the migration lock.
    ///
    /// # Errors
    /// When the URL does not parse, the server cannot be reached or a migration fails.
    pub async fn open(url: &str, options: &StoreOptions) -> Result<Self, StoreError> {
        let connect = PgConnectOptions::from_str(url)
            .map_err(unavailable)?
            .application_name("authd");
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .acquire_timeout(ACQUIRE_TIMEOUT)
            // Connections are opened on demand: a replica starts (and recovers) without
            // holding connections it does not use.
            .min_connections(0)
            .idle_timeout(Duration::from_secs(300))
            .connect_lazy_with(connect);
        let rotations = rotations::spawn(pool.clone());
        let store = Self { pool, rotations };
        store.migrate().await?;
        Ok(store)
    }

    /// Applies pending migrations. sqlx's PostgreSQL migrator holds a session-level advisory
    /// lock for the whole run, so concurrent callers wait for each other and each migration is
    /// applied once.
    async fn migrate(&self) -> Result<(), StoreError> {
        // The lock wait has no deadline of its own: a replica waits here while another one
        // migrates, up to MIGRATION_TIMEOUT.
        tokio::time::timeout(MIGRATION_TIMEOUT, MIGRATOR.run(&self.pool))
            .await
            .map_err(|_| StoreError::Unavailable("migrations timed out".into()))?
            .map_err(unavailable)
    }

    async fn begin(&self) -> Result<Transaction<'static, Postgres>, StoreError> {
        self.pool.begin().await.map_err(unavailable)
    }

    /// See [`Store::insert_signing_key_if`]. A transaction-scoped advisory lock serialises
    /// rotating replicas (row locks cannot, when the table is empty), so the check and the
    /// insert see every key another replica committed first.
    async fn insert_signing_key_if_once(
        &self,
        key: &StoredKey,
        unless_activation_after: Option<Timestamp>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(SIGNING_KEYS_LOCK)
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        let later: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM signing_keys WHERE $1::BIGINT IS NULL OR activates_at > $1",
        )
        .bind(unless_activation_after.map(Timestamp::unix_millis))
        .fetch_one(&mut *tx)
        .await
        .map_err(unavailable)?;
        if later > 0 {
            return Ok(false);
        }
        sqlx::query(
            "UPDATE signing_keys SET retires_at = $1 WHERE retires_at IS NULL AND activates_at < $1",
        )
        .bind(key.activates_at.unix_millis())
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
        sqlx::query(
            "INSERT INTO signing_keys \
             (kid, algorithm, private_key, encrypted, created_at, activates_at, retires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
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

    async fn create_user_once(&self, new: &NewUser) -> Result<(), StoreError> {
        let user = &new.user;
        sqlx::query(
            "INSERT INTO users (id, username, password_hash, roles, enabled, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
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

    async fn change_password_once(
        &self,
        username: &Username,
        new_hash: &str,
        now: Timestamp,
    ) -> Result<User, StoreError> {
        let mut tx = self.begin().await?;
        let user = lock_user(&mut tx, username).await?;
        sqlx::query("UPDATE users SET password_hash = $1, updated_at = $2 WHERE id = $3")
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

    async fn set_enabled_once(
        &self,
        username: &Username,
        enabled: bool,
        now: Timestamp,
    ) -> Result<User, StoreError> {
        let mut tx = self.begin().await?;
        let mut user = lock_user(&mut tx, username).await?;
        sqlx::query("UPDATE users SET enabled = $1, updated_at = $2 WHERE id = $3")
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

    async fn delete_user_once(&self, username: &Username) -> Result<User, StoreError> {
        let mut tx = self.begin().await?;
        let user = lock_user(&mut tx, username).await?;
        lock_families_of(&mut tx, &user.id).await?;
        // Families and tokens go with it (ON DELETE CASCADE).
        sqlx::query("DELETE FROM users WHERE id = $1")
            .bind(user.id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        tx.commit().await.map_err(unavailable)?;
        Ok(user)
    }

    async fn change_roles_once(
        &self,
        username: &Username,
        change: &RoleChange,
    ) -> Result<User, StoreError> {
        let mut tx = self.begin().await?;
        let mut user = lock_user(&mut tx, username).await?;
        let mut roles = user.roles.clone();
        roles.retain(|r| !change.remove.contains(r));
        roles.extend(change.add.iter().cloned());
        user.roles = normalise_roles(roles);
        sqlx::query("UPDATE users SET roles = $1 WHERE id = $2")
            .bind(encode_roles(&user.roles))
            .bind(user.id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        tx.commit().await.map_err(unavailable)?;
        Ok(user)
    }

    /// See [`Store::charge_login_attempt`]. The counter row is locked (`FOR UPDATE`) while
    /// the policy decides, so concurrent attempts on one name are charged one after another.
    /// A missing counter is first inserted with no failures, because a row lock cannot lock a
    /// row that does not exist; that row never outlives the transaction uncharged.
    async fn charge_login_attempt_once(
        &self,
        username: &Username,
        policy: &ThrottlePolicy,
        now: Timestamp,
    ) -> Result<Charge, StoreError> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO login_throttle (username, failures, last_failure_at) VALUES ($1, 0, $2) \
             ON CONFLICT (username) DO NOTHING",
        )
        .bind(username.as_str())
        .bind(now.unix_millis())
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
        let row = sqlx::query(
            "SELECT failures, last_failure_at FROM login_throttle WHERE username = $1 FOR UPDATE",
        )
        .bind(username.as_str())
        .fetch_one(&mut *tx)
        .await
        .map_err(unavailable)?;
        let seen = Some(failure_count_from_row(&row)?).filter(|c| c.consecutive_failures > 0);
        let charge = policy.charge(seen, now);
        match charge {
            Charge::Charged(count) => {
                sqlx::query(
                    "UPDATE login_throttle SET failures = $2, last_failure_at = $3 \
                     WHERE username = $1",
                )
                .bind(username.as_str())
                .bind(i64::from(count.consecutive_failures))
                .bind(count.last_failure_at.unix_millis())
                .execute(&mut *tx)
                .await
                .map_err(unavailable)?;
                tx.commit().await.map_err(unavailable)?;
            }
            // Only a counter with failures can refuse, so there is nothing to keep.
            Charge::Throttled { .. } | Charge::Locked => {
                tx.rollback().await.map_err(unavailable)?;
            }
        }
        Ok(charge)
    }

    async fn start_family_once(
        &self,
        family: &NewFamily,
        first: &NewToken,
        events: &[AuditEvent],
    ) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        sqlx::query("DELETE FROM login_throttle WHERE username = $1")
            .bind(family.user.username.as_str())
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        sqlx::query(
            "INSERT INTO refresh_families \
                 (id, user_id, created_at, expires_at, source_addr, user_agent) \
             VALUES ($1, $2, $3, $4, $5, $6)",
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
        insert_token(&mut tx, &family.id, first, None).await?;
        insert_audit(&mut tx, events).await?;
        tx.commit().await.map_err(unavailable)?;
        Ok(())
    }

    async fn revoke_family_once(
        &self,
        family: &FamilyId,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        revoke_family_in(&mut tx, family, now, "revoked").await?;
        tx.commit().await.map_err(unavailable)?;
        Ok(())
    }

    async fn revoke_family_of_once(
        &self,
        presented: &TokenHash,
        now: Timestamp,
    ) -> Result<Option<FamilyId>, StoreError> {
        let mut tx = self.begin().await?;
        // The same family lock as rotate_once: a rotation of this family either committed
        // before (its successor is revoked below with the family) or waits and then sees the
        // family revoked.
        let family: Option<String> = sqlx::query_scalar(
            "SELECT id FROM refresh_families \
             WHERE id = (SELECT family_id FROM refresh_tokens WHERE hash = $1) \
             FOR UPDATE",
        )
        .bind(&presented.0[..])
        .fetch_optional(&mut *tx)
        .await
        .map_err(unavailable)?;
        let family = family.map(FamilyId::from_stored);
        if let Some(family) = &family {
            revoke_family_in(&mut tx, family, now, "logout").await?;
        }
        tx.commit().await.map_err(unavailable)?;
        Ok(family)
    }

    async fn revoke_access_token_once(
        &self,
        jti: &str,
        expires_at: Timestamp,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        sqlx::query("DELETE FROM revoked_access_tokens WHERE expires_at <= $1")
            .bind(now.unix_millis())
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        sqlx::query(
            "INSERT INTO revoked_access_tokens (jti, expires_at) VALUES ($1, $2) \
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

    async fn revoke_sessions_of_once(
        &self,
        username: &Username,
        now: Timestamp,
    ) -> Result<(User, u64), StoreError> {
        let mut tx = self.begin().await?;
        let user = lock_user(&mut tx, username).await?;
        let revoked = revoke_families_of(&mut tx, &user.id, now, "sessions revoked").await?;
        tx.commit().await.map_err(unavailable)?;
        Ok((user, revoked))
    }

    async fn revoke_api_key_once(&self, id: &ApiKeyId, now: Timestamp) -> Result<bool, StoreError> {
        let mut tx = self.begin().await?;
        let exists: Option<i32> =
            sqlx::query_scalar("SELECT 1 FROM api_keys WHERE id = $1 FOR UPDATE")
                .bind(id.as_str())
                .fetch_optional(&mut *tx)
                .await
                .map_err(unavailable)?;
        sqlx::query("UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
            .bind(now.unix_millis())
            .bind(id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        tx.commit().await.map_err(unavailable)?;
        Ok(exists.is_some())
    }

    /// Deletes one batch with `sql` (which takes `$1` = now, `$2` = batch size); returns the
    /// number of rows deleted.
    async fn delete_batch(
        &self,
        sql: &'static str,
        now: Timestamp,
        batch: u32,
    ) -> Result<u64, StoreError> {
        let done = sqlx::query(sql)
            .bind(now.unix_millis())
            .bind(i64::from(batch))
            .execute(&self.pool)
            .await
            .map_err(unavailable)?;
        Ok(done.rows_affected())
    }

    /// Repeats one batch statement until a batch deletes fewer rows than its size.
    async fn delete_all_batches(
        &self,
        sql: &'static str,
        now: Timestamp,
        batch: u32,
    ) -> Result<u64, StoreError> {
        let mut total = 0;
        loop {
            let deleted = retrying!(self.delete_batch(sql, now, batch))?;
            total += deleted;
            if deleted < u64::from(batch) {
                return Ok(total);
            }
        }
    }
}

// The purge statements. `SKIP LOCKED` makes concurrent purgers (other replicas) take disjoint
// rows, so a batch shorter than its size means "nothing left that nobody else is deleting",
// and skips tokens a rotation holds. PostgreSQL has no `DELETE … LIMIT`; the subquery bounds it.

/// Tokens of families that ended (absolute lifetime) or were revoked: nothing can use them.
const PURGE_TOKENS_OF_ENDED_FAMILIES: &str = "DELETE FROM refresh_tokens WHERE hash IN ( \
       SELECT t.hash FROM refresh_tokens t JOIN refresh_families f ON f.id = t.family_id \
       WHERE f.expires_at <= $1 OR f.revoked_at IS NOT NULL \
       LIMIT $2 FOR UPDATE OF t SKIP LOCKED)";
/// Unused tokens past their idle timeout. Used tokens stay while their family lives: they are
/// what reuse detection recognises.
const PURGE_IDLE_TOKENS: &str = "DELETE FROM refresh_tokens WHERE hash IN ( \
       SELECT hash FROM refresh_tokens WHERE expires_at <= $1 AND used_at IS NULL \
       LIMIT $2 FOR UPDATE SKIP LOCKED)";
/// Ended or revoked families (their tokens are gone by now; any left go by cascade).
const PURGE_ENDED_FAMILIES: &str = "DELETE FROM refresh_families WHERE id IN ( \
       SELECT id FROM refresh_families WHERE expires_at <= $1 OR revoked_at IS NOT NULL \
       LIMIT $2 FOR UPDATE SKIP LOCKED)";

/// The advisory-lock key that serialises signing-key rotations across replicas.
const SIGNING_KEYS_LOCK: i64 = 0x6175_7468_645f_6b31; // "authd_k1"

/// Runs `op` under [`OPERATION_TIMEOUT`].
async fn within_deadline<T>(
    op: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    tokio::time::timeout(OPERATION_TIMEOUT, op)
        .await
        .map_err(|_| StoreError::Unavailable("database did not answer in time".into()))?
}

/// Whether a failed transaction may succeed if simply run again.
fn is_transient(e: &StoreError) -> bool {
    let StoreError::Unavailable(source) = e else {
        return false;
    };
    match source.downcast_ref::<sqlx::Error>() {
        Some(sqlx::Error::Database(db)) => {
            matches!(db.code().as_deref(), Some("40001" | "40P01"))
        }
        _ => false,
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
fn user_from_row(row: &PgRow) -> Result<User, StoreError> {
    let username: String = row.try_get("username").map_err(unavailable)?;
    Ok(User {
        id: UserId::from_stored(row.try_get("id").map_err(unavailable)?),
        username: Username::parse(&username).map_err(unavailable)?,
        roles: decode_roles(row.try_get::<&str, _>("roles").map_err(unavailable)?)?,
        enabled: row.try_get("enabled").map_err(unavailable)?,
        created_at: Timestamp::from_unix_millis(row.try_get("created_at").map_err(unavailable)?),
    })
}

fn presented_from_row(row: &PgRow, now: Timestamp) -> Result<PresentedToken, StoreError> {
    let get_ts = |col: &str| -> Result<Option<Timestamp>, StoreError> {
        Ok(row
            .try_get::<Option<i64>, _>(col)
            .map_err(unavailable)?
            .map(Timestamp::from_unix_millis))
    };
    Ok(PresentedToken {
        user: user_from_row(row)?,
        family_id: FamilyId::from_stored(row.try_get("family_id").map_err(unavailable)?),
        family_revoked: get_ts("revoked_at")?.is_some(),
        family_expires_at: get_ts("family_expires_at")?.unwrap_or(now),
        expires_at: get_ts("token_expires_at")?.unwrap_or(now),
        used_at: get_ts("used_at")?,
        successor_is_newest: row
            .try_get::<Option<bool>, _>("successor_is_newest")
            .map_err(unavailable)?
            .unwrap_or(false),
        sealed_successor: row.try_get("successor_sealed").map_err(unavailable)?,
    })
}

fn key_from_row(row: &PgRow) -> Result<StoredKey, StoreError> {
    Ok(StoredKey {
        kid: row.try_get("kid").map_err(unavailable)?,
        algorithm: row.try_get("algorithm").map_err(unavailable)?,
        private_key: row.try_get("private_key").map_err(unavailable)?,
        encrypted: row.try_get("encrypted").map_err(unavailable)?,
        created_at: Timestamp::from_unix_millis(row.try_get("created_at").map_err(unavailable)?),
        activates_at: Timestamp::from_unix_millis(
            row.try_get("activates_at").map_err(unavailable)?,
        ),
        retires_at: row
            .try_get::<Option<i64>, _>("retires_at")
            .map_err(unavailable)?
            .map(Timestamp::from_unix_millis),
    })
}

fn millis(row: &PgRow, col: &str) -> Result<Timestamp, StoreError> {
    Ok(Timestamp::from_unix_millis(
        row.try_get(col).map_err(unavailable)?,
    ))
}

fn opt_millis(row: &PgRow, col: &str) -> Result<Option<Timestamp>, StoreError> {
    Ok(row
        .try_get::<Option<i64>, _>(col)
        .map_err(unavailable)?
        .map(Timestamp::from_unix_millis))
}

/// Sessions with their users, followed by the caller's clauses (a literal: no dynamic SQL).
macro_rules! session_sql {
    ($rest:literal) => {
        concat!(
            "SELECT f.id AS family_id, f.created_at AS family_created_at, \
                    (SELECT MAX(t.used_at) FROM refresh_tokens t WHERE t.family_id = f.id) \
                        AS last_used_at, \
                    f.expires_at AS family_expires_at, f.source_addr, f.user_agent, \
                    u.id, u.username, u.roles, u.enabled, u.created_at \
             FROM refresh_families f JOIN users u ON u.id = f.user_id ",
            $rest
        )
    };
}

fn session_from_row(row: &PgRow) -> Result<Session, StoreError> {
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
            "SELECT k.id AS key_id, k.name, k.secret_hash, k.roles AS key_roles, \
                    k.created_at AS key_created_at, k.expires_at AS key_expires_at, \
                    k.last_used_at, k.revoked_at, u.id, u.username, u.roles, u.enabled, \
                    u.created_at \
             FROM api_keys k JOIN users u ON u.id = k.user_id ",
            $rest
        )
    };
}

fn api_key_from_row(row: &PgRow) -> Result<(ApiKey, User), StoreError> {
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

/// Loads a user and locks its row, so concurrent changes to one user serialise.
async fn lock_user(
    tx: &mut Transaction<'static, Postgres>,
    username: &Username,
) -> Result<User, StoreError> {
    let row = sqlx::query(
        "SELECT id, username, roles, enabled, created_at FROM users WHERE username = $1 \
         FOR UPDATE",
    )
    .bind(username.as_str())
    .fetch_optional(&mut **tx)
    .await
    .map_err(unavailable)?
    .ok_or(StoreError::UserNotFound)?;
    user_from_row(&row)
}

async fn revoke_families_of(
    tx: &mut Transaction<'static, Postgres>,
    user: &UserId,
    now: Timestamp,
    reason: &str,
) -> Result<u64, StoreError> {
    lock_families_of(tx, user).await?;
    let done = sqlx::query(
        "UPDATE refresh_families SET revoked_at = $1, revoked_reason = $2 \
         WHERE user_id = $3 AND revoked_at IS NULL",
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
           AND family_id IN (SELECT id FROM refresh_families WHERE user_id = $1)",
    )
    .bind(user.as_str())
    .execute(&mut **tx)
    .await
    .map_err(unavailable)?;
    Ok(done.rows_affected())
}

/// Locks every family of `user`, in id order: the order rotation batches lock families in
/// (`rotations`), so a change to a user's sessions and a batch holding some of them wait for
/// each other instead of deadlocking.
async fn lock_families_of(
    tx: &mut Transaction<'static, Postgres>,
    user: &UserId,
) -> Result<(), StoreError> {
    sqlx::query("SELECT id FROM refresh_families WHERE user_id = $1 ORDER BY id FOR UPDATE")
        .bind(user.as_str())
        .execute(&mut **tx)
        .await
        .map_err(unavailable)?;
    Ok(())
}

async fn revoke_family_in(
    tx: &mut Transaction<'static, Postgres>,
    family: &FamilyId,
    now: Timestamp,
    reason: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE refresh_families SET revoked_at = $1, revoked_reason = $2 \
         WHERE id = $3 AND revoked_at IS NULL",
    )
    .bind(now.unix_millis())
    .bind(reason)
    .bind(family.as_str())
    .execute(&mut **tx)
    .await
    .map_err(unavailable)?;
    // A revoked family's sealed copies are useless; drop them.
    sqlx::query(
        "UPDATE refresh_tokens SET sealed_by_predecessor = NULL \
         WHERE family_id = $1 AND sealed_by_predecessor IS NOT NULL",
    )
    .bind(family.as_str())
    .execute(&mut **tx)
    .await
    .map_err(unavailable)?;
    Ok(())
}

/// Stores a token; a successor comes with its copy sealed under its predecessor.
async fn insert_token(
    tx: &mut Transaction<'static, Postgres>,
    family: &FamilyId,
    token: &NewToken,
    sealed_by_predecessor: Option<&[u8]>,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO refresh_tokens (hash, family_id, issued_at, expires_at, sealed_by_predecessor) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&token.hash.0[..])
    .bind(family.as_str())
    .bind(token.issued_at.unix_millis())
    .bind(token.expires_at.unix_millis())
    .bind(sealed_by_predecessor)
    .execute(&mut **tx)
    .await
    .map_err(unavailable)?;
    Ok(())
}

/// Records `events` in one statement (none when there are none).
async fn insert_audit(
    connection: &mut PgConnection,
    events: &[AuditEvent],
) -> Result<(), StoreError> {
    if events.is_empty() {
        return Ok(());
    }
    let column = |field: fn(&AuditEvent) -> Option<&str>| -> Vec<Option<&str>> {
        events.iter().map(field).collect()
    };
    sqlx::query(
        "INSERT INTO audit_events (at, event_type, user_id, username, source, request_id, detail) \
         SELECT * FROM UNNEST($1::BIGINT[], $2::TEXT[], $3::TEXT[], $4::TEXT[], $5::TEXT[], \
                              $6::TEXT[], $7::TEXT[])",
    )
    .bind(
        events
            .iter()
            .map(|e| e.time.unix_millis())
            .collect::<Vec<_>>(),
    )
    .bind(events.iter().map(|e| e.kind.as_str()).collect::<Vec<_>>())
    .bind(column(|e| e.user_id.as_deref()))
    .bind(column(|e| e.username.as_deref()))
    .bind(column(|e| e.source.as_deref()))
    .bind(column(|e| e.request_id.as_deref()))
    .bind(column(|e| e.detail.as_deref()))
    .execute(connection)
    .await
    .map_err(unavailable)?;
    Ok(())
}

#[async_trait]
impl Store for PostgresStore {
    async fn close(&self) {
        self.rotations.close().await;
        self.pool.close().await;
    }

    async fn ping(&self) -> Result<(), StoreError> {
        within_deadline(async {
            sqlx::query("SELECT 1")
                .execute(&self.pool)
                .await
                .map_err(unavailable)?;
            Ok(())
        })
        .await
    }

    async fn create_user(&self, new: &NewUser) -> Result<(), StoreError> {
        retrying!(self.create_user_once(new))
    }

    async fn find_credentials(
        &self,
        username: &Username,
    ) -> Result<Option<UserCredentials>, StoreError> {
        within_deadline(async {
            let row = sqlx::query(
                "SELECT id, username, roles, enabled, created_at, password_hash \
                 FROM users WHERE username = $1",
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
        })
        .await
    }

    async fn find_user(&self, username: &Username) -> Result<Option<User>, StoreError> {
        within_deadline(async {
            let row = sqlx::query(
                "SELECT id, username, roles, enabled, created_at FROM users WHERE username = $1",
            )
            .bind(username.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(unavailable)?;
            row.as_ref().map(user_from_row).transpose()
        })
        .await
    }

    async fn list_users(&self) -> Result<Vec<User>, StoreError> {
        within_deadline(async {
            let rows = sqlx::query(
                "SELECT id, username, roles, enabled, created_at FROM users ORDER BY username",
            )
            .fetch_all(&self.pool)
            .await
            .map_err(unavailable)?;
            rows.iter().map(user_from_row).collect()
        })
        .await
    }

    async fn upgrade_password_hash(
        &self,
        user: &UserId,
        old_hash: &str,
        new_hash: &str,
    ) -> Result<(), StoreError> {
        within_deadline(async {
            sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2 AND password_hash = $3")
                .bind(new_hash)
                .bind(user.as_str())
                .bind(old_hash)
                .execute(&self.pool)
                .await
                .map_err(unavailable)?;
            Ok(())
        })
        .await
    }

    async fn change_password(
        &self,
        username: &Username,
        new_hash: &str,
        now: Timestamp,
    ) -> Result<User, StoreError> {
        retrying!(self.change_password_once(username, new_hash, now))
    }

    async fn set_enabled(
        &self,
        username: &Username,
        enabled: bool,
        now: Timestamp,
    ) -> Result<User, StoreError> {
        retrying!(self.set_enabled_once(username, enabled, now))
    }

    async fn delete_user(&self, username: &Username) -> Result<User, StoreError> {
        retrying!(self.delete_user_once(username))
    }

    async fn change_roles(
        &self,
        username: &Username,
        change: &RoleChange,
    ) -> Result<User, StoreError> {
        retrying!(self.change_roles_once(username, change))
    }

    async fn start_family(
        &self,
        family: &NewFamily,
        first: &NewToken,
        events: &[AuditEvent],
    ) -> Result<(), StoreError> {
        retrying!(self.start_family_once(family, first, events))
    }

    async fn rotate_refresh(
        &self,
        presented: &TokenHash,
        successor: &Successor,
        now: Timestamp,
        policy: &RefreshPolicy,
        origin: &Origin,
    ) -> Result<Rotation, StoreError> {
        let job = RotationJob {
            presented: *presented,
            successor: successor.clone(),
            now,
            policy: *policy,
            origin: origin.clone(),
        };
        within_deadline(self.rotations.rotate(job)).await
    }

    async fn revoke_family(&self, family: &FamilyId, now: Timestamp) -> Result<(), StoreError> {
        retrying!(self.revoke_family_once(family, now))
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

    async fn inspect_refresh(
        &self,
        presented: &TokenHash,
    ) -> Result<Option<InspectedToken>, StoreError> {
        within_deadline(async {
            let row = sqlx::query(PRESENTED_TOKENS_SQL)
                .bind([&presented.0[..]])
                .fetch_optional(&self.pool)
                .await
                .map_err(unavailable)?;
            let Some(row) = row else { return Ok(None) };
            let issued_at = millis(&row, "issued_at")?;
            let state = presented_from_row(&row, issued_at)?;
            Ok(Some(InspectedToken { state, issued_at }))
        })
        .await
    }

    async fn revoke_family_of(
        &self,
        presented: &TokenHash,
        now: Timestamp,
    ) -> Result<Option<FamilyId>, StoreError> {
        retrying!(self.revoke_family_of_once(presented, now))
    }

    async fn revoke_access_token(
        &self,
        jti: &str,
        expires_at: Timestamp,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        retrying!(self.revoke_access_token_once(jti, expires_at, now))
    }

    async fn is_access_token_revoked(&self, jti: &str) -> Result<bool, StoreError> {
        within_deadline(async {
            let found: Option<i32> =
                sqlx::query_scalar("SELECT 1 FROM revoked_access_tokens WHERE jti = $1")
                    .bind(jti)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(unavailable)?;
            Ok(found.is_some())
        })
        .await
    }

    async fn list_sessions(
        &self,
        username: &Username,
        now: Timestamp,
    ) -> Result<Vec<Session>, StoreError> {
        if self.find_user(username).await?.is_none() {
            return Err(StoreError::UserNotFound);
        }
        within_deadline(async {
            let rows = sqlx::query(session_sql!(
                "WHERE u.username = $1 AND f.revoked_at IS NULL AND f.expires_at > $2 \
                   AND EXISTS (SELECT 1 FROM refresh_tokens t WHERE t.family_id = f.id \
                               AND t.used_at IS NULL AND t.expires_at > $2) \
                 ORDER BY f.created_at DESC, f.id"
            ))
            .bind(username.as_str())
            .bind(now.unix_millis())
            .fetch_all(&self.pool)
            .await
            .map_err(unavailable)?;
            rows.iter().map(session_from_row).collect()
        })
        .await
    }

    async fn find_session(&self, id: &FamilyId) -> Result<Option<Session>, StoreError> {
        within_deadline(async {
            let row = sqlx::query(session_sql!("WHERE f.id = $1"))
                .bind(id.as_str())
                .fetch_optional(&self.pool)
                .await
                .map_err(unavailable)?;
            row.as_ref().map(session_from_row).transpose()
        })
        .await
    }

    async fn revoke_sessions_of(
        &self,
        username: &Username,
        now: Timestamp,
    ) -> Result<(User, u64), StoreError> {
        retrying!(self.revoke_sessions_of_once(username, now))
    }

    async fn create_api_key(
        &self,
        key: &ApiKey,
        secret_hash: &ApiKeySecretHash,
    ) -> Result<(), StoreError> {
        within_deadline(async {
            sqlx::query(
                "INSERT INTO api_keys \
                 (id, user_id, name, secret_hash, roles, created_at, expires_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
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
                sqlx::Error::Database(db) if db.is_foreign_key_violation() => {
                    StoreError::UserNotFound
                }
                _ => unavailable(e),
            })?;
            Ok(())
        })
        .await
    }

    async fn find_api_key(&self, id: &ApiKeyId) -> Result<Option<StoredApiKey>, StoreError> {
        within_deadline(async {
            let row = sqlx::query(api_key_sql!("WHERE k.id = $1"))
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
        })
        .await
    }

    async fn touch_api_key(&self, id: &ApiKeyId, now: Timestamp) -> Result<(), StoreError> {
        within_deadline(async {
            sqlx::query("UPDATE api_keys SET last_used_at = $1 WHERE id = $2")
                .bind(now.unix_millis())
                .bind(id.as_str())
                .execute(&self.pool)
                .await
                .map_err(unavailable)?;
            Ok(())
        })
        .await
    }

    async fn list_api_keys(
        &self,
        owner: Option<&Username>,
    ) -> Result<Vec<ApiKeyListing>, StoreError> {
        if let Some(username) = owner
            && self.find_user(username).await?.is_none()
        {
            return Err(StoreError::UserNotFound);
        }
        within_deadline(async {
            let rows = match owner {
                Some(username) => {
                    sqlx::query(api_key_sql!(
                        "WHERE u.username = $1 ORDER BY k.created_at, k.id"
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
        })
        .await
    }

    async fn revoke_api_key(&self, id: &ApiKeyId, now: Timestamp) -> Result<bool, StoreError> {
        retrying!(self.revoke_api_key_once(id, now))
    }

    async fn signing_keys(&self) -> Result<Vec<StoredKey>, StoreError> {
        within_deadline(async {
            let rows = sqlx::query(
                "SELECT kid, algorithm, private_key, encrypted, created_at, activates_at, \
                        retires_at \
                 FROM signing_keys ORDER BY activates_at, kid",
            )
            .fetch_all(&self.pool)
            .await
            .map_err(unavailable)?;
            rows.iter().map(key_from_row).collect()
        })
        .await
    }

    async fn insert_signing_key_if(
        &self,
        key: &StoredKey,
        unless_activation_after: Option<Timestamp>,
    ) -> Result<bool, StoreError> {
        retrying!(self.insert_signing_key_if_once(key, unless_activation_after))
    }

    async fn reseal_signing_key(
        &self,
        kid: &str,
        private_key: &[u8],
        encrypted: bool,
    ) -> Result<(), StoreError> {
        within_deadline(async {
            sqlx::query("UPDATE signing_keys SET private_key = $1, encrypted = $2 WHERE kid = $3")
                .bind(private_key)
                .bind(encrypted)
                .bind(kid)
                .execute(&self.pool)
                .await
                .map_err(unavailable)?;
            Ok(())
        })
        .await
    }

    async fn login_failures(
        &self,
        username: &Username,
    ) -> Result<Option<FailureCount>, StoreError> {
        let row = within_deadline(async {
            sqlx::query("SELECT failures, last_failure_at FROM login_throttle WHERE username = $1")
                .bind(username.as_str())
                .fetch_optional(&self.pool)
                .await
                .map_err(unavailable)
        })
        .await?;
        row.as_ref().map(failure_count_from_row).transpose()
    }

    async fn charge_login_attempt(
        &self,
        username: &Username,
        policy: &ThrottlePolicy,
        now: Timestamp,
    ) -> Result<Charge, StoreError> {
        retrying!(self.charge_login_attempt_once(username, policy, now))
    }

    async fn locked_usernames(&self, locked_at: u32) -> Result<Vec<String>, StoreError> {
        within_deadline(async {
            sqlx::query_scalar("SELECT username FROM login_throttle WHERE failures >= $1")
                .bind(i64::from(locked_at))
                .fetch_all(&self.pool)
                .await
                .map_err(unavailable)
        })
        .await
    }

    async fn clear_login_failures(&self, username: &Username) -> Result<bool, StoreError> {
        let done = within_deadline(async {
            sqlx::query("DELETE FROM login_throttle WHERE username = $1")
                .bind(username.as_str())
                .execute(&self.pool)
                .await
                .map_err(unavailable)
        })
        .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn purge_login_failures(
        &self,
        before: Timestamp,
        locked_at: u32,
        limit: u32,
    ) -> Result<u64, StoreError> {
        let done = within_deadline(async {
            sqlx::query(
                "DELETE FROM login_throttle WHERE username IN \
                     (SELECT username FROM login_throttle \
                      WHERE last_failure_at < $1 AND failures < $2 \
                      LIMIT $3 FOR UPDATE SKIP LOCKED)",
            )
            .bind(before.unix_millis())
            .bind(i64::from(locked_at))
            .bind(i64::from(limit))
            .execute(&self.pool)
            .await
            .map_err(unavailable)
        })
        .await?;
        Ok(done.rows_affected())
    }

    async fn insert_audit_event(&self, event: &AuditEvent) -> Result<(), StoreError> {
        within_deadline(async {
            let mut connection = self.pool.acquire().await.map_err(unavailable)?;
            insert_audit(&mut connection, std::slice::from_ref(event)).await
        })
        .await
    }

    async fn audit_events(
        &self,
        username: Option<&str>,
        limit: u32,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        let rows = within_deadline(async {
            sqlx::query(
                "SELECT at, event_type, user_id, username, source, request_id, detail FROM \
                     (SELECT * FROM audit_events WHERE $1::TEXT IS NULL OR username = $1 \
                      ORDER BY id DESC LIMIT $2) e \
                 ORDER BY id",
            )
            .bind(username)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(unavailable)
        })
        .await?;
        rows.iter()
            .map(|row| {
                let kind: String = row.try_get("event_type").map_err(unavailable)?;
                Ok(AuditEvent {
                    time: millis(row, "at")?,
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
        let done = within_deadline(async {
            sqlx::query(
                "DELETE FROM audit_events WHERE id IN \
                     (SELECT id FROM audit_events WHERE at < $1 ORDER BY id \
                      LIMIT $2 FOR UPDATE SKIP LOCKED)",
            )
            .bind(before.unix_millis())
            .bind(i64::from(limit))
            .execute(&self.pool)
            .await
            .map_err(unavailable)
        })
        .await?;
        Ok(done.rows_affected())
    }
}

fn failure_count_from_row(row: &PgRow) -> Result<FailureCount, StoreError> {
    let failures: i64 = row.try_get("failures").map_err(unavailable)?;
    Ok(FailureCount {
        consecutive_failures: u32::try_from(failures).unwrap_or(u32::MAX),
        last_failure_at: millis(row, "last_failure_at")?,
    })
}
