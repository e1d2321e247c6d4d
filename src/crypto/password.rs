//! Argon2id password hashing on a bounded pool.
//!
//! Hashing is expensive on purpose, so it never runs on the async runtime's worker threads:
//! each hash or verification takes one of `permits` semaphore permits and runs on a blocking
//! thread. Memory under a login flood is therefore bounded by about `permits × m_cost`.
//!
//! Each running hash works in a buffer of argon2 blocks taken from a small pool and given back
//! afterwards, so there are never more than `permits` buffers, and they are reused rather than
//! allocated, faulted in and freed for every login. The memory bound therefore holds by
//! construction, whatever the allocator does with freed blocks (glibc keeps them: see
//! BENCHMARKS.md, "Memory").
//!
//! The queue in front of the permits is bounded too: when `max_waiting` callers already hold a
//! place in it, or a caller has waited `timeout` for a permit, it is refused with
//! [`HashError::Overloaded`] (shed) rather than queued without bound. A login takes its place
//! ([`PasswordHasher::admit`]) on arrival, so what the queue cannot take is refused before any
//! other work is done for it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use argon2::password_hash::phc::{Output, ParamsString, PasswordHash, Salt};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use tokio::sync::Semaphore;

use crate::domain::Password;

/// Argon2id cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Argon2Params {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl Default for Argon2Params {
    /// OWASP's recommendation: m=19456 KiB, t=2, p=1.
    fn default() -> Self {
        Self {
            memory_kib: 19_456,
            iterations: 2,
            parallelism: 1,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("invalid argon2 parameters: {0}")]
    Params(argon2::Error),
    #[error("password hashing failed: {0}")]
    Hash(String),
    #[error("password hashing pool is closed")]
    PoolClosed,
    #[error("password hashing queue is full")]
    Overloaded,
}

/// How many callers may wait for a hashing permit, and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueLimits {
    /// Callers holding a [`HashTicket`] (waiting, or on their way to the hash) at most.
    pub max_waiting: usize,
    pub timeout: Duration,
}

impl Default for QueueLimits {
    fn default() -> Self {
        Self {
            max_waiting: 64,
            timeout: Duration::from_secs(2),
        }
    }
}

/// The result of checking a password.
#[derive(Debug, PartialEq, Eq)]
pub enum Verification {
    Mismatch,
    Match,
    /// The password matched and the stored hash used other parameters; here is a new hash
    /// with the configured ones, to store.
    MatchRehashed(String),
}

/// Hashes and verifies passwords off the async runtime, a bounded number at a time.
pub struct PasswordHasher {
    params: Params,
    permits: Arc<Semaphore>,
    queue: QueueLimits,
    waiting: AtomicUsize,
    shed: AtomicU64,
    buffers: Arc<Buffers>,
    /// A PHC string with the configured parameters, a random salt and a random output, that
    /// no password matches: verified against when a user does not exist, so an unknown user
    /// takes the same path, and the same time, as a known one. Made without hashing (only its
    /// shape matters), so start-up pays nothing for it.
    dummy_hash: String,
}

impl std::fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordHasher")
            .field("params", &self.params)
            .field("available_permits", &self.permits.available_permits())
            .field("queue", &self.queue)
            .finish_non_exhaustive()
    }
}

/// Salt length for new hashes, as the argon2 crate's own default (`Salt::RECOMMENDED_LENGTH`).
const SALT_BYTES: usize = 16;

/// The argon2 working memory of finished hashes, kept for the next ones. A hash takes a
/// buffer (or starts an empty one) and gives it back, so there are at most as many as hashes
/// ever ran at once: `permits`.
#[derive(Default)]
struct Buffers(std::sync::Mutex<Vec<Vec<Block>>>);

impl Buffers {
    fn take(&self) -> Vec<Block> {
        self.0
            .lock()
            .ok()
            .and_then(|mut free| free.pop())
            .unwrap_or_default()
    }

