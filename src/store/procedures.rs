//! The transactions both backends run step for step, written once. What makes them safe
//! differs by database and stays in the backend, which provides, in scope where it expands
//! [`shared_transactions!`]:
//!
//! - `self.begin()`: a write transaction (SQLite: `BEGIN IMMEDIATE`, the database's write lock
//!   from the start; PostgreSQL: READ COMMITTED, locks taken row by row);
//! - `lock_user(&mut tx, username)`: the user's row, read for the rest of the transaction
//!   (PostgreSQL: `FOR UPDATE`), or [`super::StoreError::UserNotFound`];
//! - `lock_families_of(&mut tx, &user_id)`: the user's families, locked in id order, the
//!   order rotation batches lock them in (SQLite: nothing to do under the write lock);
//! - `revoke_families_of` and `revoke_family_in`: expanded from [`shared_revocations!`] in the
//!   backend's `sessions.rs`, over its `lock_families_of`;
//! - `insert_audit(&mut tx, events)`: records audit events in the transaction;
//! - `lock_api_key(&mut tx, &id)`: whether the key exists, its row locked (PostgreSQL);
//! - `lock_signing_keys(&mut tx)`: serialises signing-key rotations (PostgreSQL: an advisory
//!   lock, since row locks cannot lock an empty table; SQLite: the write lock does).
//!
//! Each expands to a method `x_once`, one attempt of the transaction; the backend's trait
//! method calls it (PostgreSQL through `retrying!`).

/// Expands, in a backend's `sessions.rs`, the revocation steps both run alike, for
/// transactions of `$db` (`Sqlite` or `Postgres`).
macro_rules! shared_revocations {
    ($db:ident) => {
        /// Revokes every live family of `user` inside `tx` (locking them first, in id order)
        /// and drops their sealed copies; returns how many were live.
        pub(super) async fn revoke_families_of(
            tx: &mut sqlx::Transaction<'static, sqlx::$db>,
            user: &crate::domain::UserId,
            now: crate::domain::Timestamp,
            reason: &str,
        ) -> Result<u64, crate::store::StoreError> {
            lock_families_of(tx, user).await?;
            let done = crate::store::sql::revoke_families_of!(user, now, reason)
                .execute(&mut **tx)
                .await
                .map_err(crate::store::unavailable)?;
            // A revoked family's sealed copies are useless; drop them.
            crate::store::sql::drop_sealed_copies_of!(user)
                .execute(&mut **tx)
                .await
                .map_err(crate::store::unavailable)?;
            Ok(done.rows_affected())
        }

        /// Revokes one family and drops its sealed copies; the caller holds what locks the
        /// family.
        pub(super) async fn revoke_family_in(
            tx: &mut sqlx::Transaction<'static, sqlx::$db>,
            family: &crate::domain::FamilyId,
            now: crate::domain::Timestamp,
            reason: &str,
        ) -> Result<(), crate::store::StoreError> {
            crate::store::sql::revoke_family!(family, now, reason)
                .execute(&mut **tx)
                .await
                .map_err(crate::store::unavailable)?;
            sqlx::query(crate::store::sql::DROP_SEALED_COPIES)
                .bind(family.as_str())
                .execute(&mut **tx)
                .await
                .map_err(crate::store::unavailable)?;
            Ok(())
        }
    };
}
pub(crate) use shared_revocations;

