//! The gRPC transport: `auth.v1.AuthService` over tonic.
//!
//! Handlers are thin: take the fields out of the request, call one [`TokenService`] method,
//! map the result to the response and the error with `error::to_status`. Only this module
//! knows protobuf types.

mod error;
pub mod health;

pub use error::RETRY_AFTER;

use std::sync::Arc;

use tonic::{Request, Response, Status};

use crate::crypto::access_token::Audience;
use crate::service::{Introspection, IssuedTokens, RequestContext, TokenService};

/// Generated protobuf and gRPC code for `proto/auth/v1/auth.proto`.
#[allow(clippy::all, clippy::pedantic, missing_docs)]
pub mod pb {
    tonic::include_proto!("auth.v1");

    /// The encoded file descriptor set, for gRPC server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/auth_descriptor.bin"));

    // Debug is not derived for messages that carry secrets (see build.rs); these print only
    // what is safe.
    impl std::fmt::Debug for PasswordCredential {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("PasswordCredential")
                .field("username", &self.username)
                .field("password", &"<redacted>")
                .finish()
        }
    }

    impl std::fmt::Debug for ApiKeyCredential {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("ApiKeyCredential")
                .field("api_key", &"<redacted>")
                .finish()
        }
    }

    impl std::fmt::Debug for LogoutRequest {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("LogoutRequest")
                .field("refresh_token", &"<redacted>")
                .field("access_token", &"<redacted>")
                .finish()
        }
    }

    impl std::fmt::Debug for IntrospectRequest {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("IntrospectRequest")
                .field("token", &"<redacted>")
                .field("token_type_hint", &self.token_type_hint)
                .finish()
        }
    }

    impl std::fmt::Debug for RefreshTokenRequest {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("RefreshTokenRequest")
                .field("refresh_token", &"<redacted>")
                .finish()
        }
    }

    impl std::fmt::Debug for TokenResponse {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("TokenResponse")
                .field("access_token", &"<redacted>")
                .field("refresh_token", &"<redacted>")
                .finish()
        }
    }
}

pub use pb::auth_service_client::AuthServiceClient;
pub use pb::auth_service_server::AuthServiceServer;

/// Largest request accepted, in bytes; anything bigger is refused before it is decoded.
pub const MAX_MESSAGE_BYTES: usize = 16 * 1024;

/// The `auth.v1.AuthService` implementation.
pub struct AuthApi {
    service: Arc<TokenService>,
    trusted_proxies: Vec<ipnet::IpNet>,
    max_message_bytes: usize,
}

impl AuthApi {
    pub fn new(service: Arc<TokenService>) -> Self {
        Self {
            service,
            trusted_proxies: Vec::new(),
            max_message_bytes: MAX_MESSAGE_BYTES,
        }
    }

    /// Believe `x-forwarded-for` from peers in these networks.
    #[must_use]
    pub fn trusting_proxies(mut self, trusted: Vec<ipnet::IpNet>) -> Self {
        self.trusted_proxies = trusted;
        self
    }

    #[must_use]
    pub fn max_message_bytes(mut self, bytes: usize) -> Self {
        self.max_message_bytes = bytes;
        self
    }

    /// The tonic service, with the message-size limit applied.
    pub fn into_server(self) -> AuthServiceServer<Self> {
        let max = self.max_message_bytes;
        AuthServiceServer::new(self)
            .max_decoding_message_size(max)
            .max_encoding_message_size(max)
    }

    /// The client address (see [`crate::limits::client_address`]), request id and user agent.
    fn context<T>(&self, request: &Request<T>) -> RequestContext {
        let metadata = request.metadata();
        let forwarded = metadata
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok());
        let source = crate::limits::client_address(
            request.remote_addr().map(|a| a.ip()),
            forwarded,
            &self.trusted_proxies,
        );
        let request_id = metadata.get("x-request-id").and_then(|v| v.to_str().ok());
        let user_agent = metadata.get("user-agent").and_then(|v| v.to_str().ok());
        RequestContext::new(source, request_id).with_user_agent(user_agent)
    }
}

fn introspection(found: Introspection) -> pb::IntrospectResponse {
    match found {
        Introspection::Inactive => pb::IntrospectResponse::default(),
        Introspection::Access(claims) => pb::IntrospectResponse {
            active: true,
            token_type: "access_token".into(),
            sub: claims.sub,
            username: claims.preferred_username,
            exp: claims.exp,
            iat: claims.iat,
            roles: claims.roles,
            jti: claims.jti,
            iss: claims.iss,
            aud: match claims.aud {
                Audience::One(one) => vec![one],
                Audience::Many(many) => many,
            },
            key_id: claims.key_id.unwrap_or_default(),
            session_id: String::new(),
        },
        Introspection::Refresh {
            user,
            session,
            issued_at,
            expires_at,
        } => pb::IntrospectResponse {
            active: true,
            token_type: "refresh_token".into(),
            sub: user.id.to_string(),
            username: user.username.to_string(),
            exp: expires_at.unix_seconds(),
            iat: issued_at.unix_seconds(),
            roles: user.roles.iter().map(|r| r.as_str().to_owned()).collect(),
            session_id: session.to_string(),
            ..pb::IntrospectResponse::default()
        },
    }
}

