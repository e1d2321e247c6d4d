//! Configuration, layered: built-in defaults < TOML file < `AUTHD_*` environment < flags.
//!
//! The file is `--config PATH`, or `authd.toml` in the working directory when present. Every
//! subcommand reads the same configuration, so the CLI acts on the same database as `serve`.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

use crate::crypto::keys::SigningAlgorithm;
use crate::crypto::password::{Argon2Params, QueueLimits};
use crate::domain::{
    KeyPolicy, MAX_CONSECUTIVE_FAILURES, PasswordBlocklist, PasswordPolicy, RefreshPolicy, Role,
    TOKEN_CLOCK_SKEW, ThrottlePolicy,
};
use crate::service::TokenSettings;
use crate::store::StoreOptions;
use secrecy::{ExposeSecret, SecretString};

/// The longest a session may last from its login: NIST SP 800-63B-4 asks for
/// reauthentication at least every 30 days at AAL1.
pub const MAX_SESSION_LIFETIME: Duration = Duration::from_secs(30 * 24 * 3600);

/// The longest `refresh_reuse_grace`: the window exists for a client retrying after a lost
/// response, which takes seconds; a longer one would let a stolen token be replayed unnoticed.
pub const MAX_REUSE_GRACE: Duration = Duration::from_secs(120);

