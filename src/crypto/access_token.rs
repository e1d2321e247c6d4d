//! Access tokens: RFC 9068 JWTs (`typ: at+jwt`) signed with the active key, and
//! [`verify`], the one function that checks a token this service issued (for Logout and
//! Introspect). Offline verifiers do the same checks with the published keys.

use jsonwebtoken::{Validation, decode, decode_header};
use serde::{Deserialize, Serialize};

use super::keys::KeyRing;
use crate::domain::Timestamp;

/// The `aud` claim: a single string when there is one audience, an array otherwise.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    pub fn from_list(list: &[String]) -> Self {
        match list {
            [one] => Self::One(one.clone()),
            many => Self::Many(many.to_vec()),
        }
    }
}

/// The claims authd puts in every access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    /// The user's stable id, never the username.
    pub sub: String,
    pub aud: Audience,
    pub exp: i64,
    pub iat: i64,
    pub nbf: i64,
    /// Unique per token: 128 random bits, base64url.
    pub jti: String,
    pub roles: Vec<String>,
    pub preferred_username: String,
    /// For tokens obtained with an API key: the key's id. Absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
}

/// The JOSE `typ` of an access token (RFC 9068 §2.1).
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";

/// Why a presented access token is not one of ours, or no longer valid. Callers treat every
/// variant alike (inactive); the variants are for logs and tests.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("malformed token")]
    Malformed,
    #[error("wrong typ header")]
    WrongType,
    #[error("unknown kid")]
    UnknownKey,
    #[error("expired")]
    Expired,
    #[error("not yet valid")]
    NotYetValid,
    #[error("invalid token: {0}")]
    Invalid(#[from] jsonwebtoken::errors::Error),
}

/// Verifies an access token against the service's own keys: `kid` must name a key of `keys`
/// (treated as untrusted input: only a lookup), the algorithm is pinned to that key's, `typ`
/// must be `at+jwt`, `iss` and `aud` must match, and `exp` and `nbf` are checked against `now`
/// (time is an input; no leeway).
///
/// This is deliberately one small function so it can be swapped for the shared verifier
/// (issue 3) without touching its callers.
///
/// # Errors
/// See [`VerifyError`].
pub fn verify(
    keys: &KeyRing,
    token: &str,
    issuer: &str,
    audience: &[String],
    now: Timestamp,
) -> Result<AccessClaims, VerifyError> {
    let header = decode_header(token).map_err(|_| VerifyError::Malformed)?;
    if header.typ.as_deref() != Some(ACCESS_TOKEN_TYP) {
        return Err(VerifyError::WrongType);
    }
    let kid = header.kid.ok_or(VerifyError::UnknownKey)?;
    let key = keys.find(&kid).ok_or(VerifyError::UnknownKey)?;
    let mut validation = Validation::new(key.algorithm.jwt_algorithm());
    // exp and nbf are checked below against the caller's clock, not the system's.
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.set_issuer(&[issuer]);
    validation.set_audience(audience);
    validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub", "jti"]);
    let claims = decode::<AccessClaims>(token, &key.public.decoding_key()?, &validation)?.claims;
    let now = now.unix_seconds();
    if now >= claims.exp {
        return Err(VerifyError::Expired);
    }
    if now < claims.nbf {
        return Err(VerifyError::NotYetValid);
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::keys::{SigningAlgorithm, SigningKey};
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    const NOW: i64 = 1_800_000_000;

    fn ring() -> KeyRing {
        let stored =
            SigningKey::generate(SigningAlgorithm::ES256, Timestamp::from_unix_millis(0)).unwrap();
        KeyRing::from_stored(&[stored], None).unwrap()
    }

    fn claims() -> AccessClaims {
        AccessClaims {
            iss: "https://issuer".into(),
            sub: "user-1".into(),
            aud: Audience::One("api".into()),
            exp: NOW + 60,
            iat: NOW,
            nbf: NOW,
            jti: "j1".into(),
            roles: vec![],
            preferred_username: "alice".into(),
            key_id: None,
        }
    }

    fn check(ring: &KeyRing, token: &str, now_s: i64) -> Result<AccessClaims, VerifyError> {
        verify(
            ring,
            token,
            "https://issuer",
            &["api".into()],
            Timestamp::from_unix_millis(now_s * 1000),
        )
    }

    #[test]
    fn accepts_our_tokens_until_exp() {
        let ring = ring();
        let key = &ring.keys()[0];
        let token = key.sign(ACCESS_TOKEN_TYP, &claims()).unwrap();
        assert_eq!(check(&ring, &token, NOW).unwrap(), claims());
        assert!(matches!(
            check(&ring, &token, NOW + 60),
            Err(VerifyError::Expired)
        ));
        assert!(matches!(
            check(&ring, &token, NOW - 1),
            Err(VerifyError::NotYetValid)
        ));
    }

    #[test]
    fn refuses_wrong_typ_issuer_audience_and_unknown_keys() {
        let ring = ring();
        let key = &ring.keys()[0];
        let jwt = key.sign("JWT", &claims()).unwrap();
        assert!(matches!(
            check(&ring, &jwt, NOW),
            Err(VerifyError::WrongType)
        ));
        let other_iss = AccessClaims {
            iss: "https://elsewhere".into(),
            ..claims()
        };
        let token = key.sign(ACCESS_TOKEN_TYP, &other_iss).unwrap();
        assert!(matches!(
            check(&ring, &token, NOW),
            Err(VerifyError::Invalid(_))
        ));
        let other_aud = AccessClaims {
            aud: Audience::One("other".into()),
            ..claims()
        };
        let token = key.sign(ACCESS_TOKEN_TYP, &other_aud).unwrap();
        assert!(matches!(
            check(&ring, &token, NOW),
            Err(VerifyError::Invalid(_))
        ));
        let token = key.sign(ACCESS_TOKEN_TYP, &claims()).unwrap();
        assert!(matches!(
            check(&self::ring(), &token, NOW),
            Err(VerifyError::UnknownKey)
        ));
    }

    #[test]
    fn refuses_none_and_hmac_with_the_public_key() {
        let ring = ring();
        let key = &ring.keys()[0];
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims()).unwrap());
        for alg in ["none", "NONE", "nOnE"] {
            let header = URL_SAFE_NO_PAD.encode(format!(
                r#"{{"alg":"{alg}","typ":"at+jwt","kid":"{}"}}"#,
                key.kid
            ));
            assert!(check(&ring, &format!("{header}.{payload}."), NOW).is_err());
        }
        // HS256 keyed with the public key's coordinates: the algorithm is pinned per key.
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
        header.typ = Some(ACCESS_TOKEN_TYP.into());
        header.kid = Some(key.kid.clone());
        let secret = serde_json::to_vec(&key.public.to_jwk(&key.kid, key.algorithm)).unwrap();
        let forged = jsonwebtoken::encode(
            &header,
            &claims(),
            &jsonwebtoken::EncodingKey::from_secret(&secret),
        )
        .unwrap();
        assert!(matches!(
            check(&ring, &forged, NOW),
            Err(VerifyError::Invalid(_))
        ));
    }
}
