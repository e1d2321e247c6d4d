//! Logout: ending a session online and revoking an access token until its expiry.
//!
//! Access tokens stay verifiable offline until their `exp`; a logout records their `jti` so
//! `Introspect` reports them inactive at once. Services that must honour logout immediately
//! call `Introspect`; the rest verify offline and accept at most one access-token lifetime of
//! delay.

use std::sync::Arc;

use tracing::info;

use super::RequestContext;
use super::auth::AuthError;
use super::shared::Context;
use crate::crypto::refresh_token::RefreshToken;
use crate::domain::{AuditEvent, AuditKind, FamilyId, Timestamp};

/// Ending sessions on the client's request.
#[derive(Debug)]
pub struct Logout {
    shared: Arc<Context>,
}

impl Logout {
    pub fn new(shared: Arc<Context>) -> Self {
        Self { shared }
    }

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
        let now = self.shared.now();
        let store = self.shared.store();
        let mut session = None;
        if let Some(token) = RefreshToken::parse(refresh_token) {
            session = store.revoke_family_of(&token.hash(), now).await?;
        }
        let mut revoked_jti = None;
        if !access_token.is_empty()
            && let Ok(claims) = self.shared.verify_access_token(access_token, now).await
        {
            let exp = Timestamp::from_unix_millis(claims.exp.saturating_mul(1000));
            store.revoke_access_token(&claims.jti, exp).await?;
            revoked_jti = Some(claims.jti);
        }
        if let Some(family) = &session {
            let event = AuditEvent::new(AuditKind::FamilyRevoked, now)
                .source(ctx.source_label())
                .request_id(ctx.request_id.as_str())
                .detail(format!("family={family} reason=logout"));
            self.shared.audit().record(event).await;
        }
        info!(target: "authd::logout", %peer, request_id = %ctx.request_id, session = session.as_ref().map_or("-", FamilyId::as_str),
            access_token_revoked = revoked_jti.is_some(), "logout");
        Ok(())
    }
}
