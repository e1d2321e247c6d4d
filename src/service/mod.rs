//! Use cases: logging in, refreshing, and managing users and keys.
//!
//! Each use case parses its input into domain types, calls the store and the crypto helpers,
//! and returns domain results. This layer knows no transport (no tonic) and no database
//! (no sqlx): the gRPC handlers and the CLI are thin shells around it.

mod audit;
mod auth;
mod context;
pub mod housekeeping;
mod keys;
mod users;

pub use audit::{AUDIT_TARGET, Auditor, to_json as audit_json};
pub use auth::{AuthError, IssuedTokens, TokenService, TokenSettings};
pub use context::{MAX_REQUEST_ID_CHARS, RequestContext};
pub use keys::load_or_create_keys;
pub use users::{AdminError, UserAdmin};