    fn give_back(&self, buffer: Vec<Block>) {
        if let Ok(mut free) = self.0.lock() {
            free.push(buffer);
        }
    }
}

/// argon2 of `password` and `salt` into `out`, working in `buffer` (grown to the size the
/// parameters need, and kept at that size).
fn compute(
    argon2: &Argon2<'_>,
    buffer: &mut Vec<Block>,
    password: &[u8],
    salt: &[u8],
    out: &mut [u8],
) -> Result<(), argon2::Error> {
    let blocks = argon2.params().block_count();
    if buffer.len() < blocks {
        buffer.resize(blocks, Block::default());
    }
    argon2.hash_password_into_with_memory(password, salt, out, &mut buffer[..blocks])
}

/// A new PHC string for `password`: argon2id with `params` and a fresh random salt from the
/// OS CSPRNG (unique per hash). The same steps as the argon2 crate's `hash_password`, working
/// in `buffer`.
fn new_hash(
    params: &Params,
    buffer: &mut Vec<Block>,
    password: &[u8],
) -> Result<String, HashError> {
    let salt = super::random_bytes::<SALT_BYTES>().map_err(|e| HashError::Hash(e.to_string()))?;
    let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    compute(&argon2, buffer, password, &salt, &mut out)
        .map_err(|e| HashError::Hash(e.to_string()))?;
    phc_string(params, &salt, &out)
}

/// The argon2id PHC string of `params`, `salt` and `output`, built with the crate's types.
fn phc_string(params: &Params, salt: &[u8], output: &[u8]) -> Result<String, HashError> {
    let failed = |e: &dyn std::fmt::Display| HashError::Hash(e.to_string());
    let hash = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(params).map_err(|e| failed(&e))?,
        salt: Some(Salt::new(salt).map_err(|e| failed(&e))?),
        hash: Some(Output::new(output).map_err(|e| failed(&e))?),
    };
    Ok(hash.to_string())
}

/// Whether `password` matches `hash`: the same steps as the argon2 crate's `verify_password`
/// (algorithm, version and parameters from the hash; outputs compared in constant time by
/// `Output`'s equality), working in `buffer`.
fn matches(hash: &PasswordHash, buffer: &mut Vec<Block>, password: &[u8]) -> bool {
    let (Some(salt), Some(expected)) = (&hash.salt, &hash.hash) else {
        return false;
    };
    let Ok(algorithm) = Algorithm::try_from(hash.algorithm.as_str()) else {
        return false;
    };
    let Ok(version) = hash
        .version
        .map_or(Ok(Version::default()), Version::try_from)
    else {
        return false;
    };
    let Ok(params) = Params::try_from(hash) else {
        return false;
    };
    let mut out = [0u8; Output::MAX_LENGTH];
    let Some(out) = out.get_mut(..expected.len()) else {
        return false;
    };
    let argon2 = Argon2::new(algorithm, version, params);
    compute(&argon2, buffer, password, salt.as_ref(), out).is_ok()
        && Output::new(out).is_ok_and(|computed| computed == *expected)
}

/// A place among the callers allowed to wait for hashing ([`PasswordHasher::admit`]). It
/// counts against `max_waiting` from the moment it is taken until the hash gets a permit or the
/// ticket is dropped, so a caller can take it on arrival and be refused before doing any other
/// work (a login's throttle reads and writes, say).
#[must_use = "the ticket is what the hash waits with"]
pub struct HashTicket<'a>(&'a AtomicUsize);

impl Drop for HashTicket<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl PasswordHasher {
    /// A hasher with the default queue limits.
    ///
    /// # Errors
    /// When the parameters are outside what argon2 accepts.
    pub fn new(params: Argon2Params, permits: usize) -> Result<Self, HashError> {
        Self::with_queue(params, permits, QueueLimits::default())
    }