/// Everything authd can be configured with. See README.md for the table of keys.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub database_url: String,
    pub grpc_addr: SocketAddr,
    /// The HTTP side port: JWKS, discovery, health and metrics.
    pub http_addr: SocketAddr,
    pub issuer: String,
    #[serde(with = "list")]
    pub audience: Vec<String>,
    #[serde(with = "duration")]
    pub access_token_ttl: Duration,
    /// Idle timeout: a refresh token unused this long expires.
    #[serde(with = "duration")]
    pub refresh_token_ttl: Duration,
    /// Absolute lifetime of a refresh family, from login.
    #[serde(with = "duration")]
    pub refresh_token_max_lifetime: Duration,
    #[serde(with = "duration")]
    pub refresh_reuse_grace: Duration,
    pub password_min_length: usize,
    /// A file of common passwords, one per line, that `user add` and `user set-password`
    /// refuse (compared normalised and in any case).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_blocklist: Option<PathBuf>,
    pub argon2_memory_kib: u32,
    pub argon2_iterations: u32,
    pub argon2_parallelism: u32,
    /// How many password hashes may run at once; 0 means one per CPU core.
    pub hash_permits: usize,
    pub signing_algorithm: SigningAlgorithm,
    /// The most connections one replica holds to the database server (PostgreSQL).
    pub database_max_connections: u32,
    /// How often housekeeping deletes expired tokens and ended families.
    #[serde(with = "duration")]
    pub purge_interval: Duration,

    // --- abuse resistance
    /// Consecutive login failures per username allowed before delays start.
    pub throttle_free_failures: u32,
    /// The longest delay between login attempts of one username.
    #[serde(with = "duration")]
    pub throttle_max_delay: Duration,
    /// A failure counter untouched this long is forgotten and purged (a locked one is kept).
    #[serde(with = "duration")]
    pub throttle_forget_after: Duration,
    /// Consecutive login failures per username that lock it until `authd user unlock`
    /// (1 to 100: NIST SP 800-63B-4 allows no more than 100).
    pub throttle_max_failures: u32,
    /// Logins that may be in progress ahead of a hashing permit, counted from arrival (before
    /// the throttle's database work); more are refused with UNAVAILABLE at once.
    pub hash_queue_max: usize,
    /// The longest a login waits for a hashing permit before being refused.
    #[serde(with = "duration")]
    pub hash_queue_timeout: Duration,
    /// `auth.v1` requests (every RPC) per second per source address (0 disables).
    pub per_source_rate: u32,
    /// Burst allowed above the rate per source address.
    pub per_source_burst: u32,
    /// The role a caller of `Introspect` needs (RFC 7662 §2.1: the endpoint authenticates its
    /// callers): its API key or active access token (`authorization: Bearer …`) must carry it.
    pub introspect_role: String,
    /// `true`: `Introspect` answers anyone, without a credential (the behaviour before issue 16).
    pub introspection_open: bool,
    /// The role an access token (and its user, now) must hold to call `auth.v1.AdminService`.
    pub admin_role: String,
    /// Subjects of mTLS client certificates (RFC 4514, as `CN=ops, O=Example`) allowed to call
    /// `auth.v1.AdminService` without a token; needs `tls_client_ca`.
    #[serde(default)]
    pub admin_client_subjects: Vec<String>,
    /// Proxies (CIDRs) whose `x-forwarded-for` is believed.
    #[serde(with = "net_list")]
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Whether `POST /oauth2/token` accepts the resource-owner password grant. Off by default:
    /// RFC 9700 §2.4 says it must not be used; first-party apps log in with the `Token` RPC or
    /// `POST /v1/auth/token`.
    pub oauth2_password_grant: bool,
    /// Browser origins (`https://app.example.com`) allowed to call the API cross-origin:
    /// gRPC-Web on the gRPC port and the JSON and OAuth 2.0 routes on the HTTP port. Empty (the
    /// default): no cross-origin access.
    #[serde(with = "list")]
    pub cors_allowed_origins: Vec<String>,
    /// Whether the admin web console is served at `/admin/` on the HTTP port (on by default:
    /// it admits only administrators, as the admin API does; `false` removes its routes).
    pub console_enabled: bool,

    // --- server limits
    /// Largest gRPC message accepted, in bytes.
    pub max_message_bytes: usize,
    /// Deadline for handling one request.
    #[serde(with = "duration")]
    pub request_timeout: Duration,
    #[serde(with = "duration")]
    pub http2_keepalive_interval: Duration,
    #[serde(with = "duration")]
    pub http2_keepalive_timeout: Duration,
    /// Concurrent HTTP/2 streams per connection.
    pub max_concurrent_streams: u32,
    /// Connections are closed (gracefully) after this long.
    #[serde(with = "duration")]
    pub max_connection_age: Duration,

    // --- connections (see `listener`)
    /// Connections each listener (gRPC, HTTP) holds at once; absent: sized from the open-file
    /// limit (see `listener::capacity`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<usize>,
    /// Connections one source address (an IPv6 /64) holds at once on each listener; absent:
    /// an eighth of `max_connections`. Peers in `trusted_proxies` are exempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connections_per_source: Option<usize>,
    /// How long a client may take to send its first byte (any listener) and a request's
    /// headers (HTTP/1, also between requests on a kept-alive connection).
    #[serde(with = "duration")]
    pub header_read_timeout: Duration,
    /// How long a client may take to complete the TLS handshake.
    #[serde(with = "duration")]
    pub tls_handshake_timeout: Duration,
    /// A gRPC connection with no request in flight for this long is closed.
    #[serde(with = "duration")]
    pub idle_connection_timeout: Duration,

    // --- TLS
    /// PEM certificate chain; with `tls_key`, enables TLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_key: Option<PathBuf>,
    /// PEM CA certificates; when set, clients must present a certificate signed by one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_client_ca: Option<PathBuf>,
    /// How often the TLS files are checked for changes.
    #[serde(with = "duration")]
    pub tls_reload_interval: Duration,

    // --- audit trail and housekeeping
    /// How long audit events are kept.
    #[serde(with = "duration")]
    pub audit_retention: Duration,
    /// Which routine rotations are audited: `all`, `none` or `sample:N`
    /// ([`crate::domain::AuditRefresh`]).
    pub audit_refresh: String,
    /// How often expired counters and audit events are purged.
    #[serde(with = "duration")]
    pub maintenance_interval: Duration,
    /// How long verifiers may cache the JWKS (`Cache-Control: max-age`).
    #[serde(with = "duration")]
    pub jwks_max_age: Duration,
    /// How long a new key is published before it signs; `None` means the default,
    /// see [`Config::key_prepublish`].
    #[serde(default, with = "optional_duration")]
    pub key_prepublish: Option<Duration>,
    /// How often a new signing key is rotated in automatically.
    #[serde(with = "duration")]
    pub key_rotation_interval: Duration,
    /// 32 random bytes, base64: encrypts private signing keys at rest (AES-256-GCM).
    #[serde(default)]
    pub key_encryption_key: Option<KeyEncryptionKey>,
    /// Where passwords are checked, in order: `local` (the database) and `ldap`.
    #[serde(default = "local_only", with = "list")]
    pub identity_sources: Vec<String>,
    /// The directory, when `identity_sources` names `ldap` (`[ldap]`, `AUTHD_LDAP_*`).
    #[serde(default)]
    pub ldap: crate::ldap::LdapSettings,
}

