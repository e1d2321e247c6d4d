//! The checks, in order: size, header, key, signature, claims.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{
    AlgorithmParameters, Jwk, JwkSet, KeyAlgorithm, KeyOperations, PublicKeyUse,
};
use jsonwebtoken::{DecodingKey, Validation};

use crate::claims::{ACCESS_TOKEN_TYP, Claims};
use crate::jwks::RemoteJwks;

/// Claims every token must carry (RFC 9068 §2.2; `client_id` aside, which authd does not
/// issue).
const REQUIRED_CLAIMS: &[&str] = &["exp", "iat", "iss", "aud", "sub", "jti"];

/// Tokens longer than this are refused before any parsing.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// The signing algorithms a verifier may accept. Only asymmetric ones exist here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    ES256,
    EdDSA,
}

impl Algorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ES256 => "ES256",
            Self::EdDSA => "EdDSA",
        }
    }

    fn jwt(self) -> jsonwebtoken::Algorithm {
        match self {
            Self::ES256 => jsonwebtoken::Algorithm::ES256,
            Self::EdDSA => jsonwebtoken::Algorithm::EdDSA,
        }
    }

    fn matches_key(self, jwk: &Jwk) -> bool {
        let family = match (&jwk.algorithm, self) {
            (AlgorithmParameters::EllipticCurve(p), Self::ES256) => {
                p.curve == jsonwebtoken::jwk::EllipticCurve::P256
            }
            (AlgorithmParameters::OctetKeyPair(p), Self::EdDSA) => {
                p.curve == jsonwebtoken::jwk::EllipticCurve::Ed25519
            }
            _ => false,
        };
        let declared = match jwk.common.key_algorithm {
            None => true,
            Some(KeyAlgorithm::ES256) => self == Self::ES256,
            Some(KeyAlgorithm::EdDSA) => self == Self::EdDSA,
            Some(_) => false,
        };
        // RFC 7517 §4.2/§4.3: a key published for another use (`enc`) or other operations is
        // not one to verify signatures with. Absent means unrestricted.
        let for_signatures = jwk
            .common
            .public_key_use
            .as_ref()
            .is_none_or(|u| *u == PublicKeyUse::Signature);
        let may_verify = jwk
            .common
            .key_operations
            .as_ref()
            .is_none_or(|ops| ops.contains(&KeyOperations::Verify));
        family && declared && for_signatures && may_verify
    }
}

/// What a token must satisfy.
#[derive(Debug, Clone)]
pub struct VerifierConfig {
    /// The exact `iss`.
    pub issuer: String,
    /// Accepted audiences: the token's `aud` must contain at least one.
    pub audiences: Vec<String>,
    /// Pinned algorithms (default: ES256 and EdDSA).
    pub algorithms: Vec<Algorithm>,
    /// Clock skew tolerated on `exp`, `nbf` and `iat` (default 30 s; authd's `clock_skew`).
    pub leeway: Duration,
    /// Least time between two JWKS fetches triggered by an unknown `kid` (default 10 s).
    pub min_refresh_interval: Duration,
    /// Cache lifetime when the JWKS response has no `max-age` (default 5 min).
    pub default_max_age: Duration,
}

impl VerifierConfig {
    pub fn new<A: Into<String>>(
        issuer: impl Into<String>,
        audiences: impl IntoIterator<Item = A>,
    ) -> Self {
        Self {
            issuer: issuer.into(),
            audiences: audiences.into_iter().map(Into::into).collect(),
            algorithms: vec![Algorithm::ES256, Algorithm::EdDSA],
            leeway: Duration::from_secs(30),
            min_refresh_interval: Duration::from_secs(10),
            default_max_age: Duration::from_secs(300),
        }
    }
}