    /// # Errors
    /// When the parameters are outside what argon2 accepts, or the OS refuses randomness.
    pub fn with_queue(
        params: Argon2Params,
        permits: usize,
        queue: QueueLimits,
    ) -> Result<Self, HashError> {
        let params = Params::new(
            params.memory_kib,
            params.iterations,
            params.parallelism,
            None,
        )
        .map_err(HashError::Params)?;
        let random = |e: aws_lc_rs::error::Unspecified| HashError::Hash(e.to_string());
        let dummy_hash = phc_string(
            &params,
            &super::random_bytes::<SALT_BYTES>().map_err(random)?,
            &super::random_bytes::<{ Params::DEFAULT_OUTPUT_LEN }>().map_err(random)?,
        )?;
        Ok(Self {
            params,
            permits: Arc::new(Semaphore::new(permits.max(1))),
            queue,
            waiting: AtomicUsize::new(0),
            shed: AtomicU64::new(0),
            buffers: Arc::default(),
            dummy_hash,
        })
    }

    /// Hashes a new password into a PHC string with a fresh random salt.
    ///
    /// # Errors
    /// When hashing fails or the pool is shut down.
    pub async fn hash(&self, password: Password) -> Result<String, HashError> {
        let ticket = self.admit()?;
        let params = self.params.clone();
        self.run(ticket, move |buffer| {
            new_hash(&params, buffer, password.expose_bytes())
        })
        .await
    }

    /// Takes a place in the queue for a hash to come, or sheds now if `max_waiting` callers
    /// already hold one.
    ///
    /// # Errors
    /// [`HashError::Overloaded`] when the queue is full.
    pub fn admit(&self) -> Result<HashTicket<'_>, HashError> {
        let before = self.waiting.fetch_add(1, Ordering::SeqCst);
        let ticket = HashTicket(&self.waiting);
        if before >= self.queue.max_waiting {
            return Err(self.shed());
        }
        Ok(ticket)
    }

    /// Verifies `password` against `stored`, or against the dummy hash when there is no user,
    /// so both paths do the same work. A match on a hash with outdated parameters returns a
    /// fresh hash to store.
    ///
    /// # Errors
    /// [`HashError::Overloaded`] when the queue is full or the wait too long; when the pool is
    /// shut down. A malformed stored hash is a mismatch, not an error.
    pub async fn verify(
        &self,
        password: Password,
        stored: Option<String>,
    ) -> Result<Verification, HashError> {
        let ticket = self.admit()?;
        self.verify_admitted(ticket, password, stored).await
    }

    /// [`Self::verify`] with a place in the queue taken earlier with [`Self::admit`].
    ///
    /// # Errors
    /// As [`Self::verify`].
    pub async fn verify_admitted(
        &self,
        ticket: HashTicket<'_>,
        password: Password,
        stored: Option<String>,
    ) -> Result<Verification, HashError> {
        let params = self.params.clone();
        let user_exists = stored.is_some();
        let stored = stored.unwrap_or_else(|| self.dummy_hash.clone());
        self.run(ticket, move |buffer| {
            let password = password.expose_bytes();
            let Ok(parsed) = PasswordHash::new(&stored) else {
                return Ok(Verification::Mismatch);
            };
            if !matches(&parsed, buffer, password) || !user_exists {
                return Ok(Verification::Mismatch);
            }
            let current = Params::try_from(&parsed).ok();
            let same_params = current.is_some_and(|p| {
                p.m_cost() == params.m_cost()
                    && p.t_cost() == params.t_cost()
                    && p.p_cost() == params.p_cost()
            }) && parsed.algorithm.as_str() == "argon2id";
            if same_params {
                return Ok(Verification::Match);
            }
            new_hash(&params, buffer, password).map(Verification::MatchRehashed)
        })
        .await
    }

    /// Runs `work` on a blocking thread once a permit is free; `ticket` holds the caller's
    /// place in the queue until then.
    async fn run<T: Send + 'static>(
        &self,
        ticket: HashTicket<'_>,
        work: impl FnOnce(&mut Vec<Block>) -> Result<T, HashError> + Send + 'static,
    ) -> Result<T, HashError> {
        let queued = std::time::Instant::now();
        let permit = match Arc::clone(&self.permits).try_acquire_owned() {
            Ok(permit) => permit,
            Err(tokio::sync::TryAcquireError::Closed) => return Err(HashError::PoolClosed),
            Err(tokio::sync::TryAcquireError::NoPermits) => {
                crate::metrics::argon2_queued(1.0);
                let waited = self.wait_for_permit().await;
                crate::metrics::argon2_queued(-1.0);
                waited?
            }
        };
        drop(ticket);
        crate::metrics::argon2_started(queued.elapsed());
        let buffers = Arc::clone(&self.buffers);
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let started = std::time::Instant::now();
            let mut buffer = buffers.take();
            let result = work(&mut buffer);
            buffers.give_back(buffer);
            crate::metrics::argon2_finished(started.elapsed());
            result
        })
        .await
        .map_err(|_| HashError::PoolClosed)?
    }
}

