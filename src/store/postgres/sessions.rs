//! Sessions on PostgreSQL: refresh families and tokens, logout, revoked access tokens. Every
//! writer of a family's tokens locks the family row first (`FOR UPDATE`), families in id order
//! when it takes several; rotations go through the batcher (`rotations`), which does the same.

use async_trait::async_trait;
use sqlx::{Postgres, Transaction};

use super::{PostgresStore, within_deadline};
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

/// The state of each presented refresh token (`$1`, an array of hashes), as
/// [`crate::domain::decide`] needs it, with its family, user and successor.
pub(super) const PRESENTED_TOKENS_SQL: &str =
    presented_token_sql!("WHERE t.hash = ANY($1)", "WHERE o.hash = ANY($2)");

shared_revocations!(Postgres);

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

impl PostgresStore {
    async fn revoke_family_of_once(
        &self,
        presented: &TokenHash,
        now: Timestamp,
    ) -> Result<Option<FamilyId>, StoreError> {
        // Read first (issue 16): a token that exists nowhere costs one indexed read, not a
        // transaction. A token a client holds was committed before it got it: never missed.
        let known: Option<i64> = sqlx::query_scalar(crate::store::sql::TOKEN_KNOWN)
            .bind(&presented.0[..])
            .bind(rows::used_key(presented))
            .fetch_optional(&self.pool)
            .await
            .map_err(unavailable)?;
        if known.is_none() {
            return Ok(None);
        }
        let mut tx = self.begin().await?;
        // The same family lock as a rotation batch: a rotation of this family either committed
        // before (its successor is revoked below with the family) or waits and then sees the
        // family revoked.
        let family: Option<String> = sqlx::query_scalar(
            "SELECT id FROM refresh_families WHERE seq IN ( \
                 SELECT family FROM refresh_tokens WHERE hash = $1 \
                 UNION ALL SELECT family FROM used_refresh_tokens WHERE hash = $2) \
             FOR UPDATE",
        )
        .bind(&presented.0[..])
        .bind(rows::used_key(presented))
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
                .bind([rows::used_key(presented)])
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
            sql::revoke_access_token!(jti, expires_at)
                .execute(&self.pool)
                .await
                .map_err(unavailable)?;
            Ok(())
        })
        .await
    }

    async fn is_access_token_revoked(&self, jti: &str) -> Result<bool, StoreError> {
        within_deadline(async {
            sql::access_token_revoked!(jti)
                .fetch_one(&self.pool)
                .await
                .map_err(unavailable)
        })
        .await
    }

    async fn access_standing(
        &self,
        user: &UserId,
        jti: &str,
        session: Option<&FamilyId>,
        now: Timestamp,
    ) -> Result<Option<AccessStanding>, StoreError> {
        within_deadline(async {
            sql::access_standing!(user, jti, session, now)
                .fetch_optional(&self.pool)
                .await
                .map_err(unavailable)?
                .as_ref()
                .map(rows::access_standing)
                .transpose()
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
            let found = sql::live_sessions_of!(username, now)
                .fetch_all(&self.pool)
                .await
                .map_err(unavailable)?;
            found.iter().map(rows::session).collect()
        })
        .await
    }

    async fn find_session(&self, id: &FamilyId) -> Result<Option<Session>, StoreError> {
        within_deadline(async {
            let row = sql::find_session!(id)
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

    async fn list_live_sessions(
        &self,
        now: Timestamp,
        after: Option<&SessionCursor>,
        limit: u32,
    ) -> Result<Vec<Session>, StoreError> {
        within_deadline(async {
            let found = sql::live_sessions_page!(now, after, limit)
                .fetch_all(&self.pool)
                .await
                .map_err(unavailable)?;
            found.iter().map(rows::session).collect()
        })
        .await
    }
}
