//! Sessions on PostgreSQL: refresh families and tokens, logout, revoked access tokens. Every
//! writer of a family's tokens locks the family row first (`FOR UPDATE`), families in id order
//! when it takes several; rotations go through the batcher (`rotations`), which does the same.

use async_trait::async_trait;
use sqlx::{Postgres, Transaction};

use super::audit::insert_audit;
use super::users::lock_user;
use super::{PostgresStore, within_deadline};
use crate::domain::{
    AuditEvent, FamilyId, NewFamily, NewToken, Origin, RefreshPolicy, Rotation, Session, Successor,
    Timestamp, TokenHash, User, UserId, Username,
};
use crate::store::rows::{self, presented_token_sql, session_sql};
use crate::store::{InspectedToken, RotationJob, SessionStore, StoreError, UserStore, unavailable};

/// The state of each presented refresh token (`$1`, an array of hashes), as
/// [`crate::domain::decide`] needs it, with its family, user and successor.
pub(super) const PRESENTED_TOKENS_SQL: &str = presented_token_sql!("WHERE t.hash = ANY($1)");

/// Revokes every live family of `user` (locking them first, in id order); returns how many
/// were live.
pub(super) async fn revoke_families_of(
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
pub(super) async fn lock_families_of(
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

/// Revokes one family and drops its sealed copies; the caller holds the family's lock.
pub(super) async fn revoke_family_in(
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

impl PostgresStore {
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
        sqlx::query(
            "INSERT INTO refresh_tokens (hash, family_id, issued_at, expires_at) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(&first.hash.0[..])
        .bind(family.id.as_str())
        .bind(first.issued_at.unix_millis())
        .bind(first.expires_at.unix_millis())
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
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
        // The same family lock as a rotation batch: a rotation of this family either committed
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
}

#[async_trait]
impl SessionStore for PostgresStore {
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
        let job = RotationJob::new(presented, successor, now, policy, origin);
        within_deadline(self.rotations.rotate(job)).await
    }

    async fn revoke_family(&self, family: &FamilyId, now: Timestamp) -> Result<(), StoreError> {
        retrying!(self.revoke_family_once(family, now))
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
            row.as_ref().map(rows::inspected).transpose()
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
    ) -> Result<(), StoreError> {
        within_deadline(async {
            sqlx::query(
                "INSERT INTO revoked_access_tokens (jti, expires_at) VALUES ($1, $2) \
                 ON CONFLICT (jti) DO NOTHING",
            )
            .bind(jti)
            .bind(expires_at.unix_millis())
            .execute(&self.pool)
            .await
            .map_err(unavailable)?;
            Ok(())
        })
        .await
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
            let found = sqlx::query(session_sql!(
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
            found.iter().map(rows::session).collect()
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
            row.as_ref().map(rows::session).transpose()
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
}
