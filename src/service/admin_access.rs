//! Who may call the admin and account APIs: the one rule, applied to every RPC of them.
//!
//! A caller is the bearer of an access token that Introspect would call active (the verifier
//! crate's rules, not logged out, an API key still usable), whose user still exists, is still
//! enabled and is still the token's subject: a disabled or deleted user's tokens stop working
//! here at once, though they stay valid offline until they expire. An administrator is such a
//! caller whose token *and* current roles hold the admin role, or an mTLS client whose
//! certificate subject is configured. This module knows no transport: the gRPC edge hands it
//! the bearer token and the verified client certificate's subject.

use std::sync::Arc;

use super::auth::{AuthError, TokenService};
use super::introspect::Introspection;
use crate::crypto::access_token::Claims;
use crate::domain::{Role, User, Username};
use crate::store::Store;

/// Who is acting.
#[derive(Debug, Clone)]
pub enum Principal {
    /// A user, by an access token.
    User(User),
    /// An mTLS client, by its certificate's subject.
    Certificate(String),
}

impl Principal {
    /// How audit events name it: `user:<username>` or `cert:<subject>`.
    pub fn label(&self) -> String {
        match self {
            Self::User(user) => format!("user:{}", user.username),
            Self::Certificate(subject) => format!("cert:{subject}"),
        }
    }
}

/// Authenticates callers of the admin and account APIs.
pub struct AdminAccess {
    tokens: Arc<TokenService>,
    store: Arc<dyn Store>,
    admin_role: Role,
    client_subjects: Vec<String>,
}

impl AdminAccess {
    pub fn new(
        tokens: Arc<TokenService>,
        store: Arc<dyn Store>,
        admin_role: Role,
        client_subjects: Vec<String>,
    ) -> Self {
        Self {
            tokens,
            store,
            admin_role,
            client_subjects,
        }
    }

    /// The role administrators hold.
    pub fn admin_role(&self) -> &Role {
        &self.admin_role
    }

    /// The enabled user whose active access token `bearer` is, with the token's claims.
    ///
    /// # Errors
    /// - [`AuthError::CallerUnauthenticated`] without a token, for an inactive one, or when
    ///   its user is gone, disabled or no longer its subject;
    /// - [`AuthError::Unavailable`] when storage fails (never a success).
    pub async fn authenticate(&self, bearer: Option<&str>) -> Result<(User, Claims), AuthError> {
        let token = bearer
            .filter(|t| !t.is_empty())
            .ok_or(AuthError::CallerUnauthenticated)?;
        // A refresh token is not a credential to call with.
        let Introspection::Access(claims) = self.tokens.introspect(token).await? else {
            return Err(AuthError::CallerUnauthenticated);
        };
        let username = claims
            .preferred_username
            .as_deref()
            .and_then(|u| Username::parse(u).ok())
            .ok_or(AuthError::CallerUnauthenticated)?;
        let user = self
            .store
            .find_user(&username)
            .await?
            .filter(|u| u.enabled && u.id.as_str() == claims.sub)
            .ok_or(AuthError::CallerUnauthenticated)?;
        Ok((user, claims))
    }

    /// The administrator making a request: the mTLS client when `client_subject` is a
    /// configured one, else the bearer of `bearer` if its token and its current roles hold the
    /// admin role.
    ///
    /// # Errors
    /// As [`Self::authenticate`], and [`AuthError::CallerForbidden`] without the admin role.
    pub async fn admin(
        &self,
        bearer: Option<&str>,
        client_subject: Option<&str>,
    ) -> Result<Principal, AuthError> {
        if let Some(subject) = client_subject
            && self.client_subjects.iter().any(|s| s == subject)
        {
            return Ok(Principal::Certificate(subject.to_owned()));
        }
        let (user, claims) = self.authenticate(bearer).await?;
        if claims.has_role(self.admin_role.as_str()) && user.roles.contains(&self.admin_role) {
            Ok(Principal::User(user))
        } else {
            Err(AuthError::CallerForbidden)
        }
    }
}
