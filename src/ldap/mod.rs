//! LDAP as an identity source: a directory (OpenLDAP, Active Directory, FreeIPA) checks the
//! password and says which groups a user is in; `role_map` turns groups into authd roles.
//!
//! [`Directory::authenticate`] follows RFC 4513 and the security references: an empty
//! password is refused before any bind (an empty-password bind is an unauthenticated bind,
//! which some servers report as success); the service account searches for the user with the
//! username escaped per RFC 4515 and exactly one entry is required; the password is checked by
//! binding as that entry's DN on a connection of its own, never on the service account's. A
//! user in no mapped group, or disabled in the directory, is refused like a wrong password.
//!
//! What it does not do: it stores nothing and knows no sessions. The login service decides
//! what a directory user is in authd (a local row made just in time) and when to ask again.
//!
//! Nothing about the directory reaches a client: errors carry details for the log only
//! ([`DirectoryError::Unavailable`]), and the bind password is never in an error or a log.

pub mod settings;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, Scope, SearchEntry, ldap_escape};
use tokio::sync::{Mutex, Semaphore};

pub use settings::{BindPassword, LdapSettings, Membership};

/// A user as the directory describes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryUser {
    pub dn: String,
    /// A stable id: `entryUUID` (RFC 4530) or Active Directory's `objectGUID` (hex).
    pub id: String,
    /// The username as the directory spells it.
    pub username: String,
    /// The `cn` of every group the user is in.
    pub groups: Vec<String>,
    /// The authd roles those groups map to (sorted, no duplicates).
    pub roles: Vec<String>,
    /// Locked or disabled in the directory (`pwdAccountLockedTime`, `nsAccountLock`,
    /// Active Directory's `userAccountControl` ACCOUNTDISABLE).
    pub disabled: bool,
}

impl DirectoryUser {
    /// Whether this user may have a session: enabled, and in at least one mapped group.
    pub fn may_log_in(&self) -> bool {
        !self.disabled && !self.roles.is_empty()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    /// Unknown user, wrong or empty password, disabled, or in no mapped group: one answer.
    #[error("invalid username or password")]
    InvalidCredentials,
    /// No directory server answered, or one answered with an error. The text is for the log.
    #[error("the directory is unavailable: {0}")]
    Unavailable(String),
    #[error("LDAP configuration: {0}")]
    Config(String),
}

/// The attributes read from a user entry.
const USER_ATTRIBUTES: &[&str] = &[
    "entryUUID",
    "objectGUID",
    "memberOf",
    "pwdAccountLockedTime",
    "nsAccountLock",
    "userAccountControl",
];

/// The configured directory, with a small pool of service-account connections.
pub struct Directory {
    settings: LdapSettings,
    service_password: Option<BindPassword>,
    tls: Arc<rustls::ClientConfig>,
    /// Bound service-account connections not in use.
    idle: Mutex<Vec<Ldap>>,
    /// At most `pool_size` service-account operations at once.
    permits: Semaphore,
}

impl std::fmt::Debug for Directory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Directory")
            .field("url", &self.settings.url)
            .finish_non_exhaustive()
    }
}

impl Directory {
    /// # Errors
    /// When the settings are invalid, or the CA or password file cannot be read.
    pub fn new(settings: LdapSettings) -> Result<Self, DirectoryError> {
        settings.validate().map_err(DirectoryError::Config)?;
        let service_password = settings
            .service_password()
            .map_err(DirectoryError::Config)?;
        let tls = Arc::new(tls_config(settings.ca_file.as_deref())?);
        let permits = Semaphore::new(settings.pool_size);
        Ok(Self {
            settings,
            service_password,
            tls,
            idle: Mutex::new(Vec::new()),
            permits,
        })
    }

    pub fn settings(&self) -> &LdapSettings {
        &self.settings
    }

    /// Checks `username`'s `password` against the directory.
    ///
    /// # Errors
    /// [`DirectoryError::InvalidCredentials`] for every refusal; `Unavailable` when no
    /// directory server can be reached or one fails.
    pub async fn authenticate(
        &self,
        username: &str,
        password: &str,
    ) -> Result<DirectoryUser, DirectoryError> {
        // RFC 4513 5.1.2: a bind with a DN and an empty password is an unauthenticated bind,
        // which some servers answer with success. Never send one.
        if password.is_empty() || username.is_empty() {
            return Err(DirectoryError::InvalidCredentials);
        }
        let user = self
            .lookup(username)
            .await?
            .ok_or(DirectoryError::InvalidCredentials)?;
        // The user's own bind, on a connection of its own.
        let mut ldap = self.connect().await?;
        let bound = ldap.simple_bind(&user.dn, password).await;
        let _ = ldap.unbind().await;
        match bound {
            Ok(result) if result.rc == 0 => {}
            // invalidCredentials (49), or a server refusing the bind (e.g. a locked account:
            // unwillingToPerform 53, insufficientAccessRights 50).
            Ok(result) if matches!(result.rc, 48..=50 | 53) => {
                return Err(DirectoryError::InvalidCredentials);
            }
            Ok(result) => {
                return Err(DirectoryError::Unavailable(format!(
                    "user bind answered {}",
                    result.rc
                )));
            }
            Err(e) => return Err(DirectoryError::Unavailable(e.to_string())),
        }
        if !user.may_log_in() {
            return Err(DirectoryError::InvalidCredentials);
        }
        Ok(user)
    }

