//! Login and refresh: the two things clients ask of authd.
//!
//! Both are limited per source address first ([`SourceLimiter`]); a login is then throttled
//! per normalised username ([`ThrottlePolicy`]) before any password is checked, identically
//! for existing and unknown names. Every outcome is an audit event.

use std::sync::Arc;
use std::time::Duration;

use tracing::{debug, info, warn};

use crate::crypto::access_token::{ACCESS_TOKEN_TYP, AccessClaims, Audience};
use crate::crypto::keys::{KeyError, KeyRing};
use crate::crypto::password::{HashError, HashTicket, PasswordHasher, Verification};
use crate::crypto::refresh_token::{RandomnessError, RefreshToken};
use crate::domain::{
    ApiKeyId, AuditEvent, AuditKind, Charge, Clock, FamilyId, NewFamily, NewToken, Origin,
    Password, PasswordError, RefreshPolicy, Role, Rotation, SessionOrigin, Successor,
    ThrottlePolicy, Timestamp, User, Username,
};
use crate::limits::SourceLimiter;
use crate::metrics::LoginOutcome;
use crate::service::KeyManager;
use crate::store::{Store, StoreError};

use super::housekeeping::PURGE_BATCH;
use super::{Auditor, RequestContext};

/// What every issued token carries, from configuration.
#[derive(Debug, Clone)]
pub struct TokenSettings {
    pub issuer: String,
    pub audience: Vec<String>,
    pub access_ttl: Duration,
    pub refresh: RefreshPolicy,
    pub throttle: ThrottlePolicy,
    /// Token and RefreshToken requests per second per source (0 disables).
    pub per_source_rate: u32,
    pub per_source_burst: u32,
    /// The role a caller's access token needs to use `Introspect` (`None`: anyone may).
    pub introspect_role: Option<Role>,
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

/// The outcome of checking a password, before throttling bookkeeping.
enum PasswordCheck {
    Accepted(User),
    /// Refused; the user when one exists, and the reason for the audit trail.
    Refused(Option<User>, &'static str),
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
    limiter: SourceLimiter,
    pub(super) audit: Auditor,
}

impl TokenService {
    pub fn new(
        store: Arc<dyn Store>,
        hasher: Arc<PasswordHasher>,
        keys: Arc<KeyManager>,
        clock: Arc<dyn Clock>,
        settings: TokenSettings,
    ) -> Self {
        let limiter = SourceLimiter::new(settings.per_source_rate, settings.per_source_burst);
        let audit = Auditor::new(Arc::clone(&store));
        Self {
            store,
            hasher,
            keys,
            clock,
            settings,
            limiter,
            audit,
        }
    }

    /// Exchanges a username and password for a new token pair, starting a new refresh family.
    ///
    /// # Errors
    /// - [`AuthError::RateLimited`] when the source is over its rate;
    /// - [`AuthError::InvalidArgument`] for an empty username or password, or a password over
    ///   [`crate::domain::MAX_PASSWORD_BYTES`] (refused before any hashing);
    /// - [`AuthError::Throttled`] while the username is in its delay after repeated
    ///   failures (the password is not checked), whether or not the user exists;
    /// - [`AuthError::Locked`] once the username reached `throttle_max_failures` consecutive
    ///   failures, until `authd user unlock` (likewise for existing and unknown names);
    /// - [`AuthError::InvalidCredentials`] for an unknown user, a wrong password or a disabled
    ///   user alike, after the same amount of hashing work;
    /// - [`AuthError::Overloaded`] when the hashing queue is full;
    /// - [`AuthError::Unavailable`] when storage or hashing fails.
    pub async fn login(
        &self,
        username: &str,
        password: &str,
        ctx: &RequestContext,
    ) -> Result<IssuedTokens, AuthError> {
        let origin = SessionOrigin::new(ctx.source_label(), ctx.user_agent.as_deref());
        let source = ctx.source_label().unwrap_or_default();
        self.limit(ctx, "login")?;
        let shown_name: String = username.chars().take(64).collect();
        let outcome = self.authenticate(username, password, ctx).await;
        crate::metrics::login(match &outcome {
            Ok(_) => LoginOutcome::Success,
            Err(AuthError::Unavailable(_) | AuthError::Overloaded) => LoginOutcome::Error,
            Err(AuthError::InvalidArgument(_)) => LoginOutcome::InvalidRequest,
            Err(AuthError::Throttled { .. } | AuthError::RateLimited { .. }) => {
                LoginOutcome::Throttled
            }
            Err(AuthError::Locked) => LoginOutcome::Locked,
            // (A login has no caller token: the last two do not occur.)
            Err(
                AuthError::InvalidCredentials
                | AuthError::InvalidRefreshToken
                | AuthError::CallerUnauthenticated
                | AuthError::CallerForbidden,
            ) => LoginOutcome::InvalidCredentials,
        });
        match &outcome {
            Ok((user, _)) => info!(
                target: "authd::login", username = %user.username, user_id = %user.id, %source,
                request_id = %ctx.request_id, outcome = "success", "login succeeded"
            ),
            Err(AuthError::Unavailable(e)) => warn!(
                target: "authd::login", username = %shown_name, %source,
                request_id = %ctx.request_id, outcome = "error", error = %e,
                "login failed: service unavailable"
            ),
            Err(e) => info!(
                target: "authd::login", username = %shown_name, %source,
                request_id = %ctx.request_id, outcome = "refused", reason = %e, "login refused"
            ),
        }
        let (user, succeeded) = outcome?;
        self.start_family(&user, origin, succeeded).await
    }

