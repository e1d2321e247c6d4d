//! Use cases: logging in, refreshing, and managing users and keys.
//!
//! Each use case parses its input into domain types, calls the store and the crypto helpers,
//! and returns domain results. This layer knows no transport (no tonic) and no database
//! (no sqlx): the gRPC handlers and the CLI are thin shells around it.

mod auth;
mod keys;
mod purge;
mod users;

pub use auth::{AuthError, IssuedTokens, TokenService, TokenSettings};
pub use keys::{KeyInfo, KeyManager, KeySetupError, RotateOutcome, list_keys};
pub use purge::{PURGE_BATCH, run_purge_job};
pub use users::{AdminError, UserAdmin};
