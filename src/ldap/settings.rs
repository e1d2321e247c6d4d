//! The `[ldap]` section of the configuration (and its `AUTHD_LDAP_*` environment form): where
//! the directory is, how to find a user and their groups, and which groups are which roles.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::config::{duration, list};

/// How a user's groups are found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Membership {
    /// The user entry's `memberOf` attribute (OpenLDAP's memberof overlay, Active Directory).
    MemberOf,
    /// A search under `group_base` for `groupOfNames` (`member`) and `groupOfUniqueNames`
    /// (`uniqueMember`) entries naming the user's DN.
    Search,
}

/// The service account's password. Never printed: `Debug` and `Serialize` show `<redacted>`.
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct BindPassword(SecretString);

impl BindPassword {
    pub fn new(password: impl Into<String>) -> Self {
        Self(SecretString::from(password.into()))
    }

    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl std::fmt::Debug for BindPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

impl PartialEq for BindPassword {
    fn eq(&self, other: &Self) -> bool {
        use subtle::ConstantTimeEq;
        bool::from(self.expose().as_bytes().ct_eq(other.expose().as_bytes()))
    }
}

impl Serialize for BindPassword {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("<redacted>")
    }
}

/// Everything about the directory. Unused unless `identity_sources` names `ldap`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LdapSettings {
    /// One or more `ldap://` or `ldaps://` URLs, tried in order.
    #[serde(with = "list")]
    pub url: Vec<String>,
    /// Upgrade `ldap://` connections with StartTLS.
    pub start_tls: bool,
    /// PEM CA certificates trusted for the directory, besides the system's roots.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// The service account that searches for users.
    pub bind_dn: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bind_password: Option<BindPassword>,
    /// A file holding the service account's password (its first line).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bind_password_file: Option<PathBuf>,
    pub user_base: String,
    /// `{username}` is replaced by the escaped username (RFC 4515).
    pub user_filter: String,
    /// The attribute that holds the username (what `{username}` matches).
    pub username_attribute: String,
    pub group_base: String,
    pub membership: Membership,
    /// Group `cn` → authd role. A user in none of these groups cannot log in.
    #[serde(with = "role_map")]
    pub role_map: BTreeMap<String, String>,
    #[serde(with = "duration")]
    pub timeout: Duration,
    /// Service-account connections kept open at once.
    pub pool_size: usize,
    /// How often a refresh re-reads a directory user's entry and groups.
    #[serde(with = "duration")]
    pub recheck_interval: Duration,
}

impl Default for LdapSettings {
    fn default() -> Self {
        Self {
            url: Vec::new(),
            start_tls: false,
            ca_file: None,
            bind_dn: String::new(),
            bind_password: None,
            bind_password_file: None,
            user_base: String::new(),
            user_filter: "(&(objectClass=inetOrgPerson)(uid={username}))".into(),
            username_attribute: "uid".into(),
            group_base: String::new(),
            membership: Membership::MemberOf,
            role_map: BTreeMap::new(),
            timeout: Duration::from_secs(5),
            pool_size: 4,
            recheck_interval: Duration::from_secs(5 * 60),
        }
    }
}

/// The keys of the section, for the `AUTHD_LDAP_*` environment variables.
pub const KEYS: &[&str] = &[
    "url",
    "start_tls",
    "ca_file",
    "bind_dn",
    "bind_password",
    "bind_password_file",
    "user_base",
    "user_filter",
    "username_attribute",
    "group_base",
    "membership",
    "role_map",
    "timeout",
    "pool_size",
    "recheck_interval",
];

impl LdapSettings {
    /// # Errors
    /// A message naming the key that is wrong.
    pub fn validate(&self) -> Result<(), String> {
        if self.url.is_empty() || self.url.iter().any(String::is_empty) {
            return Err("ldap.url must name at least one ldap:// or ldaps:// URL".into());
        }
        for url in &self.url {
            let ldaps = url.starts_with("ldaps://");
            if !ldaps && !url.starts_with("ldap://") {
                return Err(format!(
                    "ldap.url {url:?} must start with ldap:// or ldaps://"
                ));
            }
            if ldaps && self.start_tls {
                return Err(format!(
                    "ldap.start_tls applies to ldap:// URLs; {url:?} is already TLS"
                ));
            }
        }
        if self.user_base.is_empty() {
            return Err("ldap.user_base must name where users are".into());
        }
        if !self.user_filter.contains("{username}") {
            return Err("ldap.user_filter must contain {username}".into());
        }
        if self.membership == Membership::Search && self.group_base.is_empty() {
            return Err("ldap.group_base must be set when ldap.membership = \"search\"".into());
        }
        if self.role_map.is_empty() {
            return Err(
                "ldap.role_map must map at least one group to a role (group=role,…)".into(),
            );
        }
        for role in self.role_map.values() {
            crate::domain::Role::parse(role)
                .map_err(|e| format!("ldap.role_map: role {role:?}: {e}"))?;
        }
        if self.bind_password.is_some() && self.bind_password_file.is_some() {
            return Err("set ldap.bind_password or ldap.bind_password_file, not both".into());
        }
        if self.timeout.is_zero() || self.pool_size == 0 {
            return Err("ldap.timeout and ldap.pool_size must be positive".into());
        }
        Ok(())
    }

    /// The service account's password, from the setting or the file (its first line).
    ///
    /// # Errors
    /// When the file cannot be read.
    pub fn service_password(&self) -> Result<Option<BindPassword>, String> {
        match (&self.bind_password, &self.bind_password_file) {
            (Some(p), _) => Ok(Some(p.clone())),
            (None, Some(path)) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    format!(
                        "cannot read ldap.bind_password_file {}: {e}",
                        path.display()
                    )
                })?;
                Ok(Some(BindPassword::new(
                    text.lines().next().unwrap_or_default(),
                )))
            }
            (None, None) => Ok(None),
        }
    }
}

/// Group → role, as a TOML table or as `group=role,group=role` (environment).
mod role_map {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serialize, Serializer, de};

    pub fn serialize<S: Serializer>(v: &BTreeMap<String, String>, s: S) -> Result<S::Ok, S::Error> {
        v.serialize(s)
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Table(BTreeMap<String, String>),
        Text(String),
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<BTreeMap<String, String>, D::Error> {
        match Raw::deserialize(d)? {
            Raw::Table(t) => Ok(t),
            Raw::Text(t) => t
                .split(',')
                .map(str::trim)
                .filter(|pair| !pair.is_empty())
                .map(|pair| {
                    let (group, role) = pair.split_once('=').ok_or_else(|| {
                        de::Error::custom(format!(
                            "invalid role_map entry {pair:?}; use group=role,group=role"
                        ))
                    })?;
                    Ok((group.trim().to_owned(), role.trim().to_owned()))
                })
                .collect(),
        }
    }
}
