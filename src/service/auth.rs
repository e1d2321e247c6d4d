//! Login and refresh: the two things clients ask of authd.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tracing::{info, warn};

use crate::crypto::access_token::{ACCESS_TOKEN_TYP, AccessClaims, Audience};
use crate::crypto::keys::{KeyError, KeyRing};
use crate::crypto::password::{HashError, PasswordHasher, Verification};
use crate::crypto::refresh_token::{RandomnessError, RefreshToken};
use crate::domain::{
    ApiKeyId, Clock, FamilyId, NewFamily, NewToken, Password, PasswordError, RefreshPolicy, Role,
    Rotation, SessionOrigin, Successor, Timestamp, User, Username,
};
use crate::metrics::LoginOutcome;
use crate::service::KeyManager;
use crate::store::{Store, StoreError};

/// What every issued token carries, from configuration.
#[derive(Debug, Clone)]
pub struct TokenSettings {
    pub issuer: String,
    pub audience: Vec<String>,
    pub access_ttl: Duration,
    pub refresh: RefreshPolicy,
}

/// A fresh pair of tokens.
#[derive(Debug)]
pub struct IssuedTokens {
    pub access_token: String,
    pub refresh_token: RefreshToken,
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
        Self::Unavailable(Box::new(e))
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

/// Issues tokens for credentials and rotates refresh tokens.
pub struct TokenService {
    pub(super) store: Arc<dyn Store>,
    hasher: Arc<PasswordHasher>,
    keys: Arc<KeyManager>,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) settings: TokenSettings,
}

impl TokenService {
    pub fn new(
        store: Arc<dyn Store>,
        hasher: Arc<PasswordHasher>,
        keys: Arc<KeyManager>,
        clock: Arc<dyn Clock>,
        settings: TokenSettings,
    ) -> Self {
        Self {
            store,
            hasher,
            keys,
            clock,
            settings,
        }
    }

    /// Exchanges a username and password for a new token pair, starting a new refresh family.
    ///
    /// # Errors
    /// - [`AuthError::InvalidArgument`] for an empty username or password, or a password over
    ///   [`crate::domain::MAX_PASSWORD_BYTES`] (refused before any hashing);
    /// - [`AuthError::InvalidCredentials`] for an unknown user, a wrong password or a disabled
    ///   user alike, after the same amount of hashing work;
    /// - [`AuthError::Unavailable`] when storage or hashing fails.
    pub async fn login(
        &self,
        username: &str,
        password: &str,
        peer: Option<SocketAddr>,
        user_agent: Option<&str>,
    ) -> Result<IssuedTokens, AuthError> {
        let origin = SessionOrigin::new(peer.map(|p| p.ip().to_string()), user_agent);
        let peer = peer.map(|p| p.ip().to_string()).unwrap_or_default();
        let shown_name: String = username.chars().take(64).collect();
        let outcome = self.check_password(username, password).await;
        crate::metrics::login(match &outcome {
            Ok(_) => LoginOutcome::Success,
            Err(AuthError::Unavailable(_)) => LoginOutcome::Error,
            Err(AuthError::InvalidArgument(_)) => LoginOutcome::InvalidRequest,
            Err(AuthError::InvalidCredentials | AuthError::InvalidRefreshToken) => {
                LoginOutcome::InvalidCredentials
            }
        });
        match &outcome {
            Ok(user) => info!(
                target: "authd::login", username = %user.username, user_id = %user.id, %peer,
                outcome = "success", "login succeeded"
            ),
            Err(AuthError::Unavailable(e)) => warn!(
                target: "authd::login", username = %shown_name, %peer, outcome = "error",
                error = %e, "login failed: service unavailable"
            ),
            Err(e) => info!(
                target: "authd::login", username = %shown_name, %peer,
                outcome = "invalid_credentials", reason = %e, "login refused"
            ),
        }
        let user = outcome?;
        self.start_family(&user, origin).await
    }

