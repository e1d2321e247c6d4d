//! The one place where domain errors become gRPC statuses.
//!
//! Clients get a fixed, safe message per status; internal detail goes to the log only.
//! Throttled and rate-limited requests carry a `retry-after` metadata entry in whole seconds;
//! a request the layer stack refuses ([`GrpcRefusal`]) is answered through the same map.

use tonic::Status;
use tonic::metadata::MetadataValue;

use crate::limits::RateLimited;
use crate::middleware::Refuse;
use crate::service::{AdminError, AuthError};

/// The metadata key of the retry hint on `RESOURCE_EXHAUSTED`.
pub const RETRY_AFTER: &str = "retry-after";

pub fn to_status(e: AuthError) -> Status {
    match e {
        AuthError::InvalidArgument(msg) => Status::invalid_argument(msg),
        AuthError::InvalidCredentials | AuthError::InvalidRefreshToken => {
            Status::unauthenticated(e.to_string())
        }
        AuthError::Throttled { retry_after_secs } | AuthError::RateLimited { retry_after_secs } => {
            let mut status = Status::resource_exhausted(e.to_string());
            status
                .metadata_mut()
                .insert(RETRY_AFTER, MetadataValue::from(retry_after_secs));
            status
        }
        // Not RESOURCE_EXHAUSTED: waiting does not help, only an administrator does.
        AuthError::Locked => Status::failed_precondition(e.to_string()),
        AuthError::CallerUnauthenticated => Status::unauthenticated(e.to_string()),
        AuthError::CallerForbidden => Status::permission_denied(e.to_string()),
        AuthError::Overloaded => Status::unavailable(e.to_string()),
        AuthError::Unavailable(source) => {
            tracing::error!(error = %source, "request failed: dependency unavailable");
            Status::unavailable("service temporarily unavailable")
        }
    }
}

/// An administrative use case's error: the operator's one-line message for what they can
/// fix, the fixed safe messages of [`to_status`] for the rest.
pub fn admin_status(e: AdminError) -> Status {
    match e {
        AdminError::InvalidUsername(_)
        | AdminError::InvalidPassword(_)
        | AdminError::InvalidRole(_)
        | AdminError::RoleNotHeld(_)
        | AdminError::InvalidKeyName(_)
        | AdminError::InvalidPageToken => Status::invalid_argument(e.to_string()),
        AdminError::DuplicateUser(_) => Status::already_exists(e.to_string()),
        AdminError::UnknownUser(_)
        | AdminError::UnknownApiKey(_)
        | AdminError::UnknownSession(_) => Status::not_found(e.to_string()),
        AdminError::Store(e) => to_status(AuthError::from(e)),
        AdminError::Hash(e) => to_status(AuthError::from(e)),
        AdminError::Randomness(e) => to_status(AuthError::from(e)),
    }
}

/// How the gRPC server answers a request the layer stack refuses: the status
/// `to_status` gives the same error, as a trailers-only response.
#[derive(Debug, Clone, Copy, Default)]
pub struct GrpcRefusal;

impl Refuse for GrpcRefusal {
    fn rate_limited<B: Default>(&self, limited: RateLimited) -> http::Response<B> {
        to_status(AuthError::RateLimited {
            retry_after_secs: limited.retry_after_secs,
        })
        .into_http()
    }
}
