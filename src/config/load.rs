//! Loading the configuration layers (defaults, file, environment, flags) and checking that
//! the values make sense, alone and together.

use std::path::Path;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};

use super::{
    Config, ConfigError, KEY_RELOAD_INTERVAL, MAX_CLOCK_SKEW, MAX_REUSE_GRACE,
    MAX_SESSION_LIFETIME, Overrides,
};
use crate::domain::{MAX_CONSECUTIVE_FAILURES, Role};

impl Config {
    /// Loads the layers described in the module docs, reading the environment of this process.
    ///
    /// # Errors
    /// A named file that is missing, a value that does not parse, or values that make no sense
    /// together (see [`Config::validate`]).
    pub fn load(file: Option<&Path>, overrides: &Overrides) -> Result<Self, ConfigError> {
        // Only variables naming a key are read: other AUTHD_* variables (test settings, for
        // instance) are not configuration and must not be rejected as unknown keys.
        let known = Self::keys();
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        match file {
            Some(path) if !path.exists() => return Err(ConfigError::MissingFile(path.into())),
            Some(path) => figment = figment.merge(Toml::file(path)),
            None if Path::new("authd.toml").exists() => {
                figment = figment.merge(Toml::file("authd.toml"));
            }
            None => {}
        }
        let config: Config = figment
            .merge(
                Env::prefixed("AUTHD_").filter(move |key| known.iter().any(|k| key == k.as_str())),
            )
            // `AUTHD_LDAP_URL` is `ldap.url`, and so on for the `[ldap]` section.
            .merge(
                Env::prefixed("AUTHD_LDAP_")
                    .filter(|key| crate::ldap::settings::KEYS.iter().any(|k| key == *k))
                    .map(|key| format!("ldap.{key}").into()),
            )
            .merge(Serialized::defaults(overrides))
            .extract()?;
        config.validate()?;
        Ok(config)
    }

    /// The names of all configuration keys.
    fn keys() -> Vec<String> {
        let mut keys: Vec<String> = match serde_json::to_value(Config::default()) {
            Ok(serde_json::Value::Object(map)) => map.keys().cloned().collect(),
            _ => Vec::new(),
        };
        // A section, not a key: its variables are `AUTHD_LDAP_<key>`.
        keys.retain(|k| k != "ldap");
        // Optional keys are absent from the serialised defaults.
        keys.extend(
            [
                "tls_cert",
                "tls_key",
                "tls_client_ca",
                "password_blocklist",
                "max_connections",
                "max_connections_per_source",
            ]
            .map(String::from),
        );
        keys
    }

