//! Password login: a username and password buy an access token and a refresh token, starting
//! a session.
//!
//! A login is throttled per normalised username ([`crate::domain::ThrottlePolicy`]) before any
//! password is checked, identically for existing and unknown names; every outcome is an audit
//! event. (Per-source rate limiting happens before, in the request layer stack.)
//!
//! The password is checked by the configured identity sources in order (`identity_sources`,
//! [`IdentitySources`]): `local` (argon2 against the stored hash, a dummy hash for an unknown
//! name) and `ldap` ([`super::directory::DirectorySource`]). A name a source does not know is
//! passed to the next; the first source that knows the user decides. Throttling, the failure
//! count and the one refusal are the same whichever source answered.

use std::sync::Arc;

use tracing::{info, warn};

use super::RequestContext;
use super::auth::{AuthError, IssuedTokens};
use super::directory::IdentitySources;
use super::shared::Context;
use crate::crypto::password::{HashTicket, Verification};
use crate::crypto::refresh_token::RefreshToken;
use crate::domain::{
    AuditEvent, AuditKind, Charge, FamilyId, IdentitySource, NewFamily, Password, PasswordError,
    SessionOrigin, User, Username,
};
use crate::metrics::LoginOutcome;

/// The outcome of checking a password, before throttling bookkeeping.
pub(super) enum PasswordCheck {
    /// Accepted by this source.
    Accepted(User, IdentitySource),
    /// Refused; the user when one exists, and the reason for the audit trail.
    Refused(Option<User>, &'static str),
}

/// Password login.
#[derive(Debug)]
pub struct PasswordLogin {
    shared: Arc<Context>,
    sources: IdentitySources,
}

impl PasswordLogin {
    pub fn new(shared: Arc<Context>) -> Self {
        Self {
            shared,
            sources: IdentitySources::default(),
        }
    }

    /// The same login over `sources` (in their order).
    #[must_use]
    pub fn with_sources(mut self, sources: IdentitySources) -> Self {
        self.sources = sources;
        self
    }

    /// Exchanges a username and password for a new token pair, starting a new refresh family.
    ///
    /// # Errors
    /// - [`AuthError::InvalidArgument`] for an empty username or password, or a password over
    ///   [`crate::domain::MAX_PASSWORD_BYTES`] (refused before any hashing);
    /// - [`AuthError::Throttled`] while the username is in its delay after repeated
    ///   failures (the password is not checked), whether or not the user exists;
    /// - [`AuthError::Locked`] once the username reached `throttle_max_failures` consecutive
    ///   failures, until `authd user unlock` (likewise for existing and unknown names);
    /// - [`AuthError::InvalidCredentials`] for an unknown user, a wrong password or a disabled
    ///   user alike, after the same amount of hashing work;
    /// - [`AuthError::Overloaded`] when the hashing queue is full;
    /// - [`AuthError::Unavailable`] when storage or hashing fails, or the directory (when it
    ///   is asked) does not answer within `ldap.timeout`.
    pub async fn login(
        &self,
        username: &str,
        password: &str,
        ctx: &RequestContext,
    ) -> Result<IssuedTokens, AuthError> {
        let origin = SessionOrigin::new(ctx.source_label(), ctx.user_agent.as_deref());
        let source = ctx.source_label().unwrap_or_default();
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
        let raw_password = password;
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
        // (Only when the local source may hash: a directory-only login needs no place.)
        let ticket = if self.sources.uses_local() {
            Some(self.shared.hasher().admit()?)
        } else {
            None
        };
        let now = self.shared.now();
        let event = |kind| {
            AuditEvent::new(kind, now)
                .username(username.as_str())
                .source(ctx.source_label())
                .request_id(ctx.request_id.as_str())
        };
        // Count the attempt in flight before checking the password (the store decides and
        // counts in one transaction); it ends as a failure, a session (which clears the
        // failures) or, without a verdict, released.
        let throttle = &self.shared.settings().throttle;
        match self
            .shared
            .store()
            .charge_login_attempt(&username, throttle, now)
            .await?
        {
            Charge::Charged(_) => {}
            Charge::Throttled { retry_after_secs } => {
                return Err(self
                    .throttled(event(AuditKind::LoginThrottled), retry_after_secs)
                    .await);
            }
            Charge::Locked => {
                self.shared
                    .audit()
                    .record(event(AuditKind::LoginLocked))
                    .await;
                return Err(AuthError::Locked);
            }
        };
        let checked = self
            .check_sources(ticket, &username, password, raw_password)
            .await;
        let checked = match checked {
            Ok(checked) => checked,
            Err(e) => {
                // No verdict: free the place at once rather than wait for it to go stale.
                let released = self.shared.store().release_login_attempt(&username, now);
                if let Err(release) = released.await {
                    warn!(target: "authd::login", error = %release, "cannot release a login attempt");
                }
                return Err(e);
            }
        };
        match checked {
            PasswordCheck::Accepted(user, source) => {
                let mut succeeded = event(AuditKind::LoginSucceeded).user(&user);
                if source != IdentitySource::Local {
                    succeeded = succeeded.detail(format!("source={}", source.as_str()));
                }
                Ok((user, succeeded))
            }
            PasswordCheck::Refused(user, reason) => {
                let charged = self
                    .shared
                    .store()
                    .record_login_failure(&username, throttle, self.shared.now())
                    .await?;
                let failures = charged.consecutive_failures;
                let locks = throttle.locks(charged);
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
                self.shared.audit().record(e).await;
                Err(AuthError::InvalidCredentials)
            }
        }
    }

