//! Secrets in the configuration: the key encryption key (never printed) and redaction of
//! passwords in database URLs for `Debug` output and messages.

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use super::ConfigError;

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