    /// Reads `username`'s entry and groups with the service account, without a password:
    /// `None` when there is no such user (or more than one entry matches).
    ///
    /// # Errors
    /// `Unavailable` when no directory server can be reached or one fails.
    pub async fn lookup(&self, username: &str) -> Result<Option<DirectoryUser>, DirectoryError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| DirectoryError::Unavailable("closed".into()))?;
        let (mut ldap, pooled) = self.service_connection().await?;
        let mut found = self.find_user(&mut ldap, username).await;
        if found.is_err() && pooled {
            // A kept connection may have died with a directory server that restarted since:
            // once more on a new one.
            (ldap, _) = self.service_connection_new().await?;
            found = self.find_user(&mut ldap, username).await;
        }
        if found.is_ok() {
            // Healthy: keep it for the next lookup.
            self.idle.lock().await.push(ldap);
        }
        found
    }

    async fn find_user(
        &self,
        ldap: &mut Ldap,
        username: &str,
    ) -> Result<Option<DirectoryUser>, DirectoryError> {
        let s = &self.settings;
        let filter = s.user_filter.replace("{username}", &ldap_escape(username));
        let mut attributes: Vec<&str> = USER_ATTRIBUTES.to_vec();
        attributes.push(&s.username_attribute);
        let (entries, _) = ldap
            .search(&s.user_base, Scope::Subtree, &filter, attributes)
            .await
            .and_then(ldap3::SearchResult::success)
            .map_err(|e| DirectoryError::Unavailable(format!("user search: {e}")))?;
        let [entry] = entries.as_slice() else {
            if entries.len() > 1 {
                tracing::warn!(target: "authd::ldap", matches = entries.len(),
                    "more than one directory entry matches one username; refusing it");
            }
            return Ok(None);
        };
        let entry = SearchEntry::construct(entry.clone());
        let first = |name: &str| {
            entry
                .attrs
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .and_then(|(_, v)| v.first().cloned())
        };
        let id = match first("entryUUID") {
            Some(uuid) => uuid,
            None => entry
                .bin_attrs
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("objectGUID"))
                .and_then(|(_, v)| v.first())
                .map(|guid| guid.iter().map(|b| format!("{b:02x}")).collect())
                .ok_or_else(|| {
                    DirectoryError::Unavailable(
                        "the user entry has neither entryUUID nor objectGUID".into(),
                    )
                })?,
        };
        let disabled = first("pwdAccountLockedTime").is_some()
            || first("nsAccountLock").is_some_and(|v| v.eq_ignore_ascii_case("true"))
            || first("userAccountControl")
                .and_then(|v| v.parse::<u32>().ok())
                .is_some_and(|flags| flags & 0x2 != 0);
        let groups = match s.membership {
            Membership::MemberOf => entry
                .attrs
                .iter()
                .filter(|(k, _)| k.eq_ignore_ascii_case("memberOf"))
                .flat_map(|(_, v)| v.iter().filter_map(|dn| group_cn(dn)))
                .collect(),
            Membership::Search => self.groups_of(ldap, &entry.dn).await?,
        };
        let roles: BTreeSet<String> = groups
            .iter()
            .filter_map(|group| {
                s.role_map
                    .iter()
                    .find(|(g, _)| g.eq_ignore_ascii_case(group))
                    .map(|(_, role)| role.clone())
            })
            .collect();
        Ok(Some(DirectoryUser {
            username: first(&s.username_attribute).unwrap_or_else(|| username.to_owned()),
            dn: entry.dn,
            id,
            groups,
            roles: roles.into_iter().collect(),
            disabled,
        }))
    }

    /// The `cn` of every `groupOfNames` / `groupOfUniqueNames` under `group_base` that names
    /// `dn` as a member.
    async fn groups_of(&self, ldap: &mut Ldap, dn: &str) -> Result<Vec<String>, DirectoryError> {
        let dn = ldap_escape(dn);
        let filter = format!(
            "(|(&(objectClass=groupOfNames)(member={dn}))\
              (&(objectClass=groupOfUniqueNames)(uniqueMember={dn})))"
        );
        let (entries, _) = ldap
            .search(
                &self.settings.group_base,
                Scope::Subtree,
                &filter,
                vec!["cn"],
            )
            .await
            .and_then(ldap3::SearchResult::success)
            .map_err(|e| DirectoryError::Unavailable(format!("group search: {e}")))?;
        Ok(entries
            .into_iter()
            .filter_map(|e| {
                SearchEntry::construct(e)
                    .attrs
                    .into_iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case("cn"))
                    .and_then(|(_, v)| v.into_iter().next())
            })
            .collect())
    }

    /// A bound service-account connection: an idle one (`true`), or a new one.
    async fn service_connection(&self) -> Result<(Ldap, bool), DirectoryError> {
        if let Some(ldap) = self.idle.lock().await.pop() {
            return Ok((ldap, true));
        }
        self.service_connection_new().await
    }

    async fn service_connection_new(&self) -> Result<(Ldap, bool), DirectoryError> {
        let mut ldap = self.connect().await?;
        if !self.settings.bind_dn.is_empty() {
            let password = self
                .service_password
                .as_ref()
                .map_or("", BindPassword::expose);
            if password.is_empty() {
                return Err(DirectoryError::Config(
                    "ldap.bind_dn is set without a password".into(),
                ));
            }
            let result = ldap
                .simple_bind(&self.settings.bind_dn, password)
                .await
                .map_err(|e| DirectoryError::Unavailable(format!("service bind: {e}")))?;
            if result.rc != 0 {
                return Err(DirectoryError::Unavailable(format!(
                    "the service account's bind was refused ({})",
                    result.rc
                )));
            }
        }
        Ok((ldap, false))
    }

    /// A new connection to the first URL that answers (StartTLS first when configured).
    async fn connect(&self) -> Result<Ldap, DirectoryError> {
        let s = &self.settings;
        let mut failures = Vec::new();
        for url in &s.url {
            let settings = LdapConnSettings::new()
                .set_conn_timeout(s.timeout)
                .set_starttls(s.start_tls)
                .set_config(Arc::clone(&self.tls));
            let connected = tokio::time::timeout(
                s.timeout + Duration::from_millis(100),
                LdapConnAsync::with_settings(settings, url),
            )
            .await;
            match connected {
                Ok(Ok((connection, mut ldap))) => {
                    ldap3::drive!(connection);
                    ldap.with_timeout(s.timeout);
                    return Ok(ldap);
                }
                Ok(Err(e)) => failures.push(format!("{url}: {e}")),
                Err(_) => failures.push(format!("{url}: no answer within {:?}", s.timeout)),
            }
        }
        Err(DirectoryError::Unavailable(failures.join("; ")))
    }
}

