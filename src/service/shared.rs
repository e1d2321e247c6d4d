//! What every token use case shares: the store, the password hasher, the signing keys, the
//! clock, the settings and the audit trail, plus the two things several of them do — mint an
//! access token and verify one of ours.
//!
//! One [`Context`] is built at start and held (behind an `Arc`) by each use case; the use
//! cases reach it only through these methods.

use std::sync::Arc;

use authd_verifier::{LocalKeys, Verifier, VerifyError};

use super::auth::{AuthError, TokenSettings};
use super::{Auditor, KeyManager};
use crate::crypto::access_token::{ACCESS_TOKEN_TYP, Claims, own_verifier};
use crate::crypto::password::PasswordHasher;
use crate::crypto::refresh_token::{RandomnessError, RefreshToken};
use crate::domain::{ApiKeyId, Clock, FamilyId, NewToken, Role, Timestamp, User};
use crate::store::Store;

/// What an access token is bound to: it is active only while that is.
#[derive(Debug, Clone, Copy)]
pub enum TokenBinding<'a> {
    /// A password session (refresh family): the `sid` claim.
    Session(&'a FamilyId),
    /// An API key: the `key_id` claim.
    ApiKey(&'a ApiKeyId),
}

/// The dependencies and shared steps of the token use cases.
pub struct Context {
    store: Arc<dyn Store>,
    hasher: Arc<PasswordHasher>,
    keys: Arc<KeyManager>,
    clock: Arc<dyn Clock>,
    settings: TokenSettings,
    audit: Auditor,
    verifier: Verifier,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Context {
    pub fn new(
        store: Arc<dyn Store>,
        hasher: Arc<PasswordHasher>,
        keys: Arc<KeyManager>,
        clock: Arc<dyn Clock>,
        settings: TokenSettings,
    ) -> Self {
        let audit = Auditor::new(Arc::clone(&store));
        let key_source: Arc<dyn LocalKeys> = keys.clone();
        let verifier = own_verifier(
            &settings.issuer,
            &settings.audience,
            settings.clock_skew,
            key_source,
        );
        Self {
            store,
            hasher,
            keys,
            clock,
            settings,
            audit,
            verifier,
        }
    }

    pub fn store(&self) -> &dyn Store {
        self.store.as_ref()
    }

    pub fn hasher(&self) -> &Arc<PasswordHasher> {
        &self.hasher
    }

    pub fn keys(&self) -> &Arc<KeyManager> {
        &self.keys
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    pub fn settings(&self) -> &TokenSettings {
        &self.settings
    }

    pub fn audit(&self) -> &Auditor {
        &self.audit
    }

    /// The stored form of a new refresh token issued `now`.
    pub fn new_token(&self, token: &RefreshToken, now: Timestamp) -> NewToken {
        NewToken {
            hash: token.hash(),
            issued_at: now,
            expires_at: now.saturating_add(self.settings.refresh.idle_ttl),
        }
    }

    /// Signs an access token for `user` carrying `roles`, bound to what it was bought with:
    /// its session (`sid`) or its API key (`key_id`), so Introspect can tell when that ended.
    ///
    /// # Errors
    /// [`AuthError::Unavailable`] without an active signing key or randomness.
    pub fn sign_access_token(
        &self,
        user: &User,
        roles: &[Role],
        bound_to: TokenBinding<'_>,
        now: Timestamp,
    ) -> Result<String, AuthError> {
        let ring = self.keys.ring();
        let key = ring
            .signing_key(now)
            .ok_or_else(|| AuthError::Unavailable("no active signing key".into()))?;
        let jti = crate::crypto::random_bytes::<16>().map_err(|_| RandomnessError)?;
        let iat = now.unix_seconds();
        let claims = Claims {
            iss: self.settings.issuer.clone(),
            sub: user.id.to_string(),
            aud: self.settings.audience.clone(),
            exp: now.saturating_add(self.settings.access_ttl).unix_seconds(),
            iat,
            nbf: Some(iat),
            jti: base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, jti),
            roles: roles.iter().map(|r| r.as_str().to_owned()).collect(),
            preferred_username: Some(user.username.to_string()),
            key_id: match bound_to {
                TokenBinding::ApiKey(id) => Some(id.to_string()),
                TokenBinding::Session(_) => None,
            },
            sid: match bound_to {
                TokenBinding::Session(id) => Some(id.as_str().to_owned()),
                TokenBinding::ApiKey(_) => None,
            },
            // RFC 9068 §2.2: the API key is the client; a session is authd's own login.
            client_id: Some(match bound_to {
                TokenBinding::ApiKey(id) => id.to_string(),
                TokenBinding::Session(_) => self.settings.default_client_id.clone(),
            }),
        };
        Ok(key.sign(ACCESS_TOKEN_TYP, &claims)?)
    }

    /// An access token of the user's own roles, for `session`.
    ///
    /// # Errors
    /// As [`Self::sign_access_token`].
    pub fn user_access_token(
        &self,
        user: &User,
        session: &FamilyId,
        now: Timestamp,
    ) -> Result<String, AuthError> {
        self.sign_access_token(user, &user.roles, TokenBinding::Session(session), now)
    }

    /// Verifies one of this service's access tokens as of `now`, by the verifier crate's
    /// rules (the same a resource server applies), with the key ring as key source.
    ///
    /// # Errors
    /// The first check that fails; callers treat every failure as "not active".
    pub async fn verify_access_token(
        &self,
        token: &str,
        now: Timestamp,
    ) -> Result<Claims, VerifyError> {
        self.verifier.verify_at(token, now.unix_seconds()).await
    }
}
