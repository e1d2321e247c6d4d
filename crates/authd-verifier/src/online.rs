//! The optional online check: after the offline checks pass, ask authd's `Introspect` whether
//! the token is still active, with a small cache.
//!
//! Offline verification cannot see what happened after a token was issued (a logout, an ended
//! session, a disabled user, a changed password): such a token stays valid until its `exp`.
//! A service that must honour those at once wraps its call to `Introspect` (over gRPC or HTTP,
//! with its own credential: authd answers only callers with `introspect_role`) in an
//! [`Introspect`] and checks each token with [`OnlineCheck`]. Answers are cached per `jti` for
//! a few seconds, so a busy service asks once per token per `ttl`; that is the delay the check
//! still allows. A failed call fails closed. This module makes no network call of its own.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::{Claims, Verifier, VerifyError};

/// Any error of the caller's introspection call.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The caller's way of asking authd's `Introspect` whether a token is active.
pub trait Introspect: Send + Sync {
    /// Whether authd reports `token` active now.
    fn is_active<'a>(
        &'a self,
        token: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<bool, BoxError>> + Send + 'a>>;
}

/// Why [`OnlineCheck`] refused a token.
#[derive(Debug, thiserror::Error)]
pub enum OnlineError {
    /// The offline checks failed.
    #[error(transparent)]
    Invalid(#[from] VerifyError),
    /// authd reports the token inactive (logged out, session ended, user disabled, …).
    #[error("token is no longer active")]
    Inactive,
    /// The introspection call failed: refused, never assumed active.
    #[error("cannot ask authd whether the token is active: {0}")]
    Unavailable(#[source] BoxError),
}

/// The online check with its cache of recent answers (per `jti`).
pub struct OnlineCheck {
    introspect: Arc<dyn Introspect>,
    ttl: Duration,
    capacity: usize,
    cache: Mutex<HashMap<String, (bool, Instant)>>,
}

impl std::fmt::Debug for OnlineCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnlineCheck")
            .field("ttl", &self.ttl)
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

impl OnlineCheck {
    /// Answers cached for 5 s, at most 10,000 of them.
    pub fn new(introspect: Arc<dyn Introspect>) -> Self {
        Self::with_cache(introspect, Duration::from_secs(5), 10_000)
    }

    /// Answers cached for `ttl` (zero: no cache), at most `capacity` of them.
    pub fn with_cache(introspect: Arc<dyn Introspect>, ttl: Duration, capacity: usize) -> Self {
        Self {
            introspect,
            ttl,
            capacity,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// Verifies `token` offline with `verifier`, then online.
    ///
    /// # Errors
    /// See [`Self::check`]; [`OnlineError::Invalid`] when the offline checks fail.
    pub async fn verify(&self, verifier: &Verifier, token: &str) -> Result<Claims, OnlineError> {
        let claims = verifier.verify(token).await?;
        self.check(&claims, token).await?;
        Ok(claims)
    }

    /// Whether authd still reports `token` (whose verified claims are `claims`) active,
    /// from the cache when it answered within `ttl`.
    ///
    /// # Errors
    /// [`OnlineError::Inactive`] when it does not; [`OnlineError::Unavailable`] when the call
    /// fails.
    pub async fn check(&self, claims: &Claims, token: &str) -> Result<(), OnlineError> {
        let now = Instant::now();
        if let Some(active) = self.cached(&claims.jti, now) {
            return if active {
                Ok(())
            } else {
                Err(OnlineError::Inactive)
            };
        }
        let active = self
            .introspect
            .is_active(token)
            .await
            .map_err(OnlineError::Unavailable)?;
        self.remember(&claims.jti, active, now);
        if active {
            Ok(())
        } else {
            Err(OnlineError::Inactive)
        }
    }

    fn cached(&self, jti: &str, now: Instant) -> Option<bool> {
        let cache = self.cache.lock().ok()?;
        cache
            .get(jti)
            .filter(|(_, at)| now.duration_since(*at) < self.ttl)
            .map(|(active, _)| *active)
    }

    fn remember(&self, jti: &str, active: bool, now: Instant) {
        if self.ttl.is_zero() || self.capacity == 0 {
            return;
        }
        let Ok(mut cache) = self.cache.lock() else {
            return;
        };
        if cache.len() >= self.capacity {
            cache.retain(|_, (_, at)| now.duration_since(*at) < self.ttl);
            if cache.len() >= self.capacity {
                cache.clear();
            }
        }
        cache.insert(jti.to_owned(), (active, now));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    #[derive(Default)]
    struct Fake {
        calls: AtomicUsize,
        inactive: AtomicBool,
        down: AtomicBool,
    }

    impl Introspect for Fake {
        fn is_active<'a>(
            &'a self,
            _token: &'a str,
        ) -> Pin<Box<dyn Future<Output = Result<bool, BoxError>> + Send + 'a>> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            let down = self.down.load(Ordering::SeqCst);
            let active = !self.inactive.load(Ordering::SeqCst);
            Box::pin(async move {
                if down {
                    Err("connection refused".into())
                } else {
                    Ok(active)
                }
            })
        }
    }

    fn claims(jti: &str) -> Claims {
        Claims {
            iss: "i".into(),
            sub: "s".into(),
            aud: vec!["a".into()],
            exp: 2,
            iat: 1,
            nbf: None,
            jti: jti.into(),
            roles: vec![],
            preferred_username: None,
            key_id: None,
            sid: Some("session".into()),
            client_id: None,
        }
    }

    #[tokio::test]
    async fn answers_are_cached_per_jti_for_the_ttl_and_failures_fail_closed() {
        let fake = Arc::new(Fake::default());
        let check = OnlineCheck::with_cache(fake.clone(), Duration::from_secs(60), 2);
        check.check(&claims("a"), "t").await.unwrap();
        check.check(&claims("a"), "t").await.unwrap();
        assert_eq!(fake.calls.load(Ordering::SeqCst), 1, "cached");
        fake.inactive.store(true, Ordering::SeqCst);
        assert!(matches!(
            check.check(&claims("b"), "t").await,
            Err(OnlineError::Inactive)
        ));
        fake.down.store(true, Ordering::SeqCst);
        assert!(matches!(
            check.check(&claims("c"), "t").await,
            Err(OnlineError::Unavailable(_))
        ));
        // Without a cache every check asks.
        let uncached = OnlineCheck::with_cache(fake.clone(), Duration::ZERO, 2);
        fake.down.store(false, Ordering::SeqCst);
        fake.inactive.store(false, Ordering::SeqCst);
        uncached.check(&claims("a"), "t").await.unwrap();
        uncached.check(&claims("a"), "t").await.unwrap();
        assert_eq!(fake.calls.load(Ordering::SeqCst), 5);
    }
}
