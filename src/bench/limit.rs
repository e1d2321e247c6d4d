//! The physical limit of logins: how many argon2id verifications one core does per second at
//! the configured parameters, times the cores. Measured by the load generator itself, just
//! before a `login` run, so the ratio compares figures taken on the same machine in the same
//! run (the server must read the same configuration for the ratio to mean anything).

use std::time::{Duration, Instant};

use crate::crypto::password::{Argon2Params, HashError, PasswordHasher};
use crate::domain::Password;

/// Verifications timed, at least; more while less than [`MIN_TIME`] has passed.
const MIN_VERIFICATIONS: u32 = 10;
const MIN_TIME: Duration = Duration::from_millis(500);

/// Single-core argon2id throughput, and the cores it may be multiplied by.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoginLimit {
    pub params: Argon2Params,
    pub single_core_per_s: f64,
    pub cores: usize,
}

impl LoginLimit {
    /// Logins per second the machine could do if it did nothing but argon2id.
    pub fn logins_per_s(&self) -> f64 {
        self.single_core_per_s * self.cores as f64
    }
}

/// Times verifications of a correct password one at a time (one permit, so one core).
///
/// # Errors
/// When the parameters are invalid or hashing fails.
pub async fn measure_login_limit(params: Argon2Params) -> Result<LoginLimit, HashError> {
    let hasher = PasswordHasher::new(params, 1)?;
    let phc = hasher.hash(password()?).await?;
    let started = Instant::now();
    let mut done = 0u32;
    while done < MIN_VERIFICATIONS || started.elapsed() < MIN_TIME {
        hasher.verify(password()?, Some(phc.clone())).await?;
        done += 1;
    }
    Ok(LoginLimit {
        params,
        single_core_per_s: f64::from(done) / started.elapsed().as_secs_f64(),
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
    })
}

fn password() -> Result<Password, HashError> {
    Password::presented("correct horse battery staple")
        .map_err(|e| HashError::Hash(format!("benchmark password rejected: {e}")))
}
