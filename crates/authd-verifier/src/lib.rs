//! Verify authd access tokens in a Rust resource server.
//!
//! authd issues RFC 9068 access tokens: JWTs with header `typ: at+jwt`, signed with ES256 or
//! EdDSA, whose public keys it publishes as a JWKS at `{issuer}/.well-known/jwks.json`. A
//! [`Verifier`] fetches and caches that JWKS (honouring `Cache-Control: max-age`, refetching
//! on an unknown `kid` at most once per [`VerifierConfig::min_refresh_interval`]) and checks,
//! in this order: size (at most 8 KiB), header (`alg` pinned to the configured list, exact
//! case, so `none` and HMAC never pass; no `jku`, `x5u`, `jwk`, `x5c` or `crit`; `typ`
//! `at+jwt`; a known `kid` whose key matches `alg`), signature, then claims (`iss`, `aud`,
//! `exp` and `nbf` with a small leeway, all numeric dates). It returns typed [`Claims`].
//!
//! [`RequireBearerLayer`] (a tower layer over `http` requests) rejects every request without
//! a valid `authorization: Bearer …` token and hands the [`Claims`] to the handler through the
//! request extensions: for plain HTTP services [`RequireBearerLayer::http`] answers `401`; for
//! tonic servers (feature `tonic`, off by default, so an HTTP service does not pull tonic in)
//! `RequireBearerLayer::new` answers `UNAUTHENTICATED`, and `claims` reads them back.
//!
//! The key source is a JWKS fetched and cached ([`Verifier::with_jwks_url`]), a fixed set
//! ([`Verifier::with_keys`]), or keys the caller holds ([`Verifier::with_local_keys`], how
//! authd checks its own tokens: one set of rules for issuer and resource servers alike).
//! [`Claims`] is the one claims type: authd signs it, every verifier returns it.
//!
//! ```no_run
//! # async fn run() -> Result<(), authd_verifier::VerifyError> {
//! use authd_verifier::{Verifier, VerifierConfig};
//! let config = VerifierConfig::new("https://auth.example.com", ["my-api"]);
//! let verifier = Verifier::with_jwks_url(config, "https://auth.example.com/.well-known/jwks.json")?;
//! let claims = verifier.verify("eyJ…").await?;
//! println!("{} has roles {:?}", claims.sub, claims.roles);
//! # Ok(()) }
//! ```
//!
//! Offline verification cannot see a logout, an ended session or a disabled user until the
//! token expires; [`OnlineCheck`] adds an optional online check through authd's `Introspect`
//! (a call the caller supplies as an [`Introspect`]) with a small cache.
//!
//! It deliberately does not accept tokens from other issuers, RSA or HMAC algorithms, or keys
//! named in the token itself.

mod claims;
mod jwks;
mod layer;
mod online;
mod verify;

pub use claims::{ACCESS_TOKEN_TYP, Claims};
pub use jsonwebtoken::DecodingKey;
pub use jsonwebtoken::jwk::JwkSet;
pub use jwks::RemoteJwks;
#[cfg(feature = "tonic")]
pub use layer::{GrpcRejection, claims};
pub use layer::{
    HttpRejection, Refusal, Rejection, RequireBearer, RequireBearerLayer, bearer_token,
    parse_bearer,
};
pub use online::{BoxError, Introspect, OnlineCheck, OnlineError};
pub use verify::{Algorithm, LocalKey, LocalKeys, Verifier, VerifierConfig, VerifyError};