fn local_only() -> Vec<String> {
    vec!["local".into()]
}

/// The key that encrypts private signing keys at rest. Never printed: `Debug` and `Serialize`
/// show `<redacted>`.
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct KeyEncryptionKey(SecretString);

impl KeyEncryptionKey {
    pub fn new(base64: impl Into<String>) -> Self {
        Self(SecretString::from(base64.into()))
    }

    /// The 32 key bytes.
    ///
    /// # Errors
    /// When the value is not base64 (standard or URL-safe, padding optional) of exactly 32 bytes.
    pub fn bytes(&self) -> Result<zeroize::Zeroizing<[u8; 32]>, ConfigError> {
        use base64::Engine;
        use base64::engine::general_purpose::{STANDARD, URL_SAFE};
        let text = self.0.expose_secret().trim().trim_end_matches('=');
        let text = format!("{text}{}", "=".repeat((4 - text.len() % 4) % 4));
        let decoded = zeroize::Zeroizing::new(
            STANDARD
                .decode(&text)
                .or_else(|_| URL_SAFE.decode(&text))
                .map_err(|_| invalid_kek())?,
        );
        let mut out = zeroize::Zeroizing::new([0u8; 32]);
        if decoded.len() != 32 {
            return Err(invalid_kek());
        }
        out.copy_from_slice(&decoded);
        Ok(out)
    }
}

fn invalid_kek() -> ConfigError {
    ConfigError::Invalid("key_encryption_key must be 32 random bytes, base64-encoded".into())
}

impl std::fmt::Debug for KeyEncryptionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

impl PartialEq for KeyEncryptionKey {
    fn eq(&self, other: &Self) -> bool {
        use subtle::ConstantTimeEq;
        bool::from(
            self.0
                .expose_secret()
                .as_bytes()
                .ct_eq(other.0.expose_secret().as_bytes()),
        )
    }
}

impl Serialize for KeyEncryptionKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("<redacted>")
    }
}

/// How often every process reloads the signing keys from the database, so keys created by
/// another replica (or `authd keys rotate`) are picked up without a restart.
pub const KEY_RELOAD_INTERVAL: Duration = Duration::from_secs(60);

impl Default for Config {
    fn default() -> Self {
        let argon2 = Argon2Params::default();
        Self {
            database_url: "sqlite://authd.db".into(),
            grpc_addr: SocketAddr::from(([127, 0, 0, 1], 50051)),
            issuer: "http://localhost:8080".into(),
            audience: vec!["authd".into()],
            access_token_ttl: Duration::from_secs(15 * 60),
            refresh_token_ttl: Duration::from_secs(14 * 24 * 3600),
            refresh_token_max_lifetime: MAX_SESSION_LIFETIME,
            refresh_reuse_grace: Duration::from_secs(10),
            password_min_length: 15,
            password_blocklist: None,
            argon2_memory_kib: argon2.memory_kib,
            argon2_iterations: argon2.iterations,
            argon2_parallelism: argon2.parallelism,
            hash_permits: 0,
            signing_algorithm: SigningAlgorithm::ES256,
            database_max_connections: 10,
            purge_interval: Duration::from_secs(10 * 60),
            throttle_free_failures: 5,
            throttle_max_delay: Duration::from_secs(15 * 60),
            throttle_forget_after: Duration::from_secs(24 * 3600),
            throttle_max_failures: MAX_CONSECUTIVE_FAILURES,
            hash_queue_max: 64,
            hash_queue_timeout: Duration::from_secs(2),
            per_source_rate: 10,
            per_source_burst: 20,
            introspect_role: "introspector".into(),
            introspection_open: false,
            admin_role: "admin".into(),
            admin_client_subjects: Vec::new(),
            trusted_proxies: Vec::new(),
            oauth2_password_grant: false,
            cors_allowed_origins: Vec::new(),
            console_enabled: true,
            max_message_bytes: 16 * 1024,
            request_timeout: Duration::from_secs(10),
            http2_keepalive_interval: Duration::from_secs(30),
            http2_keepalive_timeout: Duration::from_secs(10),
            max_concurrent_streams: 64,
            max_connection_age: Duration::from_secs(3600),
            max_connections: None,
            max_connections_per_source: None,
            header_read_timeout: Duration::from_secs(10),
            tls_handshake_timeout: Duration::from_secs(10),
            idle_connection_timeout: Duration::from_secs(5 * 60),
            tls_cert: None,
            tls_key: None,
            tls_client_ca: None,
            tls_reload_interval: Duration::from_secs(10),
            audit_retention: Duration::from_secs(90 * 24 * 3600),
            audit_refresh: "none".into(),
            maintenance_interval: Duration::from_secs(60),
            http_addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            jwks_max_age: Duration::from_secs(5 * 60),
            key_prepublish: None,
            key_rotation_interval: Duration::from_secs(30 * 24 * 3600),
            key_encryption_key: None,
            identity_sources: local_only(),
            ldap: crate::ldap::LdapSettings::default(),
        }
    }
}

