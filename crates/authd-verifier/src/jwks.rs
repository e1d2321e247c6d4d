//! Fetching and caching the JWKS over HTTP.
//!
//! The cache lives for the response's `Cache-Control: max-age` (or a default), but at least
//! `min_refresh_interval`. A token with a `kid` the cache does not know triggers a refetch, at
//! most once per `min_refresh_interval`, so a flood of tokens with invented `kid`s cannot turn
//! into a flood of fetches. Concurrent misses share one fetch.
//!
//! Past its lifetime the cache is trusted no more: when the refetch fails, tokens are refused
//! with [`VerifyError::KeysUnavailable`] rather than verified with keys the issuer may have
//! withdrawn since (a retired or compromised key must stop working once the caches age out,
//! even for a verifier that cannot reach the issuer). A failed refetch while the cache is
//! still fresh keeps it in use. The response body is read up to [`MAX_JWKS_BYTES`] and no
//! further.

use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{Jwk, JwkSet};
use tokio::sync::{Mutex, RwLock};

use crate::verify::VerifyError;

/// Longest accepted JWKS response; reading stops, and the fetch fails, past it.
pub const MAX_JWKS_BYTES: usize = 64 * 1024;
/// Upper bound on how long a fetched JWKS is trusted, whatever the server says.
const MAX_CACHE_AGE: Duration = Duration::from_secs(24 * 3600);

struct Cache {
    keys: JwkSet,
    fetched_at: Option<Instant>,
    max_age: Duration,
    last_attempt: Option<Instant>,
}

impl Cache {
    /// Whether the keys may still be trusted without a refetch: fetched less than their
    /// lifetime ago (`max_age`, at least `floor`).
    fn is_fresh(&self, floor: Duration) -> bool {
        self.fetched_at
            .is_some_and(|t| t.elapsed() < self.max_age.max(floor))
    }
}

fn expired() -> VerifyError {
    VerifyError::KeysUnavailable(
        "the cached JWKS is older than its max-age and could not be refreshed".into(),
    )
}

/// A JWKS fetched from a URL and cached.
pub struct RemoteJwks {
    url: String,
    client: reqwest::Client,
    cache: RwLock<Cache>,
    fetching: Mutex<()>,
    min_refresh_interval: Duration,
    default_max_age: Duration,
}

impl RemoteJwks {
    /// # Errors
    /// When the HTTP client cannot be built.
    pub fn new(
        url: String,
        min_refresh_interval: Duration,
        default_max_age: Duration,
    ) -> Result<Self, VerifyError> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| VerifyError::KeysUnavailable(e.to_string()))?;
        Ok(Self {
            url,
            client,
            cache: RwLock::new(Cache {
                keys: JwkSet { keys: Vec::new() },
                fetched_at: None,
                max_age: Duration::ZERO,
                last_attempt: None,
            }),
            fetching: Mutex::new(()),
            min_refresh_interval,
            default_max_age,
        })
    }

    /// The number of cached keys, for diagnostics.
    pub async fn cached_keys(&self) -> usize {
        self.cache.read().await.keys.keys.len()
    }

    /// The key named `kid`, fetching the JWKS when the cache is stale or (rate-limited) when
    /// it does not know `kid`.
    ///
    /// # Errors
    /// [`VerifyError::UnknownKey`] when the key is not published;
    /// [`VerifyError::KeysUnavailable`] when nothing could be fetched and nothing is cached.
    pub async fn key(&self, kid: &str) -> Result<Jwk, VerifyError> {
        let started = Instant::now();
        {
            let cache = self.cache.read().await;
            let fresh = cache.is_fresh(self.min_refresh_interval);
            if let Some(jwk) = cache.keys.find(kid).filter(|_| fresh) {
                return Ok(jwk.clone());
            }
            let may_fetch = cache
                .last_attempt
                .is_none_or(|t| t.elapsed() >= self.min_refresh_interval);
            if !may_fetch {
                return if fresh {
                    Err(VerifyError::UnknownKey(kid.to_owned()))
                } else {
                    Err(expired())
                };
            }
        }
        self.refresh(started).await?;
        let cache = self.cache.read().await;
        // Fetched during this call (by it or by a concurrent one), or still fresh.
        let usable = cache.fetched_at.is_some_and(|t| t >= started)
            || cache.is_fresh(self.min_refresh_interval);
        if !usable {
            return Err(expired());
        }
        cache
            .keys
            .find(kid)
            .cloned()
            .ok_or_else(|| VerifyError::UnknownKey(kid.to_owned()))
    }

    async fn refresh(&self, requested_at: Instant) -> Result<(), VerifyError> {
        let _one_fetch = self.fetching.lock().await;
        // Someone else fetched while we waited: use theirs.
        if self
            .cache
            .read()
            .await
            .last_attempt
            .is_some_and(|t| t >= requested_at)
        {
            return Ok(());
        }
        let attempt = Instant::now();
        let fetched = self.fetch().await;
        let mut cache = self.cache.write().await;
        cache.last_attempt = Some(attempt);
        match fetched {
            Ok((keys, max_age)) => {
                cache.keys = keys;
                cache.fetched_at = Some(attempt);
                cache.max_age = max_age;
                Ok(())
            }
            Err(e) if cache.fetched_at.is_some() => {
                // The caller decides whether the old keys are still fresh enough to use.
                tracing::warn!(url = %self.url, error = %e, "JWKS refresh failed");
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    async fn fetch(&self) -> Result<(JwkSet, Duration), VerifyError> {
        let unavailable = |e: &dyn std::fmt::Display| VerifyError::KeysUnavailable(e.to_string());
        let mut response = self
            .client
            .get(&self.url)
            .send()
            .await
            .map_err(|e| unavailable(&e))?;
        if !response.status().is_success() {
            return Err(unavailable(&format!("HTTP {}", response.status())));
        }
        let max_age = response
            .headers()
            .get(http::header::CACHE_CONTROL)
            .and_then(|v| v.to_str().ok())
            .and_then(max_age)
            .unwrap_or(self.default_max_age)
            .min(MAX_CACHE_AGE);
        let too_large =
            || unavailable(&format!("JWKS response larger than {MAX_JWKS_BYTES} bytes"));
        if response
            .content_length()
            .is_some_and(|n| n > MAX_JWKS_BYTES as u64)
        {
            return Err(too_large());
        }
        // Chunk by chunk, so a huge or endless body is cut off at the limit, not read whole.
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| unavailable(&e))? {
            if body.len().saturating_add(chunk.len()) > MAX_JWKS_BYTES {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        let keys: JwkSet = serde_json::from_slice(&body).map_err(|e| unavailable(&e))?;
        Ok((keys, max_age))
    }
}

/// `max-age` from a Cache-Control value; `no-store` / `no-cache` mean zero.
fn max_age(value: &str) -> Option<Duration> {
    let mut age = None;
    for directive in value.split(',').map(str::trim) {
        let lower = directive.to_ascii_lowercase();
        if lower == "no-store" || lower == "no-cache" {
            return Some(Duration::ZERO);
        }
        if let Some(n) = lower.strip_prefix("max-age=") {
            age = n
                .trim_matches('"')
                .parse::<u64>()
                .ok()
                .map(Duration::from_secs);
        }
    }
    age
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_max_age() {
        assert_eq!(
            max_age("public, max-age=300"),
            Some(Duration::from_secs(300))
        );
        assert_eq!(max_age("no-store"), Some(Duration::ZERO));
        assert_eq!(max_age("public"), None);
        assert_eq!(max_age("max-age=abc"), None);
    }
}
