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
//! For tonic servers, [`RequireBearerLayer`] rejects every request without a valid
//! `authorization: Bearer …` token with `UNAUTHENTICATED`, and hands the [`Claims`] to the
//! handler through the request extensions (see [`claims`]).
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
//! It deliberately does not accept tokens from other issuers, RSA or HMAC algorithms, or keys
//! named in the token itself.

mod claims;
mod jwks;
mod layer;
mod verify;

pub use claims::Claims;
pub use jsonwebtoken::jwk::JwkSet;
pub use jwks::RemoteJwks;
pub use layer::{RequireBearer, RequireBearerLayer, bearer_token, claims};
pub use verify::{Algorithm, Verifier, VerifierConfig, VerifyError};
