//! Introspection: whether a token is still active (RFC 7662 semantics), and whether a caller
//! may ask.
//!
//! An access token is judged by the verifier crate's rules (as a resource server would, with
//! only published keys: a key retired at once takes its tokens with it), then online, in one
//! indexed query ([`crate::domain::AccessStanding`]): not logged out, its user still there and
//! enabled, its session (`sid`) not ended, its password not changed since `iat`; and for an
//! API-key token, the key still usable. A refresh token is
//! judged by the rotation rules (`domain::is_live`) on the state `rotate_refresh` would see.

use std::sync::Arc;

use super::auth::AuthError;
use super::shared::Context;
use crate::crypto::access_token::Claims;
use crate::crypto::api_key::ApiKeySecret;
use crate::crypto::refresh_token::RefreshToken;
use crate::domain::{
    AccessBinding, ApiKeyId, FamilyId, Timestamp, User, UserId, check_api_key, is_live,
};

/// What `Introspect` learnt about a token.
#[derive(Debug)]
pub enum Introspection {
    /// Unknown, malformed, expired, revoked, rotated or otherwise unusable: nothing more is
    /// said.
    Inactive,
    /// A valid access token that was not logged out.
    Access(Claims),
    /// The current refresh token of a live session.
    Refresh {
        user: User,
        session: FamilyId,
        issued_at: Timestamp,
        /// The earlier of its idle timeout and its session's absolute end.
        expires_at: Timestamp,
        /// The client its session's tokens are issued to (`default_client_id`).
        client_id: String,
    },
}

/// Answers `Introspect`.
#[derive(Debug)]
pub struct Introspector {
    shared: Arc<Context>,
}

impl Introspector {
    pub fn new(shared: Arc<Context>) -> Self {
        Self { shared }
    }

    /// Whether `token` (an access or a refresh token) is active now.
    ///
    /// # Errors
    /// - [`AuthError::InvalidArgument`] for an empty token;
    /// - [`AuthError::Unavailable`] when storage fails: never reported as inactive or active.
    pub async fn introspect(&self, token: &str) -> Result<Introspection, AuthError> {
        if token.is_empty() {
            return Err(AuthError::InvalidArgument("token is required"));
        }
        let now = self.shared.now();
        let store = self.shared.store();
        // The two shapes cannot be confused: a refresh token is 54 (or 43) base64url characters, an
        // access token has dots.
        if let Some(refresh) = RefreshToken::parse(token) {
            let Some(found) = store.inspect_refresh(&refresh.hash()).await? else {
                return Ok(Introspection::Inactive);
            };
            if !is_live(&found.state, now) {
                return Ok(Introspection::Inactive);
            }
            let state = found.state;
            return Ok(Introspection::Refresh {
                user: state.user,
                session: state.family_id,
                issued_at: found.issued_at,
                expires_at: state.expires_at.min(state.family_expires_at),
                client_id: self.shared.settings().default_client_id.clone(),
            });
        }
        let Ok(claims) = self.shared.verify_access_token(token, now).await else {
            return Ok(Introspection::Inactive);
        };
        let session = claims.sid.clone().map(FamilyId::from_stored);
        let user = UserId::from_stored(claims.sub.clone());
        let Some(standing) = store
            .access_standing(&user, &claims.jti, session.as_ref(), now)
            .await?
        else {
            return Ok(Introspection::Inactive);
        };
        let binding = AccessBinding {
            issued_at: claims.iat,
            has_session: session.is_some(),
            by_api_key: claims.key_id.is_some(),
        };
        if !standing.allows(&binding) {
            return Ok(Introspection::Inactive);
        }
        // A token bought with an API key lives no longer than the key: online, a revoked or
        // expired key, or a disabled owner, makes its tokens inactive at once.
        if let Some(key_id) = &claims.key_id {
            let key = match ApiKeyId::parse(key_id) {
                Some(id) => store.find_api_key(&id).await?,
                None => None,
            };
            let Some(key) = key else {
                return Ok(Introspection::Inactive);
            };
            if key.owner.id.as_str() != claims.sub
                || check_api_key(&key.key, &key.owner, now).is_err()
            {
                return Ok(Introspection::Inactive);
            }
        }
        Ok(Introspection::Access(claims))
    }

    /// Whether a caller presenting `bearer` may introspect: anyone may when introspection is
    /// open (`introspection_open`); otherwise the bearer must be an API key that would be
    /// accepted for a login, or an active access token (by the same rules as
    /// [`Self::introspect`]), carrying `introspect_role`.
    ///
    /// # Errors
    /// - [`AuthError::CallerUnauthenticated`] without a usable API key or active access token;
    /// - [`AuthError::CallerForbidden`] when it lacks the role;
    /// - [`AuthError::Unavailable`] when storage fails.
    pub async fn authorize(&self, bearer: Option<&str>) -> Result<(), AuthError> {
        let Some(role) = &self.shared.settings().introspect_role else {
            return Ok(());
        };
        let Some(token) = bearer.filter(|t| !t.is_empty()) else {
            return Err(AuthError::CallerUnauthenticated);
        };
        if let Some(secret) = ApiKeySecret::parse(token) {
            let now = self.shared.now();
            let Some(stored) = self.shared.store().find_api_key(secret.id()).await? else {
                return Err(AuthError::CallerUnauthenticated);
            };
            if !stored.secret_hash.matches(&secret.hash()) {
                return Err(AuthError::CallerUnauthenticated);
            }
            let roles = check_api_key(&stored.key, &stored.owner, now)
                .map_err(|_| AuthError::CallerUnauthenticated)?;
            return if roles.contains(role) {
                Ok(())
            } else {
                Err(AuthError::CallerForbidden)
            };
        }
        match self.introspect(token).await? {
            Introspection::Access(claims) if claims.has_role(role.as_str()) => Ok(()),
            Introspection::Access(_) => Err(AuthError::CallerForbidden),
            // A refresh token is not a credential to call with.
            Introspection::Refresh { .. } | Introspection::Inactive => {
                Err(AuthError::CallerUnauthenticated)
            }
        }
    }
}