/// Every key as serialised (the key encryption key shows `<redacted>`), with the password of
/// the database URL redacted.
impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut shown = serde_json::to_value(self).map_err(|_| std::fmt::Error)?;
        if let Some(url) = shown.get_mut("database_url") {
            *url = redact_url(&self.database_url).into();
        }
        write!(f, "Config {shown}")
    }
}

/// `url` with any password in it replaced by `<redacted>`: the user-info password
/// (`postgres://user:secret@host/db`) and a `password=` parameter. For `Debug` output and
/// messages; never for connecting.
pub fn redact_url(url: &str) -> String {
    let mut shown = url.to_owned();
    if let Some(scheme_end) = shown.find("://") {
        let authority_start = scheme_end + 3;
        let authority_end = shown[authority_start..]
            .find(['/', '?', '#'])
            .map_or(shown.len(), |i| authority_start + i);
        if let Some(at) = shown[authority_start..authority_end].rfind('@') {
            let user_info = authority_start..authority_start + at;
            if let Some(colon) = shown[user_info.clone()].find(':') {
                shown.replace_range(user_info.start + colon + 1..user_info.end, "<redacted>");
            }
        }
    }
    if let Some(query_start) = shown.find('?') {
        let (base, query) = shown.split_at(query_start + 1);
        let query: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((key, _)) if key.eq_ignore_ascii_case("password") => {
                    format!("{key}=<redacted>")
                }
                _ => pair.to_owned(),
            })
            .collect();
        shown = format!("{base}{}", query.join("&"));
    }
    shown
}

/// Values given as command-line flags; only those set override the other layers.
#[derive(Default, Clone, Serialize)]
pub struct Overrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grpc_addr: Option<SocketAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_addr: Option<SocketAddr>,
}

impl std::fmt::Debug for Overrides {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Overrides")
            .field(
                "database_url",
                &self.database_url.as_deref().map(redact_url),
            )
            .field("grpc_addr", &self.grpc_addr)
            .field("http_addr", &self.http_addr)
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration file {0} does not exist")]
    MissingFile(PathBuf),
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

impl From<figment::Error> for ConfigError {
    fn from(e: figment::Error) -> Self {
        Self::Invalid(e.to_string())
    }
}

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
            token_lifetime: self.access_token_ttl.saturating_add(TOKEN_CLOCK_SKEW),
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
        }
    }
}

/// Durations as humans write them: `15m`, `30d`, `0s`, `1h 30m`; a bare number is seconds.
pub(crate) mod duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer, de};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Seconds(u64),
        Text(String),
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        match Raw::deserialize(d)? {
            Raw::Seconds(s) => Ok(Duration::from_secs(s)),
            Raw::Text(t) => humantime::parse_duration(t.trim()).map_err(|e| {
                de::Error::custom(format!(
                    "invalid duration {t:?} ({e}); use e.g. 15m, 14d, 0s"
                ))
            }),
        }
    }
}

/// Networks as CIDRs (`10.0.0.0/8`) or bare addresses, in an array or a comma-separated string.
mod net_list {
    use ipnet::IpNet;
    use serde::{Deserializer, Serializer, de};