    async fn check_password(&self, username: &str, password: &str) -> Result<User, AuthError> {
        if username.is_empty() {
            return Err(AuthError::InvalidArgument("username is required"));
        }
        let password = match Password::presented(password) {
            Ok(p) => p,
            Err(PasswordError::Empty) => {
                return Err(AuthError::InvalidArgument("password is required"));
            }
            Err(PasswordError::TooLong) => {
                return Err(AuthError::InvalidArgument("password is too long"));
            }
            // A password outside the profile can never have been set.
            Err(_) => return Err(AuthError::InvalidCredentials),
        };
        // A name that does not parse cannot exist; that says nothing about real users.
        let username = Username::parse(username).map_err(|_| AuthError::InvalidCredentials)?;
        let credentials = self.store.find_credentials(&username).await?;
        let (user, stored_hash) = match credentials {
            Some(c) => (Some(c.user), Some(c.password_hash)),
            None => (None, None),
        };
        let verification = self.hasher.verify(password, stored_hash.clone()).await?;
        let Some(user) = user.filter(|u| u.enabled) else {
            return Err(AuthError::InvalidCredentials);
        };
        match verification {
            Verification::Mismatch => Err(AuthError::InvalidCredentials),
            Verification::Match => Ok(user),
            Verification::MatchRehashed(new_hash) => {
                let old_hash = stored_hash.unwrap_or_default();
                // A failed upgrade is retried at the next login; it must not fail this one.
                match self
                    .store
                    .upgrade_password_hash(&user.id, &old_hash, &new_hash)
                    .await
                {
                    Ok(()) => {
                        info!(user_id = %user.id, "password hash upgraded to current parameters")
                    }
                    Err(e) => warn!(user_id = %user.id, error = %e, "password hash upgrade failed"),
                }
                Ok(user)
            }
        }
    }

    async fn start_family(
        &self,
        user: &User,
        origin: SessionOrigin,
    ) -> Result<IssuedTokens, AuthError> {
        let now = self.clock.now();
        let refresh_token = RefreshToken::generate()?;
        let family = NewFamily {
            id: FamilyId::generate(),
            user: user.clone(),
            created_at: now,
            expires_at: now.saturating_add(self.settings.refresh.max_lifetime),
            origin,
        };
        let first = self.new_token(&refresh_token, now);
        let access_token = self.access_token(user, now)?;
        self.store.start_family(&family, &first).await?;
        Ok(IssuedTokens {
            access_token,
            refresh_token,
        })
    }

