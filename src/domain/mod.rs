//! The domain core: users, credentials, refresh families and the rules that govern them.
//!
//! Everything here is plain data and pure functions. It does no I/O, reads no clock and knows
//! no transport or database: no tonic, sqlx or argon2 in this module tree.

mod access;
mod api_key;
mod audit;
pub mod audit_retention;
mod directory;
mod key_schedule;
mod password;
mod precis;
mod refresh;
mod role;
mod signing_key;
mod throttle;
mod time;
mod user;
mod username;

pub use access::{AccessBinding, AccessStanding};
pub use api_key::{
    API_KEY_ID_CHARS, ApiKey, ApiKeyId, ApiKeyListing, ApiKeyRejection, ApiKeySecretHash,
    RoleNotHeld, check_api_key, roles_for_new_key,
};
pub use audit::{AuditEvent, AuditKind, AuditRefresh, Origin};
pub use audit_retention::AuditRetention;
pub use directory::{
    DirectoryAccount, DirectorySession, DirectoryVerdict, IdentitySource, directory_user_id,
    recheck_due,
};
pub use key_schedule::{KeyPolicy, KeyState, KeyTimes, PlannedRotation, TOKEN_CLOCK_SKEW};
pub use password::{
    MAX_PASSWORD_BYTES, Password, PasswordBlocklist, PasswordError, PasswordPolicy,
};
pub use refresh::{
    Decision, FamilyId, MAX_USER_AGENT_CHARS, NewFamily, NewToken, PresentedToken, RefreshPolicy,
    Rejection, Rotation, Session, SessionOrigin, Successor, TokenHash, decide, is_live,
};
pub use role::{Role, RoleError};
pub use signing_key::StoredKey;
pub use throttle::{
    Admission, Attempts, Charge, FailureCount, IN_FLIGHT_EXPIRY, MAX_CONSECUTIVE_FAILURES,
    ThrottlePolicy,
};
pub use time::{Clock, ManualClock, SystemClock, Timestamp};
pub use user::{User, UserCredentials, UserId, normalise_roles};
pub use username::{MAX_USERNAME_CHARS, Username, UsernameError};
