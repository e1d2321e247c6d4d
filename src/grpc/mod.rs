//! The gRPC transport: `auth.v1.AuthService` over tonic.
//!
//! Handlers are thin: take the fields out of the request, call one [`TokenService`] method,
//! map the result to the response and the error with `error::to_status`. Only this module
//! knows protobuf types. What every RPC needs before its handler (source address, request id,
//! rate limit, metrics, logs) is [`request_stack`], applied to the whole server.

pub mod account;
pub mod admin;
pub mod error;
pub mod health;

pub use error::{GrpcRefusal, RETRY_AFTER};

use std::net::IpAddr;
use std::sync::Arc;

use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
use tonic::{Request, Response, Status};

use crate::middleware::RequestStack;
use crate::service::{Introspection, RequestContext, TokenService};

/// Generated protobuf and gRPC code for `proto/auth/v1/auth.proto`.
#[allow(clippy::all, clippy::pedantic, missing_docs)]
pub mod pb {
    tonic::include_proto!("auth.v1");
    // The proto3 JSON mapping (serde) of the same messages, for the HTTP/JSON API.
    include!(concat!(env!("OUT_DIR"), "/auth.v1.serde.rs"));

    // `RPC_PATHS`: every `/auth.v1.Service/Method`, written by build.rs from the descriptors.
    include!(concat!(env!("OUT_DIR"), "/rpc_paths.rs"));

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

