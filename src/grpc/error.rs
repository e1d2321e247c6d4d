//! The one place where domain errors become gRPC statuses.
//!
//! Clients get a fixed, safe message per status; internal detail goes to the log only.

use tonic::Status;

use crate::service::AuthError;

pub fn to_status(e: AuthError) -> Status {
    match e {
        AuthError::InvalidArgument(msg) => Status::invalid_argument(msg),
        AuthError::InvalidCredentials | AuthError::InvalidRefreshToken => {
            Status::unauthenticated(e.to_string())
        }
        AuthError::Unavailable(source) => {
            tracing::error!(error = %source, "request failed: dependency unavailable");
            Status::unavailable("service temporarily unavailable")
        }
    }
}