/// Why a token was refused. The messages are precise, for logs and `authd token verify`; a
/// server should not send them to clients.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("token is larger than {MAX_TOKEN_BYTES} bytes")]
    TooLarge,
    #[error("token is not a compact JWS (three base64url parts)")]
    Malformed,
    #[error("token header is not valid JSON")]
    MalformedHeader,
    #[error("algorithm {0:?} is not allowed")]
    DisallowedAlgorithm(String),
    #[error("header {0:?} is not accepted (keys come only from the configured JWKS)")]
    ForbiddenHeader(String),
    #[error("token type {0:?} is not at+jwt")]
    WrongType(String),
    #[error("token header has no kid")]
    MissingKid,
    #[error("no key with kid {0:?} in the JWKS")]
    UnknownKey(String),
    #[error("key {0:?} does not match the token's algorithm")]
    KeyMismatch(String),
    #[error("signature is invalid")]
    BadSignature,
    #[error("token has expired")]
    Expired,
    #[error("token is not valid yet (nbf or iat in the future)")]
    NotYetValid,
    #[error("issuer is not {0:?}")]
    WrongIssuer(String),
    #[error("audience is not one of {0:?}")]
    WrongAudience(Vec<String>),
    #[error("invalid claims: {0}")]
    InvalidClaims(String),
    #[error("cannot fetch the JWKS: {0}")]
    KeysUnavailable(String),
}

/// A public key held in memory by the caller, with the one algorithm it verifies.
pub struct LocalKey {
    pub algorithm: Algorithm,
    pub key: DecodingKey,
}

/// Keys the caller holds itself, looked up by `kid` without I/O: authd's own key ring, for
/// its Logout and Introspect. The other sources are a fixed [`JwkSet`] and a fetched, cached
/// JWKS ([`RemoteJwks`]).
pub trait LocalKeys: Send + Sync {
    /// The key named `kid`, if there is one (`kid` is untrusted input: only look it up).
    fn key(&self, kid: &str) -> Option<LocalKey>;
}

/// Where a verifier finds the key a token names.
enum Keys {
    Static(JwkSet),
    Remote(RemoteJwks),
    Local(Arc<dyn LocalKeys>),
}

/// Verifies authd access tokens. Cheap to share (`Arc<Verifier>`); safe to call concurrently.
pub struct Verifier {
    config: VerifierConfig,
    keys: Keys,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Verifier {
    /// A verifier with a fixed key set (e.g. read from a file or from authd's database).
    pub fn with_keys(config: VerifierConfig, keys: JwkSet) -> Self {
        Self {
            config,
            keys: Keys::Static(keys),
        }
    }

    /// A verifier that fetches keys from `jwks_url` (HTTPS recommended; rustls on aws-lc-rs).
    ///
    /// # Errors
    /// When the HTTP client cannot be built.
    pub fn with_jwks_url(
        config: VerifierConfig,
        jwks_url: impl Into<String>,
    ) -> Result<Self, VerifyError> {
        let remote = RemoteJwks::new(
            jwks_url.into(),
            config.min_refresh_interval,
            config.default_max_age,
        )?;
        Ok(Self {
            config,
            keys: Keys::Remote(remote),
        })
    }

    /// A verifier over keys the caller holds in memory (the issuer itself).
    pub fn with_local_keys(config: VerifierConfig, keys: Arc<dyn LocalKeys>) -> Self {
        Self {
            config,
            keys: Keys::Local(keys),
        }
    }

    pub fn config(&self) -> &VerifierConfig {
        &self.config
    }

    /// Verifies `token` against the system clock and returns its claims.
    ///
    /// # Errors
    /// The first check that fails, as a [`VerifyError`].
    pub async fn verify(&self, token: &str) -> Result<Claims, VerifyError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        self.verify_at(token, now).await
    }

    /// Verifies `token` as of `now` (Unix seconds; for callers whose clock is an input) and
    /// returns its claims.
    ///
    /// # Errors
    /// The first check that fails, as a [`VerifyError`].
    pub async fn verify_at(&self, token: &str, now: i64) -> Result<Claims, VerifyError> {
        let (alg, kid) = self.check_header(token)?;
        let key = match &self.keys {
            Keys::Static(set) => decoding_key(
                alg,
                &kid,
                set.find(&kid)
                    .ok_or_else(|| VerifyError::UnknownKey(kid.clone()))?,
            )?,
            Keys::Remote(remote) => decoding_key(alg, &kid, &remote.key(&kid).await?)?,
            Keys::Local(local) => {
                let found = local
                    .key(&kid)
                    .ok_or_else(|| VerifyError::UnknownKey(kid.clone()))?;
                if found.algorithm != alg {
                    return Err(VerifyError::KeyMismatch(kid));
                }
                found.key
            }
        };
        self.check_signature_and_claims(token, alg, &key, now)
    }

