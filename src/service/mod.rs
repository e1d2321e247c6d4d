//! Use cases: logging in (password or API key), refreshing, logging out, introspecting, and
//! managing users, API keys, sessions and signing keys.
//!
//! Each use case parses its input into domain types, calls the store and the crypto helpers,
//! and returns domain results. This layer knows no transport (no tonic) and no database
//! (no sqlx): the gRPC handlers and the CLI are thin shells around it.

mod api_keys;
mod audit;
mod auth;
mod context;
pub mod housekeeping;
mod keys;
mod logout;
mod sessions;
mod users;

pub use api_keys::{ApiKeyAdmin, CreatedApiKey, MAX_KEY_NAME_CHARS};
pub use audit::{AUDIT_TARGET, Auditor, to_json as audit_json};
pub use auth::{AuthError, IssuedTokens, TokenService, TokenSettings};
pub use context::{MAX_REQUEST_ID_CHARS, RequestContext};
pub use keys::{KeyInfo, KeyManager, KeySetupError, RotateOutcome, list_keys};
pub use logout::Introspection;
pub use sessions::SessionAdmin;
pub use users::{AdminError, UserAdmin};
