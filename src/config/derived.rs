//! Settings derived from the configuration for the other layers: throttling, hashing, TLS,
//! key lifecycle, password policy, store options and token settings.

use std::net::IpAddr;
use std::time::Duration;

use super::{Config, ConfigError, KEY_RELOAD_INTERVAL};
use crate::crypto::password::{Argon2Params, QueueLimits};
use crate::domain::{
    KeyPolicy, PasswordBlocklist, PasswordPolicy, RefreshPolicy, Role, TOKEN_CLOCK_SKEW,
    ThrottlePolicy,
};
use crate::service::TokenSettings;
use crate::store::StoreOptions;

impl Config {
    pub fn throttle_policy(&self) -> ThrottlePolicy {
        ThrottlePolicy {
            free_failures: self.throttle_free_failures,
            max_delay: self.throttle_max_delay,
            forget_after: self.throttle_forget_after,
            max_failures: self.throttle_max_failures,
        }
    }

    pub fn hash_queue(&self) -> QueueLimits {
        QueueLimits {
            max_waiting: self.hash_queue_max,
            timeout: self.hash_queue_timeout,
        }
    }

    /// The TLS files, when TLS is configured.
    pub fn tls(&self) -> Option<crate::tls::TlsFiles> {
        match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Some(crate::tls::TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
                client_ca: self.tls_client_ca.clone(),
            }),
            _ => None,
        }
    }

    /// Whether `trusted_proxies` contains `ip`.
    pub fn is_trusted_proxy(&self, ip: IpAddr) -> bool {
        self.trusted_proxies.iter().any(|net| net.contains(&ip))
    }

    /// How long a new key is published before it signs: `key_prepublish` when set, else
    /// `access_token_ttl + jwks_max_age`, but never less than `jwks_max_age` plus twice the
    /// key reload interval (replicas see a new key up to one interval late).
    pub fn key_prepublish(&self) -> Duration {
        self.key_prepublish.unwrap_or_else(|| {
            let floor = self
                .jwks_max_age
                .saturating_add(KEY_RELOAD_INTERVAL.saturating_mul(2));
            self.access_token_ttl
                .saturating_add(self.jwks_max_age)
                .max(floor)
        })
    }

    /// The key lifecycle settings.
    pub fn key_policy(&self) -> KeyPolicy {
        KeyPolicy {
            prepublish: self.key_prepublish(),
            rotation_interval: self.key_rotation_interval,
            token_lifetime: self
                .access_token_ttl
                .saturating_add(TOKEN_CLOCK_SKEW.max(self.clock_skew)),
        }
    }

    /// Where verifiers find the keys: `{issuer}/.well-known/jwks.json`.
    pub fn jwks_uri(&self) -> String {
        format!(
            "{}/.well-known/jwks.json",
            self.issuer.trim_end_matches('/')
        )
    }

    /// The rules for new passwords, with the blocklist read from `password_blocklist`.
    ///
    /// # Errors
    /// When the blocklist file cannot be read.
    pub fn password_policy(&self) -> Result<PasswordPolicy, ConfigError> {
        let mut policy = PasswordPolicy::new(self.password_min_length);
        if let Some(path) = &self.password_blocklist {
            let text = std::fs::read_to_string(path).map_err(|e| {
                ConfigError::Invalid(format!(
                    "cannot read password_blocklist {}: {e}",
                    path.display()
                ))
            })?;
            policy.blocklist = std::sync::Arc::new(PasswordBlocklist::from_lines(&text));
        }
        Ok(policy)
    }

    pub fn argon2(&self) -> Argon2Params {
        Argon2Params {
            memory_kib: self.argon2_memory_kib,
            iterations: self.argon2_iterations,
            parallelism: self.argon2_parallelism,
        }
    }

    /// Permits for the hashing pool: the configured number, or the number of CPU cores.
    pub fn hash_permits(&self) -> usize {
        match self.hash_permits {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
    }

    pub fn store_options(&self) -> StoreOptions {
        StoreOptions {
            max_connections: self.database_max_connections,
        }
    }

    /// The role administrators hold.
    ///
    /// # Errors
    /// When `admin_role` is not a valid role name.
    pub fn admin_role(&self) -> Result<Role, ConfigError> {
        Role::parse(&self.admin_role)
            .map_err(|_| ConfigError::Invalid("admin_role must be a valid role name".into()))
    }

    pub fn token_settings(&self) -> TokenSettings {
        TokenSettings {
            issuer: self.issuer.clone(),
            audience: self.audience.clone(),
            access_ttl: self.access_token_ttl,
            clock_skew: self.clock_skew,
            refresh: RefreshPolicy {
                idle_ttl: self.refresh_token_ttl,
                max_lifetime: self.refresh_token_max_lifetime,
                reuse_grace: self.refresh_reuse_grace,
            },
            throttle: self.throttle_policy(),
            per_source_rate: self.per_source_rate,
            per_source_burst: self.per_source_burst,
            introspect_role: if self.introspection_open {
                None
            } else {
                Role::parse(&self.introspect_role).ok()
            },
            audit_refresh: crate::domain::AuditRefresh::parse(&self.audit_refresh)
                .unwrap_or(crate::domain::AuditRefresh::None),
            default_client_id: self.default_client_id.clone(),
        }
    }

    /// How long audit events are kept, per event class (`audit_retention` and
    /// `audit_retention_per_event`, checked when the configuration loads).
    pub fn audit_retention_policy(&self) -> crate::domain::AuditRetention {
        crate::domain::AuditRetention::parse(self.audit_retention, &self.audit_retention_per_event)
            .unwrap_or_else(|_| self.audit_retention.into())
    }
}
