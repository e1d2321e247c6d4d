//! The token service's face: [`TokenService`] holds one service per use case — password
//! login, refresh, API-key login, logout, introspection — over one shared [`Context`], and
//! delegates to them; transports and tests call it. Also what they share: [`TokenSettings`],
//! [`IssuedTokens`] and [`AuthError`].
//!
//! Per-source rate limiting is not a use case: it is a layer every request passes before it
//! reaches a handler (`crate::middleware`); the limiter is kept here only so housekeeping
//! can prune its buckets.

use std::sync::Arc;
use std::time::Duration;

use crate::crypto::keys::{KeyError, KeyRing};
use crate::crypto::password::{HashError, PasswordHasher};
use crate::crypto::refresh_token::{RandomnessError, RefreshToken};
use crate::domain::{Clock, RefreshPolicy, Role, ThrottlePolicy};
use crate::limits::SourceLimiter;
use crate::service::KeyManager;
use crate::store::{Store, StoreError};

use super::api_key_login::ApiKeyLogin;
use super::housekeeping::PURGE_BATCH;
use super::introspect::{Introspection, Introspector};
use super::login::PasswordLogin;
use super::logout::Logout;
use super::refresh::Refresher;
use super::shared::Context;
use super::{Auditor, RequestContext};

/// What every issued token carries, from configuration.
#[derive(Debug, Clone)]
pub struct TokenSettings {
    pub issuer: String,
    pub audience: Vec<String>,
    pub access_ttl: Duration,
    pub refresh: RefreshPolicy,
    pub throttle: ThrottlePolicy,
    /// Requests per second per source, on every `auth.v1` RPC (0 disables).
    pub per_source_rate: u32,
    pub per_source_burst: u32,
    /// The role a caller's API key or access token needs to use `Introspect` (`None`: anyone
    /// may, `introspection_open`).
    pub introspect_role: Option<Role>,
    /// Which routine rotations are audited.
    pub audit_refresh: crate::domain::AuditRefresh,
}

/// A fresh pair of tokens. Its `Debug` shows neither (issue 16).
pub struct IssuedTokens {
    pub access_token: String,
    pub refresh_token: RefreshToken,
}

impl std::fmt::Debug for IssuedTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedTokens")
            .field("access_token", &"[redacted]")
            .field("refresh_token", &self.refresh_token)
            .finish()
    }
}

/// Why a login or refresh failed. The messages are safe to show clients: they say nothing
/// about whether a user exists or why exactly a credential was refused.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("{0}")]
    InvalidArgument(&'static str),
    #[error("invalid username or password")]
    InvalidCredentials,
    #[error("invalid refresh token")]
    InvalidRefreshToken,
    /// Too many failed logins for this username; the password was not checked.
    #[error("too many failed attempts; retry later")]
    Throttled { retry_after_secs: u64 },
    /// The username reached the hard stop of consecutive failures; the password was not
    /// checked, and only an administrator can clear it.
    #[error("too many failed attempts; locked until an administrator unlocks it")]
    Locked,
    /// Too many requests from this source address.
    #[error("too many requests; retry later")]
    RateLimited { retry_after_secs: u64 },
    /// A call that needs the caller's own access token came without an active one.
    #[error("this call needs an active access token (authorization: Bearer …)")]
    CallerUnauthenticated,
    /// The caller's access token lacks the role this call needs.
    #[error("the caller's access token lacks the role this call needs")]
    CallerForbidden,
    /// The password-hashing queue is full; the request was shed.
    #[error("service overloaded; retry later")]
    Overloaded,
    #[error("service temporarily unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl From<StoreError> for AuthError {
    fn from(e: StoreError) -> Self {
        if matches!(e, StoreError::Unavailable(_)) {
            crate::metrics::database_error();
        }
        Self::Unavailable(Box::new(e))
    }
}