    fn check_header(&self, token: &str) -> Result<(Algorithm, String), VerifyError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(VerifyError::TooLarge);
        }
        let mut parts = token.split('.');
        let (Some(header), Some(_), Some(_), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(VerifyError::Malformed);
        };
        let header = URL_SAFE_NO_PAD
            .decode(header)
            .map_err(|_| VerifyError::Malformed)?;
        let header: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(&header).map_err(|_| VerifyError::MalformedHeader)?;
        let alg_name = header.get("alg").and_then(|a| a.as_str()).unwrap_or("");
        // Exact, case-sensitive match against the pinned list: "none", "None", "HS256" and
        // anything else unlisted never get further.
        let alg = self
            .config
            .algorithms
            .iter()
            .copied()
            .find(|a| a.as_str() == alg_name)
            .ok_or_else(|| VerifyError::DisallowedAlgorithm(alg_name.to_owned()))?;
        for forbidden in ["jku", "x5u", "jwk", "x5c", "crit"] {
            if header.contains_key(forbidden) {
                return Err(VerifyError::ForbiddenHeader(forbidden.to_owned()));
            }
        }
        let typ = header.get("typ").and_then(|t| t.as_str()).unwrap_or("");
        let typ_ok = typ.eq_ignore_ascii_case(ACCESS_TOKEN_TYP)
            || typ.eq_ignore_ascii_case("application/at+jwt");
        if !typ_ok {
            return Err(VerifyError::WrongType(typ.to_owned()));
        }
        let kid = header
            .get("kid")
            .and_then(|k| k.as_str())
            .ok_or(VerifyError::MissingKid)?;
        Ok((alg, kid.to_owned()))
    }

    fn check_signature_and_claims(
        &self,
        token: &str,
        alg: Algorithm,
        key: &DecodingKey,
        now: i64,
    ) -> Result<Claims, VerifyError> {
        let mut validation = Validation::new(alg.jwt());
        // exp and nbf are checked below against `now`, which may come from the caller's clock.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.set_issuer(&[&self.config.issuer]);
        validation.set_audience(&self.config.audiences);
        validation.set_required_spec_claims(REQUIRED_CLAIMS);
        let claims = jsonwebtoken::decode::<Claims>(token, key, &validation)
            .map(|data| data.claims)
            .map_err(|e| self.map_error(&e))?;
        let leeway = i64::try_from(self.config.leeway.as_secs()).unwrap_or(i64::MAX);
        // RFC 7519 §4.1.4: the token is refused once `now` reaches `exp`.
        if now.saturating_sub(leeway) >= claims.exp {
            return Err(VerifyError::Expired);
        }
        // A token issued in the future (`iat`, like `nbf`) is not valid yet: beyond the leeway
        // it was not minted by a clock this one roughly agrees with.
        if claims
            .nbf
            .is_some_and(|nbf| now.saturating_add(leeway) < nbf)
            || now.saturating_add(leeway) < claims.iat
        {
            return Err(VerifyError::NotYetValid);
        }
        Ok(claims)
    }

    fn map_error(&self, e: &jsonwebtoken::errors::Error) -> VerifyError {
        use jsonwebtoken::errors::ErrorKind as K;
        match e.kind() {
            K::InvalidSignature => VerifyError::BadSignature,
            K::ExpiredSignature => VerifyError::Expired,
            K::ImmatureSignature => VerifyError::NotYetValid,
            K::InvalidIssuer => VerifyError::WrongIssuer(self.config.issuer.clone()),
            K::InvalidAudience => VerifyError::WrongAudience(self.config.audiences.clone()),
            K::InvalidAlgorithm | K::MissingAlgorithm | K::InvalidAlgorithmName => {
                VerifyError::DisallowedAlgorithm(String::new())
            }
            K::Base64(_) | K::InvalidToken | K::Utf8(_) => VerifyError::Malformed,
            _ => VerifyError::InvalidClaims(e.to_string()),
        }
    }
}

/// The key of a JWK, if it is one for `alg` (its family, and its declared `alg`, `use` and
/// `key_ops` if any).
fn decoding_key(alg: Algorithm, kid: &str, jwk: &Jwk) -> Result<DecodingKey, VerifyError> {
    if !alg.matches_key(jwk) {
        return Err(VerifyError::KeyMismatch(kid.to_owned()));
    }
    DecodingKey::from_jwk(jwk).map_err(|_| VerifyError::KeyMismatch(kid.to_owned()))
}
