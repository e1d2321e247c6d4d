//! The credentials file of `authd login`: where it is, what it holds, and how it is changed
//! safely when several `authd` processes use it at once.
//!
//! One TOML file (`$XDG_CONFIG_HOME/authd/credentials.toml`, else
//! `~/.config/authd/credentials.toml`, or `--credentials-path` / `AUTHD_CREDENTIALS_PATH`) holds
//! a profile per server, and which profile was used last. It is mode 0600 in a directory
//! authd creates 0700, and it is only ever replaced whole: written to a temporary file in the
//! same directory, fsynced, renamed over the old one, and the directory fsynced, so a process
//! killed at any point leaves either the old file or the new one.
//!
//! Refresh tokens rotate, so two processes must never refresh the same one. Every change is
//! made under an exclusive lock on a lock file beside the credentials (`credentials.toml.lock`,
//! as kubelogin does), and the file is read again after the lock is taken.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Everything in the credentials file.
#[derive(Default, Serialize, Deserialize)]
pub struct Credentials {
    /// The profile used when none is named: the last one logged in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<String>,
    #[serde(default)]
    pub profiles: BTreeMap<String, Profile>,
}

/// One login: a server, who logged in, and the tokens.
#[derive(Clone, Serialize, Deserialize)]
pub struct Profile {
    pub server: String,
    pub username: String,
    /// A CA file to trust for this server, besides the system's roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    pub access_token: String,
    /// Unix seconds when the access token expires.
    pub expires_at: i64,
    /// Empty for an API-key login (it gets no refresh token).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub refresh_token: String,
    /// For an API-key login, the key, so a fresh access token can be had once this one
    /// expires (there is no refresh token to do it with).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<String>,
}

/// Tokens and keys are secrets: `Debug` names the profile's server and user only.
impl std::fmt::Debug for Profile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Profile")
            .field("server", &self.server)
            .field("username", &self.username)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// Where the credentials file is: the explicit path, else under `$XDG_CONFIG_HOME`, else
/// under `$HOME/.config`.
///
/// # Errors
/// When none of them is set.
pub fn default_path(explicit: Option<&Path>) -> Result<PathBuf, String> {
    if let Some(path) = explicit {
        return Ok(path.to_owned());
    }
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .map(|home| PathBuf::from(home).join(".config"))
        })
        .ok_or("cannot tell where to keep credentials: set AUTHD_CREDENTIALS_PATH or HOME")?;
    Ok(base.join("authd").join("credentials.toml"))
}

/// The credentials file, locked for this process until dropped.
pub struct Locked {
    path: PathBuf,
    _lock: File,
    pub credentials: Credentials,
}

impl Locked {
    /// Takes the exclusive lock on `path`'s lock file (waiting for another process to let go),
    /// then reads the file; a missing file reads as empty. Creates the directory (0700) when
    /// it is missing.
    ///
    /// # Errors
    /// When the directory or the lock file cannot be made, or the file cannot be read or
    /// parsed.
    pub fn open(path: &Path) -> Result<Self, String> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
            && !dir.exists()
        {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        let lock_path = sibling(path, ".lock");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&lock_path)
            .map_err(|e| format!("cannot open {}: {e}", lock_path.display()))?;
        lock.lock()
            .map_err(|e| format!("cannot lock {}: {e}", lock_path.display()))?;
        let credentials = match std::fs::read_to_string(path) {
            Ok(text) => toml::from_str(&text)
                .map_err(|e| format!("{} is not a credentials file: {e}", path.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Credentials::default(),
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        };
        Ok(Self {
            path: path.to_owned(),
            _lock: lock,
            credentials,
        })
    }

    /// Replaces the file with the current credentials, atomically (temporary file, fsync,
    /// rename, fsync of the directory); the file is mode 0600. An empty set of profiles removes
    /// the file.
    ///
    /// # Errors
    /// When any step fails; the old file is then left as it was.
    pub fn save(&self) -> Result<(), String> {
        let shown = self.path.display();
        if self.credentials.profiles.is_empty() {
            return match std::fs::remove_file(&self.path) {
                Ok(()) => sync_dir(&self.path),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(format!("cannot remove {shown}: {e}")),
            };
        }
        let text = toml::to_string(&self.credentials)
            .map_err(|e| format!("cannot write credentials: {e}"))?;
        let temporary = sibling(&self.path, &format!(".tmp-{}", std::process::id()));
        let written = (|| {
            let mut file = OpenOptions::new()
                .create(true)
                .truncate(true)
                .write(true)
                .mode(0o600)
                .open(&temporary)?;
            // An existing file keeps its mode through `mode()`; make sure.
            file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
            file.write_all(text.as_bytes())?;
            file.sync_all()?;
            std::fs::rename(&temporary, &self.path)
        })();
        if let Err(e) = written {
            let _ = std::fs::remove_file(&temporary);
            return Err(format!("cannot write {shown}: {e}"));
        }
        sync_dir(&self.path)
    }
}

/// `path` with `suffix` appended to its file name.
fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    path.with_file_name(name)
}

/// Makes a rename or removal in `path`'s directory durable.
fn sync_dir(path: &Path) -> Result<(), String> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| format!("cannot sync {}: {e}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(server: &str) -> Profile {
        Profile {
            server: server.into(),
            username: "alice".into(),
            ca_file: None,
            access_token: "a.b.c".into(),
            expires_at: 1_800_000_000,
            refresh_token: "refresh-S3CRET".into(),
            api_key: None,
        }
    }

    #[test]
    fn saves_atomically_with_mode_0600_and_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("authd").join("credentials.toml");
        {
            let mut locked = Locked::open(&path).unwrap();
            assert!(locked.credentials.profiles.is_empty());
            locked
                .credentials
                .profiles
                .insert("http://a:1".into(), profile("http://a:1"));
            locked.credentials.current = Some("http://a:1".into());
            locked.save().unwrap();
        }
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(path.parent().unwrap()), 0o700);
        let locked = Locked::open(&path).unwrap();
        assert_eq!(locked.credentials.current.as_deref(), Some("http://a:1"));
        assert_eq!(
            locked.credentials.profiles["http://a:1"].refresh_token,
            "refresh-S3CRET"
        );
        // No temporary file is left behind.
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert!(names.iter().all(|n| !n.contains(".tmp-")), "{names:?}");
        assert!(!format!("{:?}", locked.credentials.profiles).contains("S3CRET"));
    }

    #[test]
    fn an_empty_set_of_profiles_removes_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("credentials.toml");
        let mut locked = Locked::open(&path).unwrap();
        locked
            .credentials
            .profiles
            .insert("p".into(), profile("http://a:1"));
        locked.save().unwrap();
        assert!(path.exists());
        locked.credentials.profiles.clear();
        locked.save().unwrap();
        assert!(!path.exists());
    }

    #[test]
    fn a_file_that_is_not_credentials_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("credentials.toml");
        std::fs::write(&path, "this is [not toml").unwrap();
        let Err(e) = Locked::open(&path) else {
            panic!("parsed garbage")
        };
        assert!(e.contains("is not a credentials file"), "{e}");
    }
}