/// The token of an `authorization: Bearer <token>` value (the scheme in any case, RFC 9110).
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

fn respond(tokens: IssuedTokens) -> Response<pb::TokenResponse> {
    Response::new(pb::TokenResponse {
        access_token: tokens.access_token,
        refresh_token: tokens.refresh_token.expose(),
    })
}

#[tonic::async_trait]
impl pb::auth_service_server::AuthService for AuthApi {
    async fn token(
        &self,
        request: Request<pb::TokenRequest>,
    ) -> Result<Response<pb::TokenResponse>, Status> {
        let ctx = self.context(&request);
        match request.into_inner().credential {
            Some(pb::token_request::Credential::PasswordCredential(c)) => self
                .service
                .login(&c.username, &c.password, &ctx)
                .await
                .map(respond)
                .map_err(error::to_status),
            // The key is the long-lived credential: no refresh token.
            Some(pb::token_request::Credential::ApiKeyCredential(c)) => self
                .service
                .login_with_api_key(&c.api_key, &ctx)
                .await
                .map(|access_token| {
                    Response::new(pb::TokenResponse {
                        access_token,
                        refresh_token: String::new(),
                    })
                })
                .map_err(error::to_status),
            None => Err(Status::invalid_argument("a credential is required")),
        }
    }

    async fn refresh_token(
        &self,
        request: Request<pb::RefreshTokenRequest>,
    ) -> Result<Response<pb::TokenResponse>, Status> {
        let ctx = self.context(&request);
        let presented = request.into_inner().refresh_token;
        self.service
            .refresh(&presented, &ctx)
            .await
            .map(respond)
            .map_err(error::to_status)
    }

    async fn logout(
        &self,
        request: Request<pb::LogoutRequest>,
    ) -> Result<Response<pb::LogoutResponse>, Status> {
        let ctx = self.context(&request);
        let r = request.into_inner();
        self.service
            .logout(&r.refresh_token, &r.access_token, &ctx)
            .await
            .map(|()| Response::new(pb::LogoutResponse {}))
            .map_err(error::to_status)
    }

    async fn introspect(
        &self,
        request: Request<pb::IntrospectRequest>,
    ) -> Result<Response<pb::IntrospectResponse>, Status> {
        let bearer = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(bearer_token)
            .map(str::to_owned);
        self.service
            .authorize_introspection(bearer.as_deref())
            .await
            .map_err(error::to_status)?;
        let token = request.into_inner().token;
        self.service
            .introspect(&token)
            .await
            .map(|found| Response::new(introspection(found)))
            .map_err(error::to_status)
    }
}

#[cfg(test)]
mod tests {
    use super::pb;

    #[test]
    fn messages_carrying_secrets_debug_without_them() {
        let secret = "s3cr3t-value-that-must-not-print";
        let shown = [
            format!(
                "{:?}",
                pb::TokenRequest {
                    credential: Some(pb::token_request::Credential::ApiKeyCredential(
                        pb::ApiKeyCredential {
                            api_key: secret.into(),
                        },
                    )),
                }
            ),
            format!(
                "{:?}",
                pb::TokenRequest {
                    credential: Some(pb::token_request::Credential::PasswordCredential(
                        pb::PasswordCredential {
                            username: "alice".into(),
                            password: secret.into(),
                        },
                    )),
                }
            ),
            format!(
                "{:?}",
                pb::LogoutRequest {
                    refresh_token: secret.into(),
                    access_token: secret.into(),
                }
            ),
            format!(
                "{:?}",
                pb::IntrospectRequest {
                    token: secret.into(),
                    token_type_hint: "access_token".into(),
                }
            ),
            format!(
                "{:?}",
                pb::RefreshTokenRequest {
                    refresh_token: secret.into(),
                }
            ),
            format!(
                "{:?}",
                pb::TokenResponse {
                    access_token: secret.into(),
                    refresh_token: secret.into(),
                }
            ),
        ];
        for s in &shown {
            assert!(!s.contains(secret), "{s}");
            assert!(s.contains("<redacted>"), "{s}");
        }
    }
}
