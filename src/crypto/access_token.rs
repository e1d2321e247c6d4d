//! Access tokens: RFC 9068 JWTs (`typ: at+jwt`) signed with the active key.
//!
//! The claims type and the verification rules are not here: they are the verifier crate's
//! ([`Claims`], `authd_verifier::Verifier`), the same for authd's own Logout and Introspect as
//! for every resource server. This module builds the claims authd signs and hands the key ring
//! to the verifier as a key source ([`LocalKeys`]), with the service's clock as time.

use std::sync::Arc;
use std::time::Duration;

use authd_verifier::{Algorithm, LocalKey, LocalKeys, Verifier, VerifierConfig};

pub use authd_verifier::{ACCESS_TOKEN_TYP, Claims};

use super::keys::{KeyRing, SigningAlgorithm, SigningKey};

/// The verifier for tokens this service issued: keys from `keys` (a lookup by `kid`, which is
/// untrusted input), `iss` and `aud` from the configuration, and `exp`, `nbf` and `iat`
/// compared with the `now` the caller passes (`Verifier::verify_at`) give or take `leeway`
/// (`clock_skew`: a token minted by a replica whose clock runs slightly ahead is valid here).
pub fn own_verifier(
    issuer: &str,
    audience: &[String],
    leeway: Duration,
    keys: Arc<dyn LocalKeys>,
) -> Verifier {
    let mut config = VerifierConfig::new(issuer, audience.iter().cloned());
    config.leeway = leeway;
    Verifier::with_local_keys(config, keys)
}

/// One key of ours as the verifier sees it: the algorithm it signs with, pinned.
pub fn local_key(key: &SigningKey) -> Option<LocalKey> {
    let algorithm = match key.algorithm {
        SigningAlgorithm::ES256 => Algorithm::ES256,
        SigningAlgorithm::EdDSA => Algorithm::EdDSA,
    };
    let key = key.public.decoding_key().ok()?;
    Some(LocalKey { algorithm, key })
}

impl LocalKeys for KeyRing {
    fn key(&self, kid: &str) -> Option<LocalKey> {
        self.find(kid).and_then(local_key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::keys::{SigningAlgorithm, SigningKey};
    use crate::domain::Timestamp;
    use authd_verifier::VerifyError;
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    const NOW: i64 = 1_800_000_000;

    fn ring() -> Arc<KeyRing> {
        let stored =
            SigningKey::generate(SigningAlgorithm::ES256, Timestamp::from_unix_millis(0)).unwrap();
        Arc::new(KeyRing::from_stored(&[stored], None).unwrap())
    }

    fn claims() -> Claims {
        Claims {
            iss: "https://issuer".into(),
            sub: "user-1".into(),
            aud: vec!["api".into()],
            exp: NOW + 60,
            iat: NOW,
            nbf: Some(NOW),
            jti: "j1".into(),
            roles: vec![],
            preferred_username: Some("alice".into()),
            key_id: None,
            sid: Some("s1".into()),
            client_id: Some("authd".into()),
        }
    }

    async fn check(ring: &Arc<KeyRing>, token: &str, now: i64) -> Result<Claims, VerifyError> {
        let keys: Arc<dyn LocalKeys> = ring.clone();
        own_verifier("https://issuer", &["api".into()], Duration::ZERO, keys)
            .verify_at(token, now)
            .await
    }

    #[tokio::test]
    async fn accepts_our_tokens_until_exp_by_the_given_clock() {
        let ring = ring();
        let key = &ring.keys()[0];
        let token = key.sign(ACCESS_TOKEN_TYP, &claims()).unwrap();
        assert_eq!(check(&ring, &token, NOW).await.unwrap(), claims());
        assert_eq!(
            check(&ring, &token, NOW + 59).await.unwrap().jti,
            claims().jti
        );
        assert_eq!(
            check(&ring, &token, NOW + 60).await,
            Err(VerifyError::Expired)
        );
        assert_eq!(
            check(&ring, &token, NOW - 1).await,
            Err(VerifyError::NotYetValid)
        );
    }

    #[tokio::test]
    async fn refuses_wrong_typ_issuer_audience_and_unknown_keys() {
        let ring = ring();
        let key = &ring.keys()[0];
        let jwt = key.sign("JWT", &claims()).unwrap();
        assert!(matches!(
            check(&ring, &jwt, NOW).await,
            Err(VerifyError::WrongType(_))
        ));
        let other_iss = Claims {
            iss: "https://elsewhere".into(),
            ..claims()
        };
        let token = key.sign(ACCESS_TOKEN_TYP, &other_iss).unwrap();
        assert!(matches!(
            check(&ring, &token, NOW).await,
            Err(VerifyError::WrongIssuer(_))
        ));
        let other_aud = Claims {
            aud: vec!["other".into()],
            ..claims()
        };
        let token = key.sign(ACCESS_TOKEN_TYP, &other_aud).unwrap();
        assert!(matches!(
            check(&ring, &token, NOW).await,
            Err(VerifyError::WrongAudience(_))
        ));
        let token = key.sign(ACCESS_TOKEN_TYP, &claims()).unwrap();
        assert!(matches!(
            check(&self::ring(), &token, NOW).await,
            Err(VerifyError::UnknownKey(_))
        ));
    }

    #[tokio::test]
    async fn refuses_none_and_hmac_with_the_public_key() {
        let ring = ring();
        let key = &ring.keys()[0];
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims()).unwrap());
        for alg in ["none", "NONE", "nOnE"] {
            let header = URL_SAFE_NO_PAD.encode(format!(
                r#"{{"alg":"{alg}","typ":"at+jwt","kid":"{}"}}"#,
                key.kid
            ));
            assert!(
                check(&ring, &format!("{header}.{payload}."), NOW)
                    .await
                    .is_err()
            );
        }
        // HS256 keyed with the public key's coordinates: only asymmetric algorithms pass.
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
            check(&ring, &forged, NOW).await,
            Err(VerifyError::DisallowedAlgorithm(_))
        ));
        // An EdDSA header naming an ES256 key: the key's algorithm is pinned.
        let ed = URL_SAFE_NO_PAD.encode(format!(
            r#"{{"alg":"EdDSA","typ":"at+jwt","kid":"{}"}}"#,
            key.kid
        ));
        assert!(matches!(
            check(&ring, &format!("{ed}.{payload}.AAAA"), NOW).await,
            Err(VerifyError::KeyMismatch(_))
        ));
    }
}
