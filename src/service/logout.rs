//! Logout and introspection: ending a session online, and asking whether a token is still
//! active (RFC 7662 semantics).
//!
//! Access tokens stay verifiable offline until their `exp`; a logout records their `jti` so
//! `Introspect` reports them inactive at once. Services that must honour logout immediately
//! call `Introspect`; the rest verify offline and accept at most one access-token lifetime of
//! delay.

use tracing::info;

use super::RequestContext;
use super::auth::{AuthError, TokenService};
use crate::crypto::access_token::{self, AccessClaims};
use crate::crypto::refresh_token::RefreshToken;
use crate::domain::{
    ApiKeyId, AuditEvent, AuditKind, FamilyId, Timestamp, User, check_api_key, is_live,
};

/// What `Introspect` learnt about a token.
#[derive(Debug)]
pub enum Introspection {
    /// Unknown, malformed, expired, revoked, rotated or otherwise unusable: nothing more is
    /// said.
    Inactive,
    /// A valid access token that was not logged out.
    Access(AccessClaims),
    /// The current refresh token of a live session.
    Refresh {
        user: User,
        session: FamilyId,
        issued_at: Timestamp,
        /// The earlier of its idle timeout and its session's absolute end.
        expires_at: Timestamp,
    },
}

impl TokenService {
    /// Ends the session of `refresh_token` (its whole family, whichever of its tokens is
    /// given) and revokes `access_token` until its expiry. Either may be empty, not both.
    /// Unknown, malformed, expired or already revoked tokens are ignored: the call succeeds
    /// and reveals nothing.
    ///
    /// # Errors
    /// - [`AuthError::InvalidArgument`] when both are empty;
    /// - [`AuthError::Unavailable`] when storage fails (the logout may not have happened).
    pub async fn logout(
        &self,
        refresh_token: &str,
        access_token: &str,
        ctx: &RequestContext,
    ) -> Result<(), AuthError> {
        if refresh_token.is_empty() && access_token.is_empty() {
            return Err(AuthError::InvalidArgument(
                "refresh_token or access_token is required",
            ));
        }
        let peer = ctx.source_label().unwrap_or_default();
        let now = self.clock.now();
        let mut session = None;
        if let Some(token) = RefreshToken::parse(refresh_token) {
            session = self.store.revoke_family_of(&token.hash(), now).await?;
        }
        let mut revoked_jti = None;
        if !access_token.is_empty()
            && let Ok(claims) = self.verify_access_token(access_token, now)
        {
            let exp = Timestamp::from_unix_millis(claims.exp.saturating_mul(1000));
            self.store.revoke_access_token(&claims.jti, exp).await?;
            revoked_jti = Some(claims.jti);
        }
        if let Some(family) = &session {
            let event = AuditEvent::new(AuditKind::FamilyRevoked, now)
                .source(ctx.source_label())
                .request_id(ctx.request_id.as_str())
                .detail(format!("family={family} reason=logout"));
            self.audit.record(event).await;
        }
        info!(target: "authd::logout", %peer, request_id = %ctx.request_id, session = session.as_ref().map_or("-", FamilyId::as_str),
            access_token_revoked = revoked_jti.is_some(), "logout");
        Ok(())
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
        let now = self.clock.now();
        // The two shapes cannot be confused: a refresh token is 54 (or 43) base64url characters, an
        // access token has dots.
        if let Some(refresh) = RefreshToken::parse(token) {
            let Some(found) = self.store.inspect_refresh(&refresh.hash()).await? else {
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
            });
        }
        let Ok(claims) = self.verify_access_token(token, now) else {
            return Ok(Introspection::Inactive);
        };
        if self.store.is_access_token_revoked(&claims.jti).await? {
            return Ok(Introspection::Inactive);
        }
        // A token bought with an API key lives no longer than the key: online, a revoked or
        // expired key, or a disabled owner, makes its tokens inactive at once.
        if let Some(key_id) = &claims.key_id {
            let key = match ApiKeyId::parse(key_id) {
                Some(id) => self.store.find_api_key(&id).await?,
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

    /// Whether a caller presenting `bearer` (its own access token, if any) may introspect:
    /// anyone may unless `introspect_role` is set; then the token must be active (by the
    /// same rules as [`Self::introspect`]) and carry that role.
    ///
    /// # Errors
    /// - [`AuthError::CallerUnauthenticated`] without an active access token;
    /// - [`AuthError::CallerForbidden`] when it lacks the role;
    /// - [`AuthError::Unavailable`] when storage fails.
    pub async fn authorize_introspection(&self, bearer: Option<&str>) -> Result<(), AuthError> {
        let Some(role) = &self.settings.introspect_role else {
            return Ok(());
        };
        let Some(token) = bearer.filter(|t| !t.is_empty()) else {
            return Err(AuthError::CallerUnauthenticated);
        };
        match self.introspect(token).await? {
            Introspection::Access(claims) if claims.roles.iter().any(|r| r == role.as_str()) => {
                Ok(())
            }
            Introspection::Access(_) => Err(AuthError::CallerForbidden),
            // A refresh token is not a credential to call with.
            Introspection::Refresh { .. } | Introspection::Inactive => {
                Err(AuthError::CallerUnauthenticated)
            }
        }
    }

    /// The one place that verifies this service's access tokens (swappable for the shared
    /// verifier).
    fn verify_access_token(
        &self,
        token: &str,
        now: Timestamp,
    ) -> Result<AccessClaims, access_token::VerifyError> {
        access_token::verify(
            &self.keys(),
            token,
            &self.settings.issuer,
            &self.settings.audience,
            now,
        )
    }
}
