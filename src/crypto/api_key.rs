//! API key secrets: generation, the printed format, and hashing for storage.
//!
//! A key reads `authd_<id>_<secret>`: the prefix lets secret scanners and people recognise a
//! leaked key, `<id>` is 24 hex digits (96 random bits) used to look the key up, and
//! `<secret>` is 32 bytes (256 bits) from the OS CSPRNG in base64url (43 characters). Only
//! the id and SHA-256 of the secret are stored, and the stored hash is compared in constant
//! time. A scanner's pattern: `authd_[0-9a-f]{24}_[A-Za-z0-9_-]{43}`.

use std::fmt;
use std::fmt::Write as _;

use aws_lc_rs::digest::{SHA256, digest};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use secrecy::{ExposeSecret, SecretBox};

use super::refresh_token::RandomnessError;
// The stored form is a domain type (the store keeps it); it is re-exported here, where it is made.
pub use crate::domain::ApiKeySecretHash;
use crate::domain::{API_KEY_ID_CHARS, ApiKeyId};

/// The prefix of every key.
pub const API_KEY_PREFIX: &str = "authd_";
const ID_BYTES: usize = API_KEY_ID_CHARS / 2;
const SECRET_BYTES: usize = 32;
const SECRET_CHARS: usize = 43;
/// Length of a key's string form.
pub const API_KEY_CHARS: usize = API_KEY_PREFIX.len() + API_KEY_ID_CHARS + 1 + SECRET_CHARS;

/// An API key in the clear: only in memory, on its way to the operator once, or from a client.
pub struct ApiKeySecret {
    id: ApiKeyId,
    secret: SecretBox<[u8; SECRET_BYTES]>,
}

impl ApiKeySecret {
    /// A new key with a random id and secret.
    ///
    /// # Errors
    /// Only if the OS CSPRNG fails.
    pub fn generate() -> Result<Self, RandomnessError> {
        let id_bytes = super::random_bytes::<ID_BYTES>().map_err(|_| RandomnessError)?;
        let mut id = String::with_capacity(API_KEY_ID_CHARS);
        for b in id_bytes {
            // Writing to a String cannot fail.
            let _ = write!(id, "{b:02x}");
        }
        let id = ApiKeyId::parse(&id).ok_or(RandomnessError)?;
        let secret = super::random_bytes::<SECRET_BYTES>().map_err(|_| RandomnessError)?;
        Ok(Self {
            id,
            secret: SecretBox::new(Box::new(secret)),
        })
    }

    /// Parses the printed form; `None` for anything that is not exactly a key's shape.
    pub fn parse(s: &str) -> Option<Self> {
        if s.len() != API_KEY_CHARS {
            return None;
        }
        let rest = s.strip_prefix(API_KEY_PREFIX)?;
        // Byte offsets are safe: the length check and prefix leave only what follows, and a
        // non-ASCII character makes `get` or the id parse fail.
        let id = ApiKeyId::parse(rest.get(..API_KEY_ID_CHARS)?)?;
        let secret = rest.get(API_KEY_ID_CHARS..)?.strip_prefix('_')?;
        let decoded = URL_SAFE_NO_PAD.decode(secret).ok()?;
        let bytes: [u8; SECRET_BYTES] = decoded.try_into().ok()?;
        Some(Self {
            id,
            secret: SecretBox::new(Box::new(bytes)),
        })
    }

    pub fn id(&self) -> &ApiKeyId {
        &self.id
    }

    /// The string handed to the operator, once.
    pub fn expose(&self) -> String {
        format!(
            "{API_KEY_PREFIX}{}_{}",
            self.id,
            URL_SAFE_NO_PAD.encode(self.secret.expose_secret())
        )
    }

    /// SHA-256 of the secret: right for 256-bit random secrets (no stretching needed).
    pub fn hash(&self) -> ApiKeySecretHash {
        let d = digest(&SHA256, self.secret.expose_secret());
        let mut out = [0u8; 32];
        out.copy_from_slice(d.as_ref());
        ApiKeySecretHash(out)
    }
}

impl fmt::Debug for ApiKeySecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiKeySecret({}, <redacted>)", self.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_its_printed_form() {
        let key = ApiKeySecret::generate().unwrap();
        let s = key.expose();
        assert_eq!(s.len(), API_KEY_CHARS);
        assert!(s.starts_with("authd_"));
        let parsed = ApiKeySecret::parse(&s).unwrap();
        assert_eq!(parsed.id(), key.id());
        assert!(parsed.hash().matches(&key.hash()));
    }

    #[test]
    fn different_keys_do_not_match() {
        let a = ApiKeySecret::generate().unwrap();
        let b = ApiKeySecret::generate().unwrap();
        assert_ne!(a.id(), b.id());
        assert!(!a.hash().matches(&b.hash()));
    }

    #[test]
    fn malformed_keys_do_not_parse() {
        let good = ApiKeySecret::generate().unwrap().expose();
        let mut cases = vec![
            String::new(),
            good.replacen("authd_", "authx_", 1),
            good[..good.len() - 1].to_owned(),
            format!("{good}A"),
            good.to_uppercase(),
        ];
        let mut no_sep = good.clone().into_bytes();
        no_sep[API_KEY_PREFIX.len() + API_KEY_ID_CHARS] = b'x';
        cases.push(String::from_utf8(no_sep).unwrap());
        cases.push(format!("{}é{}", &good[..10], &good[12..]));
        for bad in cases {
            assert!(ApiKeySecret::parse(&bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn debug_is_redacted() {
        let key = ApiKeySecret::generate().unwrap();
        let shown = format!("{key:?}");
        assert!(!shown.contains(&key.expose()[31..]));
        assert!(shown.contains(key.id().as_str()));
    }
}