impl From<HashError> for AuthError {
    fn from(e: HashError) -> Self {
        match e {
            HashError::Overloaded => Self::Overloaded,
            other => Self::Unavailable(Box::new(other)),
        }
    }
}

impl From<KeyError> for AuthError {
    fn from(e: KeyError) -> Self {
        Self::Unavailable(Box::new(e))
    }
}

impl From<RandomnessError> for AuthError {
    fn from(e: RandomnessError) -> Self {
        Self::Unavailable(Box::new(e))
    }
}

/// Issues tokens for credentials, rotates refresh tokens, ends sessions and answers
/// introspection, each through its own use-case service.
pub struct TokenService {
    shared: Arc<Context>,
    login: PasswordLogin,
    refresher: Refresher,
    api_key_login: ApiKeyLogin,
    logout: Logout,
    introspector: Introspector,
    limiter: Arc<SourceLimiter>,
    // For the purge entry points and readiness below.
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    settings: TokenSettings,
}

impl TokenService {
    pub fn new(
        store: Arc<dyn Store>,
        hasher: Arc<PasswordHasher>,
        keys: Arc<KeyManager>,
        clock: Arc<dyn Clock>,
        settings: TokenSettings,
    ) -> Self {
        let limiter = Arc::new(SourceLimiter::new(
            settings.per_source_rate,
            settings.per_source_burst,
        ));
        let shared = Arc::new(Context::new(
            Arc::clone(&store),
            hasher,
            keys,
            Arc::clone(&clock),
            settings.clone(),
        ));
        Self {
            login: PasswordLogin::new(Arc::clone(&shared)),
            refresher: Refresher::new(Arc::clone(&shared)),
            api_key_login: ApiKeyLogin::new(Arc::clone(&shared)),
            logout: Logout::new(Arc::clone(&shared)),
            introspector: Introspector::new(Arc::clone(&shared)),
            shared,
            limiter,
            store,
            clock,
            settings,
        }
    }

    /// The same service checking passwords with `sources` (issue 19): the login asks them in
    /// order, and a refresh rechecks a directory user's session against the directory.
    #[must_use]
    pub fn with_identity_sources(mut self, sources: super::IdentitySources) -> Self {
        let directory = sources.directory().cloned();
        self.login = PasswordLogin::new(Arc::clone(&self.shared)).with_sources(sources);
        self.refresher = Refresher::new(Arc::clone(&self.shared)).with_directory(directory);
        self
    }

    /// See [`PasswordLogin::login`].
    ///
    /// # Errors
    /// See [`PasswordLogin::login`].
    pub async fn login(
        &self,
        username: &str,
        password: &str,
        ctx: &RequestContext,
    ) -> Result<IssuedTokens, AuthError> {
        self.login.login(username, password, ctx).await
    }

    /// See [`Refresher::refresh`].
    ///
    /// # Errors
    /// See [`Refresher::refresh`].
    pub async fn refresh(
        &self,
        presented: &str,
        ctx: &RequestContext,
    ) -> Result<IssuedTokens, AuthError> {
        self.refresher.refresh(presented, ctx).await
    }

    /// See [`ApiKeyLogin::login`].
    ///
    /// # Errors
    /// See [`ApiKeyLogin::login`].
    pub async fn login_with_api_key(
        &self,
        presented: &str,
        ctx: &RequestContext,
    ) -> Result<String, AuthError> {
        self.api_key_login.login(presented, ctx).await
    }

    /// See [`Logout::logout`].
    ///
    /// # Errors
    /// See [`Logout::logout`].
    pub async fn logout(
        &self,
        refresh_token: &str,
        access_token: &str,
        ctx: &RequestContext,
    ) -> Result<(), AuthError> {
        self.logout.logout(refresh_token, access_token, ctx).await
    }

    /// See [`Introspector::introspect`].
    ///
    /// # Errors
    /// See [`Introspector::introspect`].
    pub async fn introspect(&self, token: &str) -> Result<Introspection, AuthError> {
        self.introspector.introspect(token).await
    }

