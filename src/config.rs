//! Configuration, layered: built-in defaults < TOML file < `AUTHD_*` environment < flags.
//!
//! The file is `--config PATH`, or `authd.toml` in the working directory when present. Every
//! subcommand reads the same configuration, so the CLI acts on the same database as `serve`.
//!
//! This root owns the `Config` struct, its defaults, its redacted `Debug`, the flag
//! `Overrides` and `ConfigError`. Loading and validation live in `load`, the settings derived
//! for other layers in `derived`, the serde forms of values in `serde_forms`, the key
//! encryption key and URL redaction in `secrets`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::crypto::keys::SigningAlgorithm;
use crate::crypto::password::Argon2Params;
use crate::domain::MAX_CONSECUTIVE_FAILURES;

mod derived;
mod load;
mod secrets;
mod serde_forms;
#[cfg(test)]
#[allow(clippy::result_large_err)] // figment::Jail's closures return figment::Error
mod tests;

pub use secrets::{KeyEncryptionKey, redact_url};
pub(crate) use serde_forms::{duration, list};
use serde_forms::{net_list, optional_addr, optional_duration};

/// The longest a session may last from its login: NIST SP 800-63B-4 asks for
/// reauthentication at least every 30 days at AAL1.
pub const MAX_SESSION_LIFETIME: Duration = Duration::from_secs(30 * 24 * 3600);

/// The longest `refresh_reuse_grace`: the window exists for a client retrying after a lost
/// response, which takes seconds; a longer one would let a stolen token be replayed unnoticed.
pub const MAX_REUSE_GRACE: Duration = Duration::from_secs(120);

/// The largest `clock_skew`: clocks further apart than this are a fault to fix (NTP), not
/// something to paper over by stretching every token's lifetime.
pub const MAX_CLOCK_SKEW: Duration = Duration::from_secs(5 * 60);
/// The default `default_client_id`: authd's own first-party login.
pub const DEFAULT_CLIENT_ID: &str = "authd";

/// Everything authd can be configured with. See README.md for the table of keys.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub database_url: String,
    pub grpc_addr: SocketAddr,
    /// The HTTP side port: JWKS, discovery, health and metrics.
    pub http_addr: SocketAddr,
    /// The management listener: `/metrics` and health, for operators and scrapers, never
    /// public. `off` (or empty) disables it. See [`crate::http::management`].
    #[serde(with = "optional_addr")]
    pub management_addr: Option<SocketAddr>,
    /// `client_id` of access tokens of password sessions (logins and refreshes), which no OAuth
    /// client requested; tokens bought with an API key carry the key's id instead (RFC 9068
    /// §2.2 requires the claim).
    pub default_client_id: String,
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
    /// Clock difference tolerated between replicas (and verifiers) on an access token's `exp`,
    /// `nbf` and `iat`, in Logout and Introspect.
    #[serde(with = "duration")]
    pub clock_skew: Duration,
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
    /// Retention per event class, overriding `audit_retention` for the event types it names:
    /// `EVENT_TYPE=DURATION, …` (e.g. `token_refreshed=7d`); empty: none
    /// ([`crate::domain::AuditRetention`]).
    pub audit_retention_per_event: String,
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
            clock_skew: Duration::from_secs(30),
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
            audit_retention_per_event: String::new(),
            maintenance_interval: Duration::from_secs(60),
            http_addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            management_addr: Some(SocketAddr::from(([127, 0, 0, 1], 9090))),
            default_client_id: DEFAULT_CLIENT_ID.into(),
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

/// Values given as command-line flags; only those set override the other layers.
#[derive(Default, Clone, Serialize)]
pub struct Overrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grpc_addr: Option<SocketAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_addr: Option<SocketAddr>,
    /// `HOST:PORT` or `off`, as `management_addr` is written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub management_addr: Option<String>,
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
            .field("management_addr", &self.management_addr)
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