    /// # Errors
    /// When a value is out of range or the values contradict each other.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |m: &str| Err(ConfigError::Invalid(m.to_owned()));
        if self.audience.is_empty() || self.audience.iter().any(String::is_empty) {
            return invalid("audience must name at least one non-empty audience");
        }
        if self.issuer.is_empty() {
            return invalid("issuer must not be empty");
        }
        if self.access_token_ttl.is_zero() || self.refresh_token_ttl.is_zero() {
            return invalid("access_token_ttl and refresh_token_ttl must be positive");
        }
        if self.refresh_token_max_lifetime.is_zero() {
            return invalid("refresh_token_max_lifetime must be positive");
        }
        if self.refresh_token_max_lifetime > MAX_SESSION_LIFETIME {
            return invalid(
                "refresh_token_max_lifetime must be at most 30d (NIST SP 800-63B: log in again at least every 30 days)",
            );
        }
        if self.refresh_reuse_grace > MAX_REUSE_GRACE {
            return invalid(
                "refresh_reuse_grace must be at most 2m (it only covers a client retrying after a lost response)",
            );
        }
        if self.clock_skew > MAX_CLOCK_SKEW {
            return invalid(
                "clock_skew must be at most 5m (synchronise the clocks, e.g. with NTP, instead)",
            );
        }
        if self.password_min_length == 0 || self.password_min_length > 64 {
            return invalid("password_min_length must be between 1 and 64");
        }
        if self.database_max_connections == 0 {
            return invalid("database_max_connections must be at least 1");
        }
        if self.purge_interval.is_zero() {
            return invalid("purge_interval must be positive");
        }
        argon2::Params::new(
            self.argon2_memory_kib,
            self.argon2_iterations,
            self.argon2_parallelism,
            None,
        )
        .map_err(|e| ConfigError::Invalid(format!("argon2 parameters: {e}")))?;
        if self.throttle_max_delay.is_zero() || self.throttle_forget_after.is_zero() {
            return invalid("throttle_max_delay and throttle_forget_after must be positive");
        }
        if !(1..=MAX_CONSECUTIVE_FAILURES).contains(&self.throttle_max_failures) {
            return invalid("throttle_max_failures must be between 1 and 100");
        }
        if self.hash_queue_timeout.is_zero() {
            return invalid("hash_queue_timeout must be positive");
        }
        if Role::parse(&self.introspect_role).is_err() {
            return invalid("introspect_role must be a valid role name");
        }
        if self
            .cors_allowed_origins
            .iter()
            .any(|o| o == "*" || http::HeaderValue::from_str(o).is_err() || !o.contains("://"))
        {
            return invalid("cors_allowed_origins must list origins such as https://app.example");
        }
        if Role::parse(&self.admin_role).is_err() {
            return invalid("admin_role must be a valid role name");
        }
        if self.default_client_id.trim().is_empty()
            || self.default_client_id.len() > 128
            || self.default_client_id.chars().any(char::is_control)
        {
            return invalid("default_client_id must be 1 to 128 characters, no control characters");
        }
        if !self.admin_client_subjects.is_empty() && self.tls_client_ca.is_none() {
            return invalid("admin_client_subjects needs tls_client_ca (mTLS)");
        }
        if self.per_source_rate > 0 && self.per_source_burst == 0 {
            return invalid("per_source_burst must be positive when per_source_rate is set");
        }
        if !(1024..=4 * 1024 * 1024).contains(&self.max_message_bytes) {
            return invalid("max_message_bytes must be between 1024 and 4194304");
        }
        crate::domain::AuditRefresh::parse(&self.audit_refresh).map_err(ConfigError::Invalid)?;
        crate::domain::AuditRetention::parse(self.audit_retention, &self.audit_retention_per_event)
            .map_err(ConfigError::Invalid)?;
        if self.request_timeout.is_zero()
            || self.http2_keepalive_interval.is_zero()
            || self.http2_keepalive_timeout.is_zero()
            || self.max_connection_age.is_zero()
            || self.tls_reload_interval.is_zero()
            || self.audit_retention.is_zero()
            || self.maintenance_interval.is_zero()
        {
            return invalid(
                "request_timeout, keep-alive, connection age, reload, retention and maintenance intervals must be positive",
            );
        }
        if self.max_concurrent_streams == 0 {
            return invalid("max_concurrent_streams must be positive");
        }
        if self.max_connections == Some(0) || self.max_connections_per_source == Some(0) {
            return invalid("max_connections and max_connections_per_source must be at least 1");
        }
        if let (Some(max), Some(per_source)) =
            (self.max_connections, self.max_connections_per_source)
            && per_source > max
        {
            return invalid("max_connections_per_source must not exceed max_connections");
        }
        if self.header_read_timeout.is_zero()
            || self.tls_handshake_timeout.is_zero()
            || self.idle_connection_timeout.is_zero()
        {
            return invalid(
                "header_read_timeout, tls_handshake_timeout and idle_connection_timeout must be positive",
            );
        }
        match (&self.tls_cert, &self.tls_key) {
            (Some(_), None) | (None, Some(_)) => {
                return invalid("tls_cert and tls_key must be given together");
            }
            (None, None) if self.tls_client_ca.is_some() => {
                return invalid("tls_client_ca needs tls_cert and tls_key");
            }
            _ => {}
        }
        let min_prepublish = self.jwks_max_age.saturating_add(KEY_RELOAD_INTERVAL);
        if self.key_prepublish() <= min_prepublish {
            return Err(ConfigError::Invalid(format!(
                "key_prepublish must exceed jwks_max_age + {} (the key reload interval), so \
                 every verifier has seen a new key before it signs",
                humantime::format_duration(KEY_RELOAD_INTERVAL)
            )));
        }
        if self.key_rotation_interval <= self.key_prepublish() {
            return invalid("key_rotation_interval must be longer than key_prepublish");
        }
        let mut sources = std::collections::BTreeSet::new();
        for source in &self.identity_sources {
            if !matches!(source.as_str(), "local" | "ldap") || !sources.insert(source) {
                return invalid(
                    "identity_sources must list local and/or ldap, each once, e.g. local,ldap",
                );
            }
        }
        if sources.is_empty() {
            return invalid("identity_sources must name at least one of local, ldap");
        }
        if sources.contains(&"ldap".to_owned()) {
            self.ldap.validate().map_err(ConfigError::Invalid)?;
        }
        if let Some(kek) = &self.key_encryption_key {
            kek.bytes()?;
        }
        Ok(())
    }
}