    impl std::fmt::Debug for CreateUserRequest {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("CreateUserRequest")
                .field("username", &self.username)
                .field("password", &"<redacted>")
                .field("roles", &self.roles)
                .finish()
        }
    }

    impl std::fmt::Debug for SetUserPasswordRequest {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("SetUserPasswordRequest")
                .field("username", &self.username)
                .field("password", &"<redacted>")
                .finish()
        }
    }

    impl std::fmt::Debug for ChangePasswordRequest {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("ChangePasswordRequest")
                .field("current_password", &"<redacted>")
                .field("new_password", &"<redacted>")
                .finish()
        }
    }

    impl std::fmt::Debug for CreateApiKeyResponse {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("CreateApiKeyResponse")
                .field("key", &self.key)
                .field("secret", &"<redacted>")
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

/// The paths the per-source limit applies to: every `auth.v1` RPC (health checks and
/// reflection stay free).
pub const LIMITED_PATHS: &[&str] = &[
    "/auth.v1.AuthService/",
    "/auth.v1.AdminService/",
    "/auth.v1.AccountService/",
];

/// The request layer stack for the gRPC server: `limiter` on every `auth.v1` RPC, clients
/// behind `trusted_proxies` known by their `x-forwarded-for`.
pub fn request_stack(
    limiter: Arc<crate::limits::SourceLimiter>,
    trusted_proxies: Vec<ipnet::IpNet>,
) -> RequestStack<GrpcRefusal> {
    RequestStack::new(
        limiter,
        LIMITED_PATHS,
        peer_address,
        trusted_proxies,
        GrpcRefusal,
    )
}

/// The TCP peer of a request, from the connection info tonic puts in its extensions (plain or
/// TLS).
pub fn peer_address(extensions: &http::Extensions) -> Option<IpAddr> {
    extensions
        .get::<TcpConnectInfo>()
        .or_else(|| {
            extensions
                .get::<TlsConnectInfo<TcpConnectInfo>>()
                .map(TlsConnectInfo::get_ref)
        })
        .and_then(TcpConnectInfo::remote_addr)
        .map(|a| a.ip())
}

/// The `auth.v1.AuthService` implementation.
pub struct AuthApi {
    service: Arc<TokenService>,
    max_message_bytes: usize,
}

impl AuthApi {
    pub fn new(service: Arc<TokenService>) -> Self {
        Self {
            service,
            max_message_bytes: MAX_MESSAGE_BYTES,
        }
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
}

/// The request's context, resolved by the layer stack ([`request_stack`]); a server built
/// without it sees every request as from an unknown source.
fn context<T>(request: &mut Request<T>) -> RequestContext {
    request
        .extensions_mut()
        .remove::<RequestContext>()
        .unwrap_or_else(|| RequestContext::new(None, None))
}

/// The `authorization: Bearer …` token of a request, if any.
fn bearer<T>(request: &Request<T>) -> Option<String> {
    request
        .metadata()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(authd_verifier::parse_bearer)
        .map(str::to_owned)
}

/// The subject of the client certificate of an mTLS connection (verified against
/// `tls_client_ca` in the handshake), in RFC 4514 form, e.g. `CN=ops-console, O=Example`.
fn client_subject<T>(request: &Request<T>) -> Option<String> {
    let certs = request.peer_certs()?;
    let leaf = certs.first()?;
    let (_, cert) = x509_parser::parse_x509_certificate(leaf.as_ref()).ok()?;
    Some(cert.subject().to_string())
}

pub(crate) fn introspection(found: Introspection) -> pb::IntrospectResponse {
    match found {
        Introspection::Inactive => pb::IntrospectResponse::default(),
        Introspection::Access(claims) => pb::IntrospectResponse {
            active: true,
            token_type: "access_token".into(),
            sub: claims.sub,
            username: claims.preferred_username.unwrap_or_default(),
            exp: claims.exp,
            iat: claims.iat,
            roles: claims.roles,
            jti: claims.jti,
            iss: claims.iss,
            aud: claims.aud,
            // Tokens issued before `client_id` was carried: an API key's is still its key.
            client_id: claims
                .client_id
                .or_else(|| claims.key_id.clone())
                .unwrap_or_default(),
            key_id: claims.key_id.unwrap_or_default(),
            session_id: claims.sid.unwrap_or_default(),
            nbf: claims.nbf.unwrap_or_default(),
        },
        Introspection::Refresh {
            user,
            session,
            issued_at,
            expires_at,
            client_id,
        } => pb::IntrospectResponse {
            active: true,
            token_type: "refresh_token".into(),
            sub: user.id.to_string(),
            username: user.username.to_string(),
            exp: expires_at.unix_seconds(),
            iat: issued_at.unix_seconds(),
            roles: user.roles.iter().map(|r| r.as_str().to_owned()).collect(),
            session_id: session.to_string(),
            client_id,
            ..pb::IntrospectResponse::default()
        },
    }
}

/// The one token type authd issues, as `token_type` names it (RFC 6750).
pub const TOKEN_TYPE: &str = "Bearer";

/// A token response: `refresh_token` empty when none was issued (API keys), `expires_in`
/// from the configured access-token lifetime.
fn token_response(
    service: &TokenService,
    access_token: String,
    refresh_token: String,
) -> Response<pb::TokenResponse> {
    Response::new(pb::TokenResponse {
        access_token,
        refresh_token,
        expires_in: i64::try_from(service.settings().access_ttl.as_secs()).unwrap_or(i64::MAX),
        token_type: TOKEN_TYPE.to_owned(),
    })
}

#[tonic::async_trait]
impl pb::auth_service_server::AuthService for AuthApi {
    async fn token(
        &self,
        mut request: Request<pb::TokenRequest>,
    ) -> Result<Response<pb::TokenResponse>, Status> {
        let ctx = context(&mut request);
        match request.into_inner().credential {
            Some(pb::token_request::Credential::PasswordCredential(c)) => self
                .service
                .login(&c.username, &c.password, &ctx)
                .await
                .map(|t| token_response(&self.service, t.access_token, t.refresh_token.expose()))
                .map_err(error::to_status),
            // The key is the long-lived credential: no refresh token.
            Some(pb::token_request::Credential::ApiKeyCredential(c)) => self
                .service
                .login_with_api_key(&c.api_key, &ctx)
                .await
                .map(|access_token| token_response(&self.service, access_token, String::new()))
                .map_err(error::to_status),
            None => Err(Status::invalid_argument("a credential is required")),
        }
    }

    async fn refresh_token(
        &self,
        mut request: Request<pb::RefreshTokenRequest>,
    ) -> Result<Response<pb::TokenResponse>, Status> {
        let ctx = context(&mut request);
        let presented = request.into_inner().refresh_token;
        self.service
            .refresh(&presented, &ctx)
            .await
            .map(|t| token_response(&self.service, t.access_token, t.refresh_token.expose()))
            .map_err(error::to_status)
    }

    async fn logout(
        &self,
        mut request: Request<pb::LogoutRequest>,
    ) -> Result<Response<pb::LogoutResponse>, Status> {
        let ctx = context(&mut request);
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
        let bearer = bearer(&request);
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
                    expires_in: 900,
                    token_type: "Bearer".into(),
                }
            ),
            format!(
                "{:?}",
                pb::CreateUserRequest {
                    username: "alice".into(),
                    password: secret.into(),
                    roles: vec![],
                }
            ),
            format!(
                "{:?}",
                pb::SetUserPasswordRequest {
                    username: "alice".into(),
                    password: secret.into(),
                }
            ),
            format!(
                "{:?}",
                pb::ChangePasswordRequest {
                    current_password: secret.into(),
                    new_password: secret.into(),
                }
            ),
            format!(
                "{:?}",
                pb::CreateApiKeyResponse {
                    key: None,
                    secret: secret.into(),
                }
            ),
        ];
        for s in &shown {
            assert!(!s.contains(secret), "{s}");
            assert!(s.contains("<redacted>"), "{s}");
        }
    }
}