impl PasswordHasher {
    /// Waits for a permit, at most the queue timeout.
    async fn wait_for_permit(&self) -> Result<tokio::sync::OwnedSemaphorePermit, HashError> {
        match tokio::time::timeout(
            self.queue.timeout,
            Arc::clone(&self.permits).acquire_owned(),
        )
        .await
        {
            Ok(Ok(permit)) => Ok(permit),
            Ok(Err(_)) => Err(HashError::PoolClosed),
            Err(_) => Err(self.shed()),
        }
    }

    fn shed(&self) -> HashError {
        self.shed.fetch_add(1, Ordering::Relaxed);
        HashError::Overloaded
    }

    /// How many hash requests were shed since start.
    pub fn shed_total(&self) -> u64 {
        self.shed.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cheap() -> Argon2Params {
        Argon2Params {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        }
    }

    fn pw(s: &str) -> Password {
        Password::presented(s).unwrap()
    }

    #[test]
    fn hashing_in_pooled_memory_agrees_with_the_argon2_crate() {
        use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
        let mut buffer = Vec::new();
        // Our hashes verify with the crate's verifier...
        let params = Params::new(64, 1, 1, None).unwrap();
        let ours = new_hash(&params, &mut buffer, b"correct horse").unwrap();
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(ours.starts_with("$argon2id$v=19$m=64,t=1,p=1$"));
        Argon2::default()
            .verify_password(b"correct horse", &parsed)
            .unwrap();
        // ...and the crate's, in every variant, match ours exactly when they should, including
        // ones needing more memory than the buffer had.
        for (algorithm, version, m_cost) in [
            (Algorithm::Argon2id, Version::V0x13, 64),
            (Algorithm::Argon2i, Version::V0x10, 128),
            (Algorithm::Argon2d, Version::V0x13, 256),
        ] {
            let params = Params::new(m_cost, 2, 1, None).unwrap();
            let theirs = Argon2::new(algorithm, version, params)
                .hash_password(b"battery staple")
                .unwrap();
            assert!(matches(&theirs, &mut buffer, b"battery staple"));
            assert!(!matches(&theirs, &mut buffer, b"battery stapler"));
            assert!(buffer.len() >= usize::try_from(m_cost).unwrap());
        }
        // A hash without its output or salt never matches.
        let mut cut = PasswordHash::new(&ours).unwrap();
        cut.hash = None;
        assert!(!matches(&cut, &mut buffer, b"correct horse"));
    }

    #[test]
    fn the_dummy_hash_has_the_configured_shape_and_a_random_salt() {
        let a = PasswordHasher::new(cheap(), 1).unwrap().dummy_hash;
        let b = PasswordHasher::new(cheap(), 1).unwrap().dummy_hash;
        // Same parameters as a real hash, so verifying against it costs the same.
        assert!(a.starts_with("$argon2id$v=19$m=64,t=1,p=1$"), "{a}");
        let parsed = PasswordHash::new(&a).unwrap();
        assert_eq!(parsed.hash.unwrap().len(), Params::DEFAULT_OUTPUT_LEN);
        assert_ne!(a, b);
    }

    #[tokio::test]
    async fn buffers_are_reused_and_never_more_than_the_permits() {
        let hasher = PasswordHasher::new(cheap(), 2).unwrap();
        let hashes =
            futures::future::join_all((0..8).map(|_| hasher.hash(pw("correct horse battery"))))
                .await;
        assert!(hashes.iter().all(Result::is_ok));
        let kept = hasher.buffers.0.lock().unwrap().len();
        assert!((1..=2).contains(&kept), "{kept} buffers kept");
    }

    #[tokio::test]
    async fn hashes_verify_and_salts_differ() {
        let hasher = PasswordHasher::new(cheap(), 2).unwrap();
        let a = hasher.hash(pw("correct horse battery")).await.unwrap();
        let b = hasher.hash(pw("correct horse battery")).await.unwrap();
        assert!(a.starts_with("$argon2id$v=19$m=64,t=1,p=1$"));
        assert_ne!(a, b);
        assert_eq!(
            hasher
                .verify(pw("correct horse battery"), Some(a.clone()))
                .await
                .unwrap(),
            Verification::Match
        );
        assert_eq!(
            hasher
                .verify(pw("wrong horse battery"), Some(a))
                .await
                .unwrap(),
            Verification::Mismatch
        );
    }

    #[tokio::test]
    async fn missing_user_never_matches() {
        let hasher = PasswordHasher::new(cheap(), 1).unwrap();
        assert_eq!(
            hasher.verify(pw("anything"), None).await.unwrap(),
            Verification::Mismatch
        );
    }

    #[tokio::test]
    async fn outdated_parameters_are_rehashed_on_match() {
        let old = PasswordHasher::new(cheap(), 1).unwrap();
        let hash = old.hash(pw("correct horse battery")).await.unwrap();
        let new = PasswordHasher::new(
            Argon2Params {
                memory_kib: 128,
                ..cheap()
            },
            1,
        )
        .unwrap();
        match new
            .verify(pw("correct horse battery"), Some(hash))
            .await
            .unwrap()
        {
            Verification::MatchRehashed(h) => assert!(h.starts_with("$argon2id$v=19$m=128,")),
            other => panic!("expected a rehash, got {other:?}"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn queue_sheds_beyond_its_length_and_after_its_timeout() {
        let hasher = Arc::new(
            PasswordHasher::with_queue(
                cheap(),
                1,
                QueueLimits {
                    max_waiting: 2,
                    timeout: Duration::from_secs(2),
                },
            )
            .unwrap(),
        );
        // Hold the only permit so every caller has to queue.
        let held = Arc::clone(&hasher.permits).acquire_owned().await.unwrap();
        let waiters: Vec<_> = (0..2)
            .map(|_| {
                let h = Arc::clone(&hasher);
                tokio::spawn(async move { h.verify(pw("x"), None).await })
            })
            .collect();
        tokio::task::yield_now().await;
        while hasher.waiting.load(Ordering::SeqCst) < 2 {
            tokio::task::yield_now().await;
        }
        // The queue is full: shed at once, and `admit` says so before any work.
        assert!(matches!(
            hasher.verify(pw("x"), None).await,
            Err(HashError::Overloaded)
        ));
        assert!(matches!(hasher.admit(), Err(HashError::Overloaded)));
        // The waiters time out (paused time advances by itself).
        for w in waiters {
            assert!(matches!(w.await.unwrap(), Err(HashError::Overloaded)));
        }
        assert_eq!(hasher.shed_total(), 4);
        drop(hasher.admit().unwrap());
        drop(held);
        assert_eq!(
            hasher.verify(pw("x"), None).await.unwrap(),
            Verification::Mismatch
        );
    }

    #[tokio::test]
    async fn garbage_hash_is_a_mismatch() {
        let hasher = PasswordHasher::new(cheap(), 1).unwrap();
        assert_eq!(
            hasher
                .verify(pw("x"), Some("not a phc string".into()))
                .await
                .unwrap(),
            Verification::Mismatch
        );
    }
}