    /// Exchanges a refresh token for a fresh pair, rotating it (see [`crate::domain::decide`]).
    ///
    /// # Errors
    /// - [`AuthError::InvalidArgument`] for an empty token;
    /// - [`AuthError::InvalidRefreshToken`] for anything unknown, malformed, expired, revoked
    ///   or reused (reuse also revokes the whole family);
    /// - [`AuthError::Unavailable`] when storage fails; nothing is issued then.
    pub async fn refresh(
        &self,
        presented: &str,
        peer: Option<SocketAddr>,
    ) -> Result<IssuedTokens, AuthError> {
        if presented.is_empty() {
            return Err(AuthError::InvalidArgument("refresh_token is required"));
        }
        let peer = peer.map(|p| p.ip().to_string()).unwrap_or_default();
        let Some(presented) = RefreshToken::parse(presented) else {
            info!(target: "authd::refresh", %peer, outcome = "malformed", "refresh refused");
            crate::metrics::refresh("malformed");
            return Err(AuthError::InvalidRefreshToken);
        };
        let now = self.clock.now();
        let successor = RefreshToken::generate()?;
        let stored_successor = Successor {
            token: self.new_token(&successor, now),
            sealed: presented.seal_successor(&successor)?,
        };
        let rotation = self
            .store
            .rotate_refresh(
                &presented.hash(),
                &stored_successor,
                now,
                &self.settings.refresh,
            )
            .await
            .inspect_err(|_| crate::metrics::refresh("error"))?;
        match rotation {
            Rotation::Rotated { user, family_id } => {
                info!(target: "authd::refresh", user_id = %user.id, family = %family_id, %peer,
                    outcome = "rotated", "refresh token rotated");
                crate::metrics::refresh("rotated");
                let access_token = self.access_token(&user, now)?;
                Ok(IssuedTokens {
                    access_token,
                    refresh_token: successor,
                })
            }
            Rotation::Replayed {
                user,
                family_id,
                sealed_successor,
            } => {
                let refresh_token = presented
                    .open_successor(&sealed_successor)
                    .ok_or(AuthError::InvalidRefreshToken)?;
                info!(target: "authd::refresh", user_id = %user.id, family = %family_id, %peer,
                    outcome = "grace_retry", "previous refresh token retried within the grace window");
                crate::metrics::refresh("grace_retry");
                let access_token = self.access_token(&user, now)?;
                Ok(IssuedTokens {
                    access_token,
                    refresh_token,
                })
            }
            Rotation::ReuseDetected { user, family_id } => {
                warn!(target: "authd::refresh", user_id = %user.id, username = %user.username,
                    family = %family_id, %peer, outcome = "reuse_detected",
                    "refresh token reuse detected; family revoked");
                crate::metrics::refresh("reuse_detected");
                crate::metrics::reuse_detected();
                Err(AuthError::InvalidRefreshToken)
            }
            Rotation::Rejected(why) => {
                info!(target: "authd::refresh", %peer, outcome = "rejected", reason = why.as_str(),
                    "refresh refused");
                crate::metrics::refresh("rejected");
                Err(AuthError::InvalidRefreshToken)
            }
        }
    }

    fn new_token(&self, token: &RefreshToken, now: Timestamp) -> NewToken {
        NewToken {
            hash: token.hash(),
            issued_at: now,
            expires_at: now.saturating_add(self.settings.refresh.idle_ttl),
        }
    }

    fn access_token(&self, user: &User, now: Timestamp) -> Result<String, AuthError> {
        self.sign_access_token(user, &user.roles, None, now)
    }

    /// Signs an access token for `user` carrying `roles` and, for an API-key login, the key.
    pub(super) fn sign_access_token(
        &self,
        user: &User,
        roles: &[Role],
        key_id: Option<&ApiKeyId>,
        now: Timestamp,
    ) -> Result<String, AuthError> {
        let ring = self.keys.ring();
        let key = ring
            .signing_key(now)
            .ok_or_else(|| AuthError::Unavailable("no active signing key".into()))?;
        let jti = crate::crypto::random_bytes::<16>().map_err(|_| RandomnessError)?;
        let iat = now.unix_seconds();
        let claims = AccessClaims {
            iss: self.settings.issuer.clone(),
            sub: user.id.to_string(),
            aud: Audience::from_list(&self.settings.audience),
            exp: now.saturating_add(self.settings.access_ttl).unix_seconds(),
            iat,
            nbf: iat,
            jti: base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, jti),
            roles: roles.iter().map(|r| r.as_str().to_owned()).collect(),
            preferred_username: user.username.to_string(),
            key_id: key_id.map(ToString::to_string),
        };
        Ok(key.sign(ACCESS_TOKEN_TYP, &claims)?)
    }

    /// The current key ring, for verifying tokens this service issued.
    pub fn keys(&self) -> Arc<KeyRing> {
        self.keys.ring()
    }

    /// The key manager: rotation, reloading, the JWKS.
    pub fn key_manager(&self) -> &Arc<KeyManager> {
        &self.keys
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
        if self.keys.ring().signing_key(self.clock.now()).is_none() {
            return Err(AuthError::Unavailable("no active signing key".into()));
        }
        Ok(())
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }
}
