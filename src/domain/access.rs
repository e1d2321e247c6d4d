//! Whether one of our access tokens is still backed by what it was issued for: the pure rule
//! `Introspect` applies to the state the store reads in one query ([`AccessStanding`]).
//!
//! The signature, `exp`/`nbf`, issuer and audience are the verifier crate's business, and API
//! keys are judged by [`super::check_api_key`]; this is only what a resource server verifying
//! offline cannot know.

use super::Timestamp;

/// What the store knows about an access token's user, session and `jti`, read at once.
/// The user not existing (deleted) is the store returning no standing at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccessStanding {
    /// A logout recorded the token's `jti`.
    pub revoked: bool,
    pub user_enabled: bool,
    /// When the user's password was last changed, if ever since authd kept it.
    pub password_changed_at: Option<Timestamp>,
    /// Whether the session named by the token's `sid` exists, is not revoked and is within its
    /// absolute lifetime (`false` when the token names none).
    pub session_live: bool,
}

/// The claims of the token the rule needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccessBinding {
    /// `iat`, Unix seconds.
    pub issued_at: i64,
    /// The token carries a `sid`: it lives no longer than that session.
    pub has_session: bool,
    /// The token was bought with an API key: a password change does not end it (the key is
    /// a credential of its own, judged separately).
    pub by_api_key: bool,
}

impl AccessStanding {
    /// Whether a token bound as `token` is still active: not logged out, its user enabled,
    /// its session (if it names one) live, and — unless bought with an API key — the password
    /// not changed after it was issued. `iat` has whole seconds, so a change is compared at the
    /// second it happened in: a token issued in that same second is judged by its session.
    pub fn allows(&self, token: &AccessBinding) -> bool {
        let password_kept = token.by_api_key
            || self
                .password_changed_at
                .is_none_or(|changed| token.issued_at >= changed.unix_seconds());
        !self.revoked
            && self.user_enabled
            && password_kept
            && (!token.has_session || self.session_live)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIVE: AccessStanding = AccessStanding {
        revoked: false,
        user_enabled: true,
        password_changed_at: None,
        session_live: true,
    };
    const SESSION: AccessBinding = AccessBinding {
        issued_at: 100,
        has_session: true,
        by_api_key: false,
    };

    #[test]
    fn a_live_session_of_an_enabled_user_allows() {
        assert!(LIVE.allows(&SESSION));
    }

    #[test]
    fn logout_disabled_user_or_ended_session_refuse() {
        for standing in [
            AccessStanding {
                revoked: true,
                ..LIVE
            },
            AccessStanding {
                user_enabled: false,
                ..LIVE
            },
            AccessStanding {
                session_live: false,
                ..LIVE
            },
        ] {
            assert!(!standing.allows(&SESSION), "{standing:?}");
        }
    }

    #[test]
    fn password_change_after_iat_refuses_session_tokens_only() {
        let changed = |ms| AccessStanding {
            password_changed_at: Some(Timestamp::from_unix_millis(ms)),
            ..LIVE
        };
        assert!(!changed(101_000).allows(&SESSION));
        assert!(changed(100_999).allows(&SESSION), "same second");
        assert!(changed(99_000).allows(&SESSION));
        let by_key = AccessBinding {
            has_session: false,
            by_api_key: true,
            ..SESSION
        };
        assert!(changed(101_000).allows(&by_key));
    }

    #[test]
    fn a_token_without_sid_ignores_sessions() {
        let no_sid = AccessBinding {
            has_session: false,
            ..SESSION
        };
        let standing = AccessStanding {
            session_live: false,
            ..LIVE
        };
        assert!(standing.allows(&no_sid));
    }
}