/// Expands, inside an `impl` block of a backend's store, the transactions described in the
/// module documentation.
macro_rules! shared_transactions {
    () => {
        /// See [`crate::store::SessionStore::start_family`]: the login's failures cleared,
        /// its session and first token stored and its events recorded, together.
        async fn start_family_once(
            &self,
            family: &crate::domain::NewFamily,
            first: &crate::domain::NewToken,
            events: &[crate::domain::AuditEvent],
        ) -> Result<(), crate::store::StoreError> {
            let mut tx = self.begin().await?;
            for statement in [
                crate::store::sql::succeed_login_attempt!(family.user.username),
                crate::store::sql::forget_idle_counter!(family.user.username),
                crate::store::sql::insert_family!(family),
                crate::store::sql::insert_first_token!(family.id, first),
            ] {
                statement
                    .execute(&mut *tx)
                    .await
                    .map_err(crate::store::unavailable)?;
            }
            insert_audit(&mut tx, events).await?;
            tx.commit().await.map_err(crate::store::unavailable)?;
            Ok(())
        }

        async fn change_password_once(
            &self,
            username: &crate::domain::Username,
            new_hash: &str,
            now: crate::domain::Timestamp,
        ) -> Result<crate::domain::User, crate::store::StoreError> {
            let mut tx = self.begin().await?;
            let user = lock_user(&mut tx, username).await?;
            crate::store::sql::set_password_hash!(user.id, new_hash, now)
                .execute(&mut *tx)
                .await
                .map_err(crate::store::unavailable)?;
            revoke_families_of(&mut tx, &user.id, now, "password changed").await?;
            tx.commit().await.map_err(crate::store::unavailable)?;
            Ok(user)
        }

        async fn set_enabled_once(
            &self,
            username: &crate::domain::Username,
            enabled: bool,
            now: crate::domain::Timestamp,
        ) -> Result<crate::domain::User, crate::store::StoreError> {
            let mut tx = self.begin().await?;
            let mut user = lock_user(&mut tx, username).await?;
            crate::store::sql::set_enabled!(user.id, enabled, now)
                .execute(&mut *tx)
                .await
                .map_err(crate::store::unavailable)?;
            if !enabled {
                revoke_families_of(&mut tx, &user.id, now, "user disabled").await?;
            }
            tx.commit().await.map_err(crate::store::unavailable)?;
            user.enabled = enabled;
            Ok(user)
        }

        async fn delete_user_once(
            &self,
            username: &crate::domain::Username,
        ) -> Result<crate::domain::User, crate::store::StoreError> {
            let mut tx = self.begin().await?;
            let user = lock_user(&mut tx, username).await?;
            lock_families_of(&mut tx, &user.id).await?;
            // Families and tokens go with it (ON DELETE CASCADE).
            crate::store::sql::delete_user!(user.id)
                .execute(&mut *tx)
                .await
                .map_err(crate::store::unavailable)?;
            tx.commit().await.map_err(crate::store::unavailable)?;
            Ok(user)
        }

        async fn change_roles_once(
            &self,
            username: &crate::domain::Username,
            change: &crate::store::RoleChange,
        ) -> Result<crate::domain::User, crate::store::StoreError> {
            let mut tx = self.begin().await?;
            let mut user = lock_user(&mut tx, username).await?;
            user.roles = change.apply(&user.roles);
            crate::store::sql::set_roles!(user)
                .execute(&mut *tx)
                .await
                .map_err(crate::store::unavailable)?;
            tx.commit().await.map_err(crate::store::unavailable)?;
            Ok(user)
        }

        async fn revoke_sessions_of_once(
            &self,
            username: &crate::domain::Username,
            now: crate::domain::Timestamp,
        ) -> Result<(crate::domain::User, u64), crate::store::StoreError> {
            let mut tx = self.begin().await?;
            let user = lock_user(&mut tx, username).await?;
            let revoked = revoke_families_of(&mut tx, &user.id, now, "sessions revoked").await?;
            tx.commit().await.map_err(crate::store::unavailable)?;
            Ok((user, revoked))
        }

        async fn revoke_family_once(
            &self,
            family: &crate::domain::FamilyId,
            now: crate::domain::Timestamp,
        ) -> Result<(), crate::store::StoreError> {
            let mut tx = self.begin().await?;
            revoke_family_in(&mut tx, family, now, "revoked").await?;
            tx.commit().await.map_err(crate::store::unavailable)?;
            Ok(())
        }

        async fn revoke_api_key_once(
            &self,
            id: &crate::domain::ApiKeyId,
            now: crate::domain::Timestamp,
        ) -> Result<bool, crate::store::StoreError> {
            let mut tx = self.begin().await?;
            let exists = lock_api_key(&mut tx, id).await?;
            crate::store::sql::revoke_api_key!(id, now)
                .execute(&mut *tx)
                .await
                .map_err(crate::store::unavailable)?;
            tx.commit().await.map_err(crate::store::unavailable)?;
            Ok(exists)
        }

        /// See [`crate::store::SigningKeyStore::insert_signing_key_if`]: the check and the
        /// insert see every key another process committed first.
        async fn insert_signing_key_if_once(
            &self,
            key: &crate::domain::StoredKey,
            unless_activation_after: Option<crate::domain::Timestamp>,
        ) -> Result<bool, crate::store::StoreError> {
            let mut tx = self.begin().await?;
            lock_signing_keys(&mut tx).await?;
            let later: i64 =
                crate::store::sql::count_keys_activating_after!(unless_activation_after)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(crate::store::unavailable)?;
            if later > 0 {
                return Ok(false);
            }
            for statement in [
                crate::store::sql::retire_keys_before!(key.activates_at),
                crate::store::sql::insert_signing_key!(key),
            ] {
                statement
                    .execute(&mut *tx)
                    .await
                    .map_err(crate::store::unavailable)?;
            }
            tx.commit().await.map_err(crate::store::unavailable)?;
            Ok(true)
        }

        /// See [`crate::store::SigningKeyStore::rewrap_signing_keys`]: read, rewrap and
        /// write every key under the signing-key lock; a refusal drops the transaction
        /// (rolling back) before anything is written.
        async fn rewrap_signing_keys_once(
            &self,
            rewrap: &crate::store::Rewrap<'_>,
        ) -> Result<Result<usize, String>, crate::store::StoreError> {
            let mut tx = self.begin().await?;
            lock_signing_keys(&mut tx).await?;
            let rows = sqlx::query(crate::store::rows::SIGNING_KEYS_SQL)
                .fetch_all(&mut *tx)
                .await
                .map_err(crate::store::unavailable)?;
            let mut rewrapped = Vec::with_capacity(rows.len());
            for row in &rows {
                let key = crate::store::rows::signing_key(row)?;
                match rewrap(&key) {
                    Ok(new) => rewrapped.push((key.kid, new)),
                    Err(refusal) => return Ok(Err(refusal)),
                }
            }
            for (kid, (private_key, encrypted)) in &rewrapped {
                crate::store::sql::reseal_signing_key!(
                    kid.as_str(),
                    private_key.as_slice(),
                    *encrypted
                )
                .execute(&mut *tx)
                .await
                .map_err(crate::store::unavailable)?;
            }
            tx.commit().await.map_err(crate::store::unavailable)?;
            Ok(Ok(rewrapped.len()))
        }
    };
}
pub(crate) use shared_transactions;