    /// See [`Introspector::authorize`].
    ///
    /// # Errors
    /// See [`Introspector::authorize`].
    pub async fn authorize_introspection(&self, bearer: Option<&str>) -> Result<(), AuthError> {
        self.introspector.authorize(bearer).await
    }

    /// The current key ring, for verifying tokens this service issued.
    pub fn keys(&self) -> Arc<KeyRing> {
        self.shared.keys().ring()
    }

    /// The key manager: rotation, reloading, the JWKS.
    pub fn key_manager(&self) -> &Arc<KeyManager> {
        self.shared.keys()
    }

    /// The per-source limiter, for the periodic clean-up.
    pub fn limiter(&self) -> &SourceLimiter {
        &self.limiter
    }

    /// The per-source limiter, shared with the request layer stack that charges it.
    pub fn source_limiter(&self) -> Arc<SourceLimiter> {
        Arc::clone(&self.limiter)
    }

    /// The audit trail.
    pub fn auditor(&self) -> &Auditor {
        self.shared.audit()
    }

    /// The password hasher (its shed count, for instance).
    pub fn hasher(&self) -> &PasswordHasher {
        self.shared.hasher()
    }

    /// Deletes refresh tokens and sessions that ended (absolute lifetime, idle timeout or
    /// revocation) and expired access-token revocations: [`super::housekeeping`].
    ///
    /// # Errors
    /// When the store fails; what was deleted before stays deleted.
    pub async fn purge_ended_sessions(&self) -> Result<crate::store::Purged, StoreError> {
        let now = self.clock.now();
        super::housekeeping::purge_ended_sessions(self.store.as_ref(), now, PURGE_BATCH).await
    }

    /// Deletes forgotten throttle counters and audit events past `retention`:
    /// [`super::housekeeping`].
    ///
    /// # Errors
    /// When the store fails.
    pub async fn purge_expired(
        &self,
        retention: Duration,
    ) -> Result<crate::store::Purged, StoreError> {
        super::housekeeping::purge_expired_records(
            self.store.as_ref(),
            self.clock.now(),
            &self.settings.throttle,
            retention,
            PURGE_BATCH,
        )
        .await
    }

    pub fn settings(&self) -> &TokenSettings {
        &self.settings
    }

    /// Whether storage answers, for readiness checks.
    ///
    /// # Errors
    /// When the store does not answer.
    pub async fn ping(&self) -> Result<(), AuthError> {
        Ok(self.store.ping().await?)
    }

    /// Whether this process can issue tokens: the database answers and a key signs now.
    ///
    /// # Errors
    /// Says which of the two is missing.
    pub async fn ready(&self) -> Result<(), AuthError> {
        self.ping().await?;
        if self.keys().signing_key(self.clock.now()).is_none() {
            return Err(AuthError::Unavailable("no active signing key".into()));
        }
        Ok(())
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Timestamp, User, UserId, Username};
    use crate::store::NewUser;

    /// Issue 16: types holding secrets do not print them.
    #[test]
    fn debug_of_tokens_and_new_users_shows_no_secret() {
        let now = Timestamp::from_unix_millis(1_800_000_000_000);
        let refresh_token = RefreshToken::generate(now).unwrap();
        let refresh = refresh_token.expose();
        let issued = IssuedTokens {
            access_token: "eyJhbGciOiJFUzI1NiJ9.secret-claims.signature".into(),
            refresh_token,
        };
        let shown = format!("{issued:?}");
        assert!(!shown.contains("secret-claims"), "{shown}");
        assert!(!shown.contains(&refresh), "{shown}");
        let user = NewUser {
            user: User {
                id: UserId::generate(),
                username: Username::parse("alice").unwrap(),
                roles: vec![],
                enabled: true,
                created_at: now,
            },
            password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
        };
        let shown = format!("{user:?}");
        assert!(!shown.contains("argon2id"), "{shown}");
        assert!(shown.contains("alice"), "{shown}");
    }
}
