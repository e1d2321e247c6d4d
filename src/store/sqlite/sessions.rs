//! Sessions on SQLite: refresh families and tokens, logout, revoked access tokens. Rotations
//! go to the rotation writer (`writer`); every other write here is its own `BEGIN IMMEDIATE`
//! transaction, so it serialises with the writer's batches on the write lock.

use async_trait::async_trait;
use sqlx::{Sqlite, Transaction};

use super::SqliteStore;
use crate::domain::{
    AccessStanding, AuditEvent, FamilyId, NewFamily, NewToken, Origin, RefreshPolicy, Rotation,
    Session, Successor, Timestamp, TokenHash, User, UserId, Username,
};
use crate::store::procedures::shared_revocations;
use crate::store::rows::{self, presented_token_sql};
use crate::store::{
    InspectedToken, RotationJob, SessionCursor, SessionStore, StoreError, UserStore, sql,
    unavailable,
};

/// A presented token (`?1`, its hash) with its family and user, as the rotation rules need them.
pub(super) const PRESENTED_TOKEN_SQL: &str =
    presented_token_sql!("WHERE t.hash = $1", "WHERE o.hash = $2");

shared_revocations!(Sqlite);

/// Nothing to lock: `BEGIN IMMEDIATE` holds the database's write lock, families included.
pub(super) async fn lock_families_of(
    _tx: &mut Transaction<'static, Sqlite>,
    _user: &UserId,
) -> Result<(), StoreError> {
    Ok(())
}

#[async_trait]
impl SessionStore for SqliteStore {
    async fn start_family(
        &self,
        family: &NewFamily,
        first: &NewToken,
        events: &[AuditEvent],
    ) -> Result<(), StoreError> {
        self.start_family_once(family, first, events).await
    }

    async fn rotate_refresh(
        &self,
        presented: &TokenHash,
        successor: &Successor,
        now: Timestamp,
        policy: &RefreshPolicy,
        origin: &Origin,
    ) -> Result<Rotation, StoreError> {
        let job = RotationJob::new(presented, successor, now, policy, origin);
        self.rotations.rotate(job).await
    }

    async fn revoke_family(&self, family: &FamilyId, now: Timestamp) -> Result<(), StoreError> {
        self.revoke_family_once(family, now).await
    }

    async fn inspect_refresh(
        &self,
        presented: &TokenHash,
    ) -> Result<Option<InspectedToken>, StoreError> {
        let row = sqlx::query(PRESENTED_TOKEN_SQL)
            .bind(&presented.0[..])
            .bind(rows::used_key(presented))
            .fetch_optional(&self.pool)
            .await
            .map_err(unavailable)?;
        row.as_ref().map(rows::inspected).transpose()
    }

    async fn revoke_family_of(
        &self,
        presented: &TokenHash,
        now: Timestamp,
    ) -> Result<Option<FamilyId>, StoreError> {
        // Read first (issue 16): a token that exists nowhere, as a stranger's garbage does,
        // must not take the write lock the rotation writer needs. A token found here was
        // issued by a committed transaction, so this read cannot miss one a client holds.
        if !token_exists(&self.pool, presented).await? {
            return Ok(None);
        }
        // BEGIN IMMEDIATE, like rotate_refresh: the two serialise on the write lock.
        let mut tx = self.begin().await?;
        let family: Option<String> = sqlx::query_scalar(sql::FAMILY_OF_TOKEN)
            .bind(&presented.0[..])
            .bind(rows::used_key(presented))
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
    ) -> Result<(), StoreError> {
        sql::revoke_access_token!(jti, expires_at)
            .execute(&self.pool)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn is_access_token_revoked(&self, jti: &str) -> Result<bool, StoreError> {
        sql::access_token_revoked!(jti)
            .fetch_one(&self.pool)
            .await
            .map_err(unavailable)
    }

    async fn access_standing(
        &self,
        user: &UserId,
        jti: &str,
        session: Option<&FamilyId>,
        now: Timestamp,
    ) -> Result<Option<AccessStanding>, StoreError> {
        sql::access_standing!(user, jti, session, now)
            .fetch_optional(&self.pool)
            .await
            .map_err(unavailable)?
            .as_ref()
            .map(rows::access_standing)
            .transpose()
    }

    async fn list_sessions(
        &self,
        username: &Username,
        now: Timestamp,
    ) -> Result<Vec<Session>, StoreError> {
        if self.find_user(username).await?.is_none() {
            return Err(StoreError::UserNotFound);
        }
        let found = sql::live_sessions_of!(username, now)
            .fetch_all(&self.pool)
            .await
            .map_err(unavailable)?;
        found.iter().map(rows::session).collect()
    }

    async fn find_session(&self, id: &FamilyId) -> Result<Option<Session>, StoreError> {
        let row = sql::find_session!(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(unavailable)?;
        row.as_ref().map(rows::session).transpose()
    }

    async fn revoke_sessions_of(
        &self,
        username: &Username,
        now: Timestamp,
    ) -> Result<(User, u64), StoreError> {
        self.revoke_sessions_of_once(username, now).await
    }

    async fn list_live_sessions(
        &self,
        now: Timestamp,
        after: Option<&SessionCursor>,
        limit: u32,
    ) -> Result<Vec<Session>, StoreError> {
        let found = sql::live_sessions_page!(now, after, limit)
            .fetch_all(&self.pool)
            .await
            .map_err(unavailable)?;
        found.iter().map(rows::session).collect()
    }
}

/// Whether a refresh token with hash `presented` is stored (any state), read without a lock.
async fn token_exists(pool: &sqlx::SqlitePool, presented: &TokenHash) -> Result<bool, StoreError> {
    let found: Option<i64> = sqlx::query_scalar(sql::TOKEN_KNOWN)
        .bind(&presented.0[..])
        .bind(rows::used_key(presented))
        .fetch_optional(pool)
        .await
        .map_err(unavailable)?;
    Ok(found.is_some())
}
