//! The physical limit of logins: how many argon2id verifications one core does per second at
//! the configured parameters, times the cores. Measured by the load generator itself, just
//! before a `login` run, so the ratio compares figures taken on the same machine in the same
//! run (the server must read the same configuration for the ratio to mean anything).
//!
//! It also measures what all cores do *together*, one verification on each at once. The two
//! differ when concurrent verifications slow each other down: each walks its own `m` KiB, and
//! when `cores × m` no longer fits in the shared last-level cache, every one of them waits on
//! memory. Logins can reach the second figure, not always the first.

use std::sync::Arc;
use std::time::{Duration, Instant};

use authd::crypto::password::{Argon2Params, HashError, PasswordHasher};
use authd::domain::Password;

/// Verifications timed, at least; more while less than [`MIN_TIME`] has passed.
const MIN_VERIFICATIONS: u32 = 10;
const MIN_TIME: Duration = Duration::from_secs(1);

/// Single-core argon2id throughput, and the cores it may be multiplied by.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoginLimit {
    pub params: Argon2Params,
    pub single_core_per_s: f64,
    /// Verifications/s of all cores together, one verification on each at once.
    pub all_cores_per_s: f64,
    pub cores: usize,
}

impl LoginLimit {
    /// Logins per second the machine could do if it did nothing but argon2id.
    pub fn logins_per_s(&self) -> f64 {
        self.single_core_per_s * self.cores as f64
    }
}

/// Times verifications of a correct password one at a time (one permit, so one core), then
/// one per core at once.
///
/// # Errors
/// When the parameters are invalid or hashing fails.
pub async fn measure_login_limit(params: Argon2Params) -> Result<LoginLimit, HashError> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    Ok(LoginLimit {
        params,
        single_core_per_s: verifications_per_s(params, 1).await?,
        all_cores_per_s: verifications_per_s(params, cores).await?,
        cores,
    })
}

/// Verifications/s with `parallel` of them running at once, each in a loop of its own for at
/// least [`MIN_TIME`] and [`MIN_VERIFICATIONS`].
async fn verifications_per_s(params: Argon2Params, parallel: usize) -> Result<f64, HashError> {
    let hasher = Arc::new(PasswordHasher::new(params, parallel)?);
    let phc = hasher.hash(password()?).await?;
    let started = Instant::now();
    let mut loops = tokio::task::JoinSet::new();
    for _ in 0..parallel {
        let (hasher, phc) = (Arc::clone(&hasher), phc.clone());
        loops.spawn(async move {
            let mut done = 0u32;
            while done < MIN_VERIFICATIONS || started.elapsed() < MIN_TIME {
                hasher.verify(password()?, Some(phc.clone())).await?;
                done += 1;
            }
            Ok::<_, HashError>(done)
        });
    }
    let mut done = 0u32;
    while let Some(looped) = loops.join_next().await {
        done += looped.map_err(|e| HashError::Hash(format!("verification task: {e}")))??;
    }
    Ok(f64::from(done) / started.elapsed().as_secs_f64())
}

fn password() -> Result<Password, HashError> {
    Password::presented("correct horse battery staple")
        .map_err(|e| HashError::Hash(format!("benchmark password rejected: {e}")))
}
