//! API-key login: a key buys an access token only, never a refresh token — the key itself
//! is the long-lived credential, and whoever holds it can simply ask again. Managing keys is
//! [`super::ApiKeyAdmin`]'s.

use std::sync::Arc;

use tracing::{info, warn};

use super::RequestContext;
use super::auth::AuthError;
use super::shared::{Context, TokenBinding};
use crate::crypto::api_key::ApiKeySecret;
use crate::domain::{ApiKeyId, AuditEvent, AuditKind, check_api_key};

/// Logging in with an API key.
#[derive(Debug)]
pub struct ApiKeyLogin {
    shared: Arc<Context>,
}

impl ApiKeyLogin {
    pub fn new(shared: Arc<Context>) -> Self {
        Self { shared }
    }

    /// Exchanges an API key for an access token whose `sub` is the key's owner, whose `roles`
    /// are the key's (those the owner still has) and whose `key_id` names the key.
    ///
    /// # Errors
    /// - [`AuthError::InvalidArgument`] for an empty key;
    /// - [`AuthError::InvalidCredentials`] — the same answer as a wrong password — for a
    ///   malformed, unknown, revoked or expired key, or a key of a disabled user;
    /// - [`AuthError::Unavailable`] when storage fails.
    pub async fn login(&self, presented: &str, ctx: &RequestContext) -> Result<String, AuthError> {
        if presented.is_empty() {
            return Err(AuthError::InvalidArgument("api_key is required"));
        }
        let peer = ctx.source_label().unwrap_or_default();
        let now = self.shared.now();
        let event = |kind, key: Option<&ApiKeyId>| {
            AuditEvent::new(kind, now)
                .source(ctx.source_label())
                .request_id(ctx.request_id.as_str())
                .detail(format!("api_key={}", key.map_or("-", ApiKeyId::as_str)))
        };
        let refuse = |reason: &str, key: Option<&ApiKeyId>| {
            info!(target: "authd::login", credential = "api_key", key_id = key.map_or("-", ApiKeyId::as_str),
                %peer, request_id = %ctx.request_id, outcome = "invalid_credentials", reason,
                "api key login refused");
            AuthError::InvalidCredentials
        };
        let Some(secret) = ApiKeySecret::parse(presented) else {
            self.shared
                .audit()
                .record(event(AuditKind::LoginFailed, None))
                .await;
            return Err(refuse("malformed key", None));
        };
        let Some(stored) = self.shared.store().find_api_key(secret.id()).await? else {
            self.shared
                .audit()
                .record(event(AuditKind::LoginFailed, Some(secret.id())))
                .await;
            return Err(refuse("unknown key", Some(secret.id())));
        };
        let owner_event = |kind| event(kind, Some(secret.id())).user(&stored.owner);
        if !stored.secret_hash.matches(&secret.hash()) {
            self.shared
                .audit()
                .record(owner_event(AuditKind::LoginFailed))
                .await;
            return Err(refuse("wrong secret", Some(secret.id())));
        }
        let roles = match check_api_key(&stored.key, &stored.owner, now) {
            Ok(roles) => roles,
            Err(why) => {
                self.shared
                    .audit()
                    .record(owner_event(AuditKind::LoginFailed))
                    .await;
                return Err(refuse(why.as_str(), Some(secret.id())));
            }
        };
        let access_token = self.shared.sign_access_token(
            &stored.owner,
            &roles,
            TokenBinding::ApiKey(&stored.key.id),
            now,
        )?;
        // Bookkeeping only: a failure to record the use must not fail the login.
        if let Err(e) = self.shared.store().touch_api_key(&stored.key.id, now).await {
            warn!(key_id = %stored.key.id, error = %e, "cannot record api key use");
        }
        info!(target: "authd::login", credential = "api_key", key_id = %stored.key.id,
            username = %stored.owner.username, user_id = %stored.owner.id, %peer,
            request_id = %ctx.request_id, outcome = "success", "api key login succeeded");
        self.shared
            .audit()
            .record(owner_event(AuditKind::LoginSucceeded))
            .await;
        Ok(access_token)
    }
}