    /// Takes a token from the source's bucket.
    pub(super) fn limit(&self, ctx: &RequestContext, what: &'static str) -> Result<(), AuthError> {
        self.limiter.check(ctx.source).map_err(|limited| {
            info!(target: "authd::limits", source = %ctx.source_label().unwrap_or_default(),
                request_id = %ctx.request_id, request = what, "per-source rate limit exceeded");
            AuthError::RateLimited {
                retry_after_secs: limited.retry_after_secs,
            }
        })
    }

    /// Throttling, then the password check, then the failure bookkeeping: the same steps for
    /// existing and unknown usernames. A success returns the user and its audit event, which
    /// [`Self::start_family`] writes with the session (clearing the failure counter too).
    async fn authenticate(
        &self,
        username: &str,
        password: &str,
        ctx: &RequestContext,
    ) -> Result<(User, AuditEvent), AuthError> {
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
        // A place in the hashing queue first: under a flood, what the queue cannot take is
        // refused before any database work for it (the throttle's charge).
        let ticket = self.hasher.admit()?;
        let now = self.clock.now();
        let event = |kind| {
            AuditEvent::new(kind, now)
                .username(username.as_str())
                .source(ctx.source_label())
                .request_id(ctx.request_id.as_str())
        };
        // Charge the attempt as a failure before checking the password (the store decides and
        // charges in one transaction); a success clears the counter with its session.
        let charged = match self
            .store
            .charge_login_attempt(&username, &self.settings.throttle, now)
            .await?
        {
            Charge::Charged(count) => count,
            Charge::Throttled { retry_after_secs } => {
                return Err(self
                    .throttled(event(AuditKind::LoginThrottled), retry_after_secs)
                    .await);
            }
            Charge::Locked => {
                self.audit.record(event(AuditKind::LoginLocked)).await;
                return Err(AuthError::Locked);
            }
        };
        match self.check_password(ticket, &username, password).await? {
            PasswordCheck::Accepted(user) => {
                let succeeded = event(AuditKind::LoginSucceeded).user(&user);
                Ok((user, succeeded))
            }
            PasswordCheck::Refused(user, reason) => {
                let failures = charged.consecutive_failures;
                let locks = self.settings.throttle.locks(charged);
                if locks {
                    warn!(target: "authd::login", username = %username, failures,
                        "username locked after too many failed logins; `authd user unlock` clears it");
                }
                let lock_note = if locks { "; locked" } else { "" };
                let mut e = event(AuditKind::LoginFailed).detail(format!(
                    "{reason}; consecutive_failures={failures}{lock_note}"
                ));
                if let Some(user) = &user {
                    e = e.user(user);
                }
                self.audit.record(e).await;
                Err(AuthError::InvalidCredentials)
            }
        }
    }

    async fn throttled(&self, event: AuditEvent, retry_after_secs: u64) -> AuthError {
        self.audit
            .record(event.detail(format!("retry_after_secs={retry_after_secs}")))
            .await;
        AuthError::Throttled { retry_after_secs }
    }

