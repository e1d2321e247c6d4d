//! The one place where domain errors become gRPC statuses — and, from those statuses, HTTP
//! statuses (the JSON API, [`http_status`]) and OAuth 2.0 error codes ([`oauth_error`]).
//!
//! Clients get a fixed, safe message per status; internal detail goes to the log only.
//! Throttled and rate-limited requests carry a `retry-after` metadata entry in whole seconds;
//! a request the layer stack refuses ([`GrpcRefusal`]) is answered through the same map.
//! The HTTP transports render what this module decides (`crate::http::errors`); they decide
//! nothing about errors themselves.

use http::StatusCode;
use tonic::metadata::MetadataValue;
use tonic::{Code, Status};

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
        | AdminError::InvalidPageToken
        | AdminError::InvalidQuery(_) => Status::invalid_argument(e.to_string()),
        AdminError::DuplicateUser(_) => Status::already_exists(e.to_string()),
        AdminError::DirectoryUser(_) => Status::failed_precondition(e.to_string()),
        AdminError::UnknownUser(_)
        | AdminError::UnknownApiKey(_)
        | AdminError::UnknownSession(_) => Status::not_found(e.to_string()),
        AdminError::Store(e) => to_status(AuthError::from(e)),
        AdminError::Hash(e) => to_status(AuthError::from(e)),
        AdminError::Randomness(e) => to_status(AuthError::from(e)),
    }
}

/// A signing-key operation's failure: an unknown kid is NOT_FOUND, the rest (storage, a key
/// that cannot be made or sealed) UNAVAILABLE, with no detail.
pub fn key_status(e: crate::service::KeySetupError) -> Status {
    match e {
        crate::service::KeySetupError::UnknownKey(_) => Status::not_found(e.to_string()),
        other => to_status(AuthError::Unavailable(Box::new(other))),
    }
}

/// How the gRPC server answers a request the layer stack refuses: the status
/// `to_status` gives the same error, as a trailers-only response.
#[derive(Debug, Clone, Copy, Default)]
pub struct GrpcRefusal;

impl<B: Default> Refuse<B> for GrpcRefusal {
    fn rate_limited(&self, limited: RateLimited) -> http::Response<B> {
        to_status(AuthError::RateLimited {
            retry_after_secs: limited.retry_after_secs,
        })
        .into_http()
    }
}

/// The HTTP status grpc-gateway gives a gRPC code (its `HTTPStatusFromCode`), for the JSON
/// form of `google.rpc.Status`.
pub fn http_status(code: Code) -> StatusCode {
    match code {
        Code::Ok => StatusCode::OK,
        Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange => {
            StatusCode::BAD_REQUEST
        }
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists | Code::Aborted => StatusCode::CONFLICT,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::Cancelled => StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST),
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::Unknown | Code::Internal | Code::DataLoss => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The retry hint a status carries, in whole seconds.
pub fn retry_after(status: &Status) -> Option<u64> {
    status
        .metadata()
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

/// Whose credential an OAuth 2.0 request presented: the client's (client credentials, the
/// introspection caller) or a grant (a refresh token, a user's password).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OAuthCredential {
    Client,
    Grant,
}

/// An OAuth 2.0 error response (RFC 6749 §5.2): HTTP status, `error` code, the same safe
/// message gRPC gives as `error_description`, and the retry hint.
#[derive(Debug)]
pub struct OAuthError {
    pub status: StatusCode,
    pub error: &'static str,
    pub description: String,
    pub retry_after: Option<u64>,
    /// The gRPC code of the same error (what the request metrics count it as).
    pub code: Code,
}

impl OAuthError {
    /// A malformed request (`invalid_request`, 400).
    pub fn invalid_request(description: &str) -> Self {
        Self::new(Code::InvalidArgument, "invalid_request", description)
    }

    /// Client authentication failed (`invalid_client`, 401; the response names the Basic
    /// scheme in `WWW-Authenticate`).
    pub fn invalid_client(description: &str) -> Self {
        Self::new(Code::Unauthenticated, "invalid_client", description)
    }

    /// A grant type this server does not offer (or has not enabled).
    pub fn unsupported_grant_type() -> Self {
        Self::new(
            Code::InvalidArgument,
            "unsupported_grant_type",
            "unsupported grant_type",
        )
    }

    /// `invalid_client` is 401, the others 400.
    fn new(code: Code, error: &'static str, description: &str) -> Self {
        Self {
            status: if code == Code::Unauthenticated {
                StatusCode::UNAUTHORIZED
            } else {
                StatusCode::BAD_REQUEST
            },
            error,
            description: description.to_owned(),
            retry_after: None,
            code,
        }
    }
}

/// The OAuth 2.0 form of an error: the gRPC status [`to_status`] gives, named in RFC 6749's
/// terms. A refused credential is `invalid_client` (401) when it was the client's and
/// `invalid_grant` (400) when it was the grant's; throttling and overload, which RFC 6749
/// does not name, keep their HTTP meaning (429 with `Retry-After`, 503).
pub fn oauth_error(e: AuthError, presented: OAuthCredential) -> OAuthError {
    let status = to_status(e);
    let (code, error) = match status.code() {
        Code::Unauthenticated if presented == OAuthCredential::Client => {
            (StatusCode::UNAUTHORIZED, "invalid_client")
        }
        Code::Unauthenticated | Code::FailedPrecondition => {
            (StatusCode::BAD_REQUEST, "invalid_grant")
        }
        Code::InvalidArgument => (StatusCode::BAD_REQUEST, "invalid_request"),
        Code::PermissionDenied => (StatusCode::FORBIDDEN, "access_denied"),
        other => (http_status(other), "temporarily_unavailable"),
    };
    OAuthError {
        status: code,
        error,
        description: status.message().to_owned(),
        retry_after: retry_after(&status),
        code: status.code(),
    }
}
