//! Use cases: logging in (password or API key), refreshing, logging out, introspecting, and
//! managing users, API keys, sessions and signing keys.
//!
//! Each use case is its own small service with private fields — [`PasswordLogin`],
//! [`Refresher`], [`ApiKeyLogin`], [`Logout`], [`Introspector`] — over one shared [`Context`]
//! (store, hasher, keys, clock, settings, audit, the verifier of our own tokens);
//! [`TokenService`] holds them and is what the transports call. Each parses its input into
//! domain types, calls the store and the crypto helpers, and returns domain results. This
//! layer knows no transport (no tonic) and no database (no sqlx): the gRPC handlers and the CLI
//! are thin shells around it. Per-source rate limiting, request ids, metrics and request logs
//! are not here: they are the request layer stack (`crate::middleware`).

mod admin_access;
mod api_key_login;
mod api_keys;
mod audit;
pub mod audit_query;
mod auth;
pub mod console_queries;
mod context;
mod directory;
pub mod housekeeping;
mod introspect;
mod key_rewrap;
mod keys;
mod login;
mod logout;
pub mod paging;
mod refresh;
mod sessions;
mod shared;
mod users;

pub use admin_access::{AdminAccess, Principal};
pub use api_key_login::ApiKeyLogin;
pub use api_keys::{ApiKeyAdmin, CreatedApiKey, MAX_KEY_NAME_CHARS};
pub use audit::{AUDIT_TARGET, Actor, Auditor, to_json as audit_json};
pub use audit_query::{AuditFilter, AuditReader, FollowCursor};
pub use auth::{AuthError, IssuedTokens, TokenService, TokenSettings};
pub use context::{MAX_REQUEST_ID_CHARS, RequestContext};
pub use directory::{DirectorySource, IdentitySources};
pub use introspect::{Introspection, Introspector};
pub use key_rewrap::{RewrapError, rewrap_keys};
pub use keys::{EmergencyRetirement, KeyInfo, KeyManager, KeySetupError, RotateOutcome, list_keys};
pub use login::PasswordLogin;
pub use logout::Logout;
pub use refresh::Refresher;
pub use sessions::SessionAdmin;
pub use shared::Context;
pub use users::{AdminError, ListedUser, UserAdmin, UserFilter};
