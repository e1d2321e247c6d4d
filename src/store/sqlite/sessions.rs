//! Sessions on SQLite: refresh families and tokens, logout, revoked access tokens. Rotations
//! go to the rotation writer (`writer`); every other write here is its own `BEGIN IMMEDIATE`
//! transaction, so it serialises with the writer's batches on the write lock.

use async_trait::async_trait;
use sqlx::{Sqlite, Transaction};

use super::SqliteStore;
use super::audit::insert_audit;
use super::users::fetch_user;
use crate::domain::{
    AuditEvent, FamilyId, NewFamily, NewToken, Origin, RefreshPolicy, Rotation, Session, Successor,
    Timestamp, TokenHash, User, UserId, Username,
};
use crate::store::rows::{self, presented_token_sql, session_sql};
use crate::store::{InspectedToken, RotationJob, SessionStore, StoreError, UserStore, unavailable};

/// A presented token (`?1`, its hash) with its family and user, as the rotation rules need them.
pub(super) const PRESENTED_TOKEN_SQL: &str = presented_token_sql!("WHERE t.hash = ?1");
/// Revokes family `?1` at `?2` for reason `?3`, unless it already is.
pub(super) const REVOKE_FAMILY: &str = "UPDATE refresh_families \
     SET revoked_at = ?2, revoked_reason = ?3 WHERE id = ?1 AND revoked_at IS NULL";
/// Drops the sealed copies of family `?1`: a revoked family's are useless.
pub(super) const DROP_SEALED_COPIES: &str =
    "UPDATE refresh_tokens SET sealed_by_predecessor = NULL WHERE family_id = ?1";

/// Revokes every live family of `user` inside `tx`; returns how many were live.
pub(super) async fn revoke_families_of(
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

#[async_trait]
impl SessionStore for SqliteStore {
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
        sqlx::query(
            "INSERT INTO refresh_tokens (hash, family_id, issued_at, expires_at) \
             VALUES (?, ?, ?, ?)",
        )
        .bind(&first.hash.0[..])
        .bind(family.id.as_str())
        .bind(first.issued_at.unix_millis())
        .bind(first.expires_at.unix_millis())
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
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
        let job = RotationJob::new(presented, successor, now, policy, origin);
        self.rotations.rotate(job).await
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
        row.as_ref().map(rows::inspected).transpose()
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
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO revoked_access_tokens (jti, expires_at) VALUES (?, ?) \
             ON CONFLICT (jti) DO NOTHING",
        )
        .bind(jti)
        .bind(expires_at.unix_millis())
        .execute(&self.pool)
        .await
        .map_err(unavailable)?;
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
        let found = sqlx::query(session_sql!(
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
        found.iter().map(rows::session).collect()
    }

    async fn find_session(&self, id: &FamilyId) -> Result<Option<Session>, StoreError> {
        let row = sqlx::query(session_sql!("WHERE f.id = ?"))
            .bind(id.as_str())
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
        let mut tx = self.begin_immediate().await?;
        let user = fetch_user(&mut tx, username).await?;
        let revoked = revoke_families_of(&mut tx, &user.id, now, "sessions revoked").await?;
        tx.commit().await.map_err(unavailable)?;
        Ok((user, revoked))
    }
}