    async fn throttled(&self, event: AuditEvent, retry_after_secs: u64) -> AuthError {
        self.shared
            .audit()
            .record(event.detail(format!("retry_after_secs={retry_after_secs}")))
            .await;
        AuthError::Throttled { retry_after_secs }
    }

    /// Asks each identity source in order until one knows the user (or none is left).
    async fn check_sources(
        &self,
        mut ticket: Option<HashTicket<'_>>,
        username: &Username,
        password: Password,
        raw_password: &str,
    ) -> Result<PasswordCheck, AuthError> {
        let mut password = Some(password);
        let mut refused = PasswordCheck::Refused(None, "unknown user");
        for source in self.sources.order() {
            let checked = match source {
                IdentitySource::Local => {
                    let (Some(ticket), Some(password)) = (ticket.take(), password.take()) else {
                        continue;
                    };
                    self.check_password(ticket, username, password).await?
                }
                IdentitySource::Ldap => {
                    let Some(directory) = self.sources.directory() else {
                        continue;
                    };
                    directory
                        .check_password(&self.shared, username, raw_password)
                        .await?
                }
            };
            match checked {
                // Not this source's user: the next one may know them.
                PasswordCheck::Refused(None, _) => refused = checked,
                known => return Ok(known),
            }
        }
        Ok(refused)
    }

    async fn check_password(
        &self,
        ticket: HashTicket<'_>,
        username: &Username,
        password: Password,
    ) -> Result<PasswordCheck, AuthError> {
        let credentials = self.shared.store().find_credentials(username).await?;
        let (user, stored_hash) = match credentials {
            Some(c) => (Some(c.user), Some(c.password_hash)),
            None => (None, None),
        };
        let verification = self
            .shared
            .hasher()
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
            Verification::Match => Ok(PasswordCheck::Accepted(user, IdentitySource::Local)),
            Verification::MatchRehashed(new_hash) => {
                let old_hash = stored_hash.unwrap_or_default();
                // A failed upgrade is retried at the next login; it must not fail this one.
                match self
                    .shared
                    .store()
                    .upgrade_password_hash(&user.id, &old_hash, &new_hash)
                    .await
                {
                    Ok(()) => {
                        info!(user_id = %user.id, "password hash upgraded to current parameters")
                    }
                    Err(e) => warn!(user_id = %user.id, error = %e, "password hash upgrade failed"),
                }
                Ok(PasswordCheck::Accepted(user, IdentitySource::Local))
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
        let now = self.shared.now();
        let refresh_token = RefreshToken::generate(now)?;
        let family = NewFamily {
            id: FamilyId::generate(),
            user: user.clone(),
            created_at: now,
            expires_at: now.saturating_add(self.shared.settings().refresh.max_lifetime),
            origin,
        };
        let first = self.shared.new_token(&refresh_token, now);
        let access_token = self.shared.user_access_token(user, &family.id, now)?;
        let events = [succeeded];
        self.shared
            .store()
            .start_family(&family, &first, &events)
            .await?;
        self.shared.audit().log_stored(&events);
        Ok(IssuedTokens {
            access_token,
            refresh_token,
        })
    }
}