/// The value of a group DN's first RDN when it is a `cn` (`cn=admins,ou=groups,…` → `admins`).
fn group_cn(dn: &str) -> Option<String> {
    let mut rdn = String::new();
    let mut escaped = false;
    for c in dn.chars() {
        match c {
            ',' if !escaped => break,
            '\\' if !escaped => escaped = true,
            c => {
                rdn.push(c);
                escaped = false;
            }
        }
    }
    let (kind, value) = rdn.split_once('=')?;
    kind.trim()
        .eq_ignore_ascii_case("cn")
        .then(|| value.trim().to_owned())
}

/// rustls on aws-lc, trusting the system's roots and `ca_file`.
fn tls_config(ca_file: Option<&std::path::Path>) -> Result<rustls::ClientConfig, DirectoryError> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;

    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    if let Some(path) = ca_file {
        let pem = std::fs::read(path).map_err(|e| {
            DirectoryError::Config(format!("cannot read ldap.ca_file {}: {e}", path.display()))
        })?;
        for cert in CertificateDer::pem_slice_iter(&pem) {
            let cert = cert.map_err(|e| {
                DirectoryError::Config(format!("ldap.ca_file {}: {e}", path.display()))
            })?;
            roots.add(cert).map_err(|e| {
                DirectoryError::Config(format!("ldap.ca_file {}: {e}", path.display()))
            })?;
        }
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| DirectoryError::Config(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_names_come_from_the_first_rdn() {
        assert_eq!(
            group_cn("cn=dcpower-users,ou=groups,dc=example,dc=org").as_deref(),
            Some("dcpower-users")
        );
        assert_eq!(
            group_cn("CN=Domain Admins,CN=Users,DC=corp").as_deref(),
            Some("Domain Admins")
        );
        assert_eq!(group_cn(r"cn=a\,b,ou=g").as_deref(), Some("a,b"));
        assert_eq!(group_cn("ou=groups,dc=x"), None);
    }

    #[test]
    fn usernames_are_escaped_in_filters() {
        // RFC 4515: the characters that would change the filter's meaning.
        assert_eq!(ldap_escape("*)(uid=*"), r"\2a\29\28uid=\2a");
        assert_eq!(ldap_escape("a\0b\\"), r"a\00b\5c");
    }
}