    async fn check_password(
        &self,
        ticket: HashTicket<'_>,
        username: &Username,
        password: Password,
    ) -> Result<PasswordCheck, AuthError> {
        let credentials = self.store.find_credentials(username).await?;
        let (user, stored_hash) = match credentials {
            Some(c) => (Some(c.user), Some(c.password_hash)),
            None => (None, None),
        };
        let verification = self
            .hasher
            .verify_admitted(ticket, password, stored_hash.clone())
            .await?;
        let Some(user) = user else {
            return Ok(PasswordCheck::Refused(None, "unknown user"));
        };
        if !user.enabled {
            return Ok(PasswordCheck::Refused(Some(user), "user disabled"));
        }
        match verification {
            Verification::Mismatch => Ok(PasswordCheck::Refused(Some(user), "wrong password")),
            Verification::Match => Ok(PasswordCheck::Accepted(user)),
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
                Ok(PasswordCheck::Accepted(user))
            }
        }
    }

    /// Starts the session of a successful login; `succeeded` (its audit event) is written in
    /// the same transaction, which also clears the user's failure counter.
    async fn start_family(
        &self,
        user: &User,
        origin: SessionOrigin,
        succeeded: AuditEvent,
    ) -> Result<IssuedTokens, AuthError> {
        let now = self.clock.now();
        let refresh_token = RefreshToken::generate(now)?;
        let family = NewFamily {
            id: FamilyId::generate(),
            user: user.clone(),
            created_at: now,
            expires_at: now.saturating_add(self.settings.refresh.max_lifetime),
            origin,
        };
        let first = self.new_token(&refresh_token, now);
        let access_token = self.access_token(user, now)?;
        let events = [succeeded];
        self.store.start_family(&family, &first, &events).await?;
        self.audit.log_stored(&events);
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
        ctx: &RequestContext,
    ) -> Result<IssuedTokens, AuthError> {
        self.limit(ctx, "refresh")?;
        if presented.is_empty() {
            return Err(AuthError::InvalidArgument("refresh_token is required"));
        }
        let peer = ctx.source_label().unwrap_or_default();
        let request_id = ctx.request_id.as_str();
        let Some(presented) = RefreshToken::parse(presented) else {
            info!(target: "authd::refresh", %peer, %request_id, outcome = "malformed",
                "refresh refused");
            crate::metrics::refresh("malformed");
            return Err(AuthError::InvalidRefreshToken);
        };
        let now = self.clock.now();
        let successor = RefreshToken::generate(now)?;
        let stored_successor = Successor {
            token: self.new_token(&successor, now),
            sealed: presented.seal_successor(&successor)?,
        };
        let origin = Origin {
            source: ctx.source_label(),
            request_id: Some(ctx.request_id.clone()),
        };
        let rotation = self
            .store
            .rotate_refresh(
                &presented.hash(),
                &stored_successor,
                now,
                &self.settings.refresh,
                &origin,
            )
            .await
            .inspect_err(|_| crate::metrics::refresh("error"))?;
        self.audit.log_stored(&rotation.audit_events(now, &origin));
        match rotation {
            // A rotation and a grace retry are logged at info by their audit event (above),
            // which names the user, family, source and request; one line per refresh is enough.
            Rotation::Rotated { user, family_id } => {
                debug!(target: "authd::refresh", user_id = %user.id, family = %family_id, %peer,
                    %request_id, outcome = "rotated", "refresh token rotated");
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
                debug!(target: "authd::refresh", user_id = %user.id, family = %family_id, %peer,
                    %request_id, outcome = "grace_retry",
                    "previous refresh token retried within the grace window");
                crate::metrics::refresh("grace_retry");
                let access_token = self.access_token(&user, now)?;
                Ok(IssuedTokens {
                    access_token,
                    refresh_token,
                })
            }
            Rotation::ReuseDetected { user, family_id } => {
                warn!(target: "authd::refresh", user_id = %user.id, username = %user.username,
                    family = %family_id, %peer, %request_id, outcome = "reuse_detected",
                    "refresh token reuse detected; family revoked");
                crate::metrics::refresh("reuse_detected");
                crate::metrics::reuse_detected();
                Err(AuthError::InvalidRefreshToken)
            }
            Rotation::Rejected(why) => {
                info!(target: "authd::refresh", %peer, %request_id, outcome = "rejected",
                    reason = why.as_str(), "refresh refused");
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

    /// The per-source limiter, for the periodic clean-up.
    pub fn limiter(&self) -> &SourceLimiter {
        &self.limiter
    }

    /// The audit trail.
    pub fn auditor(&self) -> &Auditor {
        &self.audit
    }

    /// The password hasher (its shed count, for instance).
    pub fn hasher(&self) -> &PasswordHasher {
        &self.hasher
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
        if self.keys.ring().signing_key(self.clock.now()).is_none() {
            return Err(AuthError::Unavailable("no active signing key".into()));
        }
        Ok(())
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }
}