    pub fn serialize<S: Serializer>(v: &[IpNet], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(v.iter().map(ToString::to_string))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<IpNet>, D::Error> {
        super::list::deserialize(d)?
            .iter()
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse::<IpNet>()
                    .or_else(|_| s.parse::<std::net::IpAddr>().map(IpNet::from))
                    .map_err(|_| {
                        de::Error::custom(format!(
                            "invalid network {s:?}; use a CIDR such as 10.0.0.0/8"
                        ))
                    })
            })
            .collect()
    }
}

/// An optional duration; absent or `null` is `None`.
mod optional_duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => super::duration::serialize(d, s),
            None => s.serialize_none(),
        }
    }

    #[derive(Deserialize)]
    struct Wrapped(#[serde(with = "super::duration")] Duration);

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        Ok(Option::<Wrapped>::deserialize(d)?.map(|w| w.0))
    }
}

/// A list given either as an array (TOML) or as a comma-separated string (environment).
pub(crate) mod list {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(v: &[String], s: S) -> Result<S::Ok, S::Error> {
        v.serialize(s)
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        List(Vec<String>),
        Text(String),
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
        Ok(match Raw::deserialize(d)? {
            Raw::List(v) => v,
            Raw::Text(t) => t.split(',').map(|s| s.trim().to_owned()).collect(),
        })
    }
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment::Jail's closures return figment::Error
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_documentation() {
        let c = Config::default();
        assert_eq!(c.database_url, "sqlite://authd.db");
        assert_eq!(c.grpc_addr.to_string(), "127.0.0.1:50051");
        assert_eq!(c.access_token_ttl, Duration::from_secs(900));
        assert_eq!(c.refresh_reuse_grace, Duration::from_secs(10));
        assert_eq!(c.database_max_connections, 10);
        assert_eq!(c.purge_interval, Duration::from_secs(600));
        assert_eq!(
            (
                c.argon2_memory_kib,
                c.argon2_iterations,
                c.argon2_parallelism
            ),
            (19456, 2, 1)
        );
        assert_eq!(
            (
                c.throttle_free_failures,
                c.throttle_max_delay,
                c.throttle_max_failures
            ),
            (5, Duration::from_secs(900), 100)
        );
        assert_eq!(
            (c.hash_queue_max, c.hash_queue_timeout),
            (64, Duration::from_secs(2))
        );
        assert_eq!((c.per_source_rate, c.per_source_burst), (10, 20));
        assert_eq!(c.max_message_bytes, 16 * 1024);
        assert_eq!(c.request_timeout, Duration::from_secs(10));
        assert_eq!(c.audit_retention, Duration::from_secs(90 * 24 * 3600));
        assert_eq!(c.audit_refresh, "none");
        assert!(c.tls().is_none() && c.trusted_proxies.is_empty());
        c.validate().unwrap();
    }

