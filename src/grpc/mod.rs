//! The gRPC transport: `auth.v1.AuthService` over tonic.
//!
//! Handlers are thin: take the fields out of the request, call one [`TokenService`] method,
//! map the error with [`error::to_status`]. Only this module knows protobuf types.

mod error;
pub mod health;

use std::sync::Arc;

use tonic::{Request, Response, Status};

use crate::service::{IssuedTokens, TokenService};

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
}

impl AuthApi {
    pub fn new(service: Arc<TokenService>) -> Self {
        Self { service }
    }

    /// The tonic service, with the message-size limit applied.
    pub fn into_server(self) -> AuthServiceServer<Self> {
        AuthServiceServer::new(self)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES)
    }
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
        let peer = request.remote_addr();
        match request.into_inner().credential {
            Some(pb::token_request::Credential::PasswordCredential(c)) => self
                .service
                .login(&c.username, &c.password, peer)
                .await
                .map(respond)
                .map_err(error::to_status),
            None => Err(Status::invalid_argument("a credential is required")),
        }
    }

    async fn refresh_token(
        &self,
        request: Request<pb::RefreshTokenRequest>,
    ) -> Result<Response<pb::TokenResponse>, Status> {
        let peer = request.remote_addr();
        let presented = request.into_inner().refresh_token;
        self.service
            .refresh(&presented, peer)
            .await
            .map(respond)
            .map_err(error::to_status)
    }
}