    #[test]
    fn layers_apply_in_order() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "authd.toml",
                "issuer = \"https://file\"\naccess_token_ttl = \"5m\"\naudience = [\"a\", \"b\"]\n",
            )?;
            jail.set_env("AUTHD_ACCESS_TOKEN_TTL", "1h 30m");
            jail.set_env("AUTHD_DATABASE_URL", "sqlite://env.db");
            jail.set_env("AUTHD_REFRESH_REUSE_GRACE", "0s");
            jail.set_env("AUTHD_DATABASE_MAX_CONNECTIONS", "3");
            jail.set_env("AUTHD_PURGE_INTERVAL", "90s");
            let overrides = Overrides {
                database_url: Some("sqlite://flag.db".into()),
                grpc_addr: None,
                http_addr: None,
            };
            let c = Config::load(None, &overrides).map_err(|e| e.to_string())?;
            assert_eq!(c.issuer, "https://file");
            assert_eq!(c.audience, vec!["a", "b"]);
            assert_eq!(c.access_token_ttl, Duration::from_secs(5400));
            assert_eq!(c.refresh_reuse_grace, Duration::ZERO);
            assert_eq!(c.database_url, "sqlite://flag.db");
            assert_eq!(c.store_options().max_connections, 3);
            assert_eq!(c.purge_interval, Duration::from_secs(90));
            Ok(())
        });
    }

    #[test]
    fn env_audience_is_a_comma_list() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("AUTHD_AUDIENCE", "api, admin");
            let c = Config::load(None, &Overrides::default()).map_err(|e| e.to_string())?;
            assert_eq!(c.audience, vec!["api", "admin"]);
            Ok(())
        });
    }

    #[test]
    fn abuse_settings_come_from_the_environment() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("AUTHD_PER_SOURCE_RATE", "0");
            jail.set_env("AUTHD_PER_SOURCE_BURST", "7");
            jail.set_env("AUTHD_TRUSTED_PROXIES", "10.0.0.0/8, 192.0.2.1");
            jail.set_env("AUTHD_TLS_CERT", "/etc/authd/cert.pem");
            jail.set_env("AUTHD_TLS_KEY", "/etc/authd/key.pem");
            let c = Config::load(None, &Overrides::default()).map_err(|e| e.to_string())?;
            assert_eq!((c.per_source_rate, c.per_source_burst), (0, 7));
            assert!(c.is_trusted_proxy("10.1.2.3".parse().unwrap()));
            assert!(c.is_trusted_proxy("192.0.2.1".parse().unwrap()));
            assert!(!c.is_trusted_proxy("192.0.2.2".parse().unwrap()));
            assert!(c.tls().is_some());
            Ok(())
        });
        let e = load_error("AUTHD_TLS_CERT", "/etc/authd/cert.pem");
        assert!(e.contains("together"), "{e}");
    }

    /// The error of loading the configuration with `key` = `value` in the environment.
    fn load_error(key: &str, value: &str) -> String {
        let mut error = String::new();
        figment::Jail::expect_with(|jail| {
            jail.set_env(key, value);
            error = Config::load(None, &Overrides::default())
                .unwrap_err()
                .to_string();
            Ok(())
        });
        error
    }

    #[test]
    fn debug_output_redacts_the_database_password() {
        for (url, shown) in [
            ("sqlite://authd.db", "sqlite://authd.db"),
            (
                "postgres://authd:pw@db.internal:5432/authd?sslmode=require",
                "postgres://authd:<redacted>@db.internal:5432/authd?sslmode=require",
            ),
            ("postgres://authd@db/authd", "postgres://authd@db/authd"),
            (
                "postgres://db/authd?user=a&Password=pw&sslmode=verify-full",
                "postgres://db/authd?user=a&Password=<redacted>&sslmode=verify-full",
            ),
            ("postgres://a:p@ss@db/x", "postgres://a:<redacted>@db/x"),
        ] {
            assert_eq!(redact_url(url), shown);
        }
        let config = Config {
            database_url: "postgres://authd:hunter2-S3CRET@db/authd".into(),
            ..Config::default()
        };
        let debug = format!("{config:?}");
        assert!(!debug.contains("S3CRET"), "{debug}");
        assert!(debug.contains("grpc_addr"), "{debug}");
        let overrides = Overrides {
            database_url: Some(config.database_url.clone()),
            ..Overrides::default()
        };
        assert!(!format!("{overrides:?}").contains("S3CRET"));
    }

    #[test]
    fn bad_values_are_clear_errors() {
        let e = load_error("AUTHD_ACCESS_TOKEN_TTL", "soon");
        assert!(e.contains("invalid duration"), "{e}");
        load_error("AUTHD_SIGNING_ALGORITHM", "RS256");
        figment::Jail::expect_with(|jail| {
            jail.set_env("AUTHD_INTROSPECT_ROLE", "introspector");
            let c = Config::load(None, &Overrides::default()).unwrap();
            assert_eq!(c.introspect_role, "introspector");
            Ok(())
        });
        let e = load_error("AUTHD_REFRESH_TOKEN_MAX_LIFETIME", "31d");
        assert!(e.contains("at most 30d"), "{e}");
        let e = load_error("AUTHD_AUDIT_REFRESH", "sample:0");
        assert!(e.contains("use all, none or sample:N"), "{e}");
        // Issue 16: the grace window had no upper bound.
        let e = load_error("AUTHD_REFRESH_REUSE_GRACE", "121s");
        assert!(e.contains("refresh_reuse_grace must be at most 2m"), "{e}");
        let e = load_error("AUTHD_INTROSPECT_ROLE", "Not A Role");
        assert!(e.contains("introspect_role"), "{e}");
        // NIST allows at most 100 consecutive failures; 0 would lock every name at once.
        for bad in ["0", "101"] {
            let e = load_error("AUTHD_THROTTLE_MAX_FAILURES", bad);
            assert!(e.contains("throttle_max_failures"), "{e}");
        }
        let missing = Config::load(
            Some(Path::new("/nonexistent/authd.toml")),
            &Overrides::default(),
        );
        assert!(matches!(missing, Err(ConfigError::MissingFile(_))));
    }

    #[test]
    fn connection_settings_load_and_are_checked() {
        let c = Config::default();
        assert_eq!(
            (c.max_connections, c.max_connections_per_source),
            (None, None)
        );
        assert_eq!(
            (
                c.header_read_timeout,
                c.tls_handshake_timeout,
                c.idle_connection_timeout
            ),
            (
                Duration::from_secs(10),
                Duration::from_secs(10),
                Duration::from_secs(300)
            )
        );
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "authd.toml",
                "max_connections = 500\nheader_read_timeout = \"3s\"\n",
            )?;
            jail.set_env("AUTHD_MAX_CONNECTIONS_PER_SOURCE", "20");
            jail.set_env("AUTHD_IDLE_CONNECTION_TIMEOUT", "1m");
            let c = Config::load(None, &Overrides::default()).map_err(|e| e.to_string())?;
            assert_eq!(
                (c.max_connections, c.max_connections_per_source),
                (Some(500), Some(20))
            );
            assert_eq!(c.header_read_timeout, Duration::from_secs(3));
            assert_eq!(c.idle_connection_timeout, Duration::from_secs(60));
            Ok(())
        });
        let e = load_error("AUTHD_MAX_CONNECTIONS", "0");
        assert!(e.contains("max_connections"), "{e}");
        let e = load_error("AUTHD_HEADER_READ_TIMEOUT", "0s");
        assert!(e.contains("header_read_timeout"), "{e}");
        let e = load_error("AUTHD_TLS_HANDSHAKE_TIMEOUT", "0s");
        assert!(e.contains("tls_handshake_timeout"), "{e}");
        let too_many_per_source = Config {
            max_connections: Some(10),
            max_connections_per_source: Some(11),
            ..Config::default()
        };
        let e = too_many_per_source.validate().unwrap_err().to_string();
        assert!(e.contains("must not exceed max_connections"), "{e}");
    }

    #[test]
    fn key_prepublish_defaults_to_ttl_plus_jwks_age_and_must_outlast_caches() {
        let c = Config::default();
        assert_eq!(c.key_prepublish(), Duration::from_secs(20 * 60));
        assert_eq!(c.jwks_uri(), "http://localhost:8080/.well-known/jwks.json");
        let short_ttl = Config {
            access_token_ttl: Duration::from_secs(10),
            ..Config::default()
        };
        // Never below max-age plus two reload intervals, whatever the TTL.
        assert_eq!(short_ttl.key_prepublish(), Duration::from_secs(7 * 60));
        short_ttl.validate().unwrap();
        let too_short = Config {
            key_prepublish: Some(Duration::from_secs(5 * 60)),
            ..Config::default()
        };
        assert!(too_short.validate().is_err());
        let rotation_too_fast = Config {
            key_rotation_interval: Duration::from_secs(60),
            ..Config::default()
        };
        assert!(rotation_too_fast.validate().is_err());
    }

    #[test]
    fn key_encryption_key_is_32_bytes_of_base64_and_never_shown() {
        figment::Jail::expect_with(|jail| {
            jail.set_env(
                "AUTHD_KEY_ENCRYPTION_KEY",
                "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
            );
            jail.set_env("AUTHD_KEY_PREPUBLISH", "30m");
            let c = Config::load(None, &Overrides::default()).map_err(|e| e.to_string())?;
            let key = c.key_encryption_key.as_ref().unwrap().bytes().unwrap();
            assert_eq!(key[31], 31);
            assert_eq!(c.key_prepublish(), Duration::from_secs(1800));
            assert!(!format!("{c:?}").contains("AAECAw"));
            Ok(())
        });
        for bad in ["c2VjcmV0", "not base64!", ""] {
            let c = Config {
                key_encryption_key: Some(KeyEncryptionKey::new(bad)),
                ..Config::default()
            };
            let e = c.validate().unwrap_err().to_string();
            assert!(e.contains("32 random bytes"), "{e}");
        }
    }
}
