//! `auth.v1.AccountService`: self-service for the bearer of an active access token, thin edges
//! over the same use cases as the admin API, each limited to the caller's own user.
//!
//! Every handler starts with [`AccountApi::caller`] ([`AdminAccess::authenticate`]: an active
//! token of an existing, enabled user), which also yields the [`Actor`] for the audit trail.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::admin::{
    AdminDeps, api_key_pb, next_token, page_request, session_pb, sessions_page, user_pb,
};
use super::{bearer, context, error, pb, token_response};
use crate::domain::{ApiKeyListing, User};
use crate::service::{Actor, AdminAccess, Principal, RequestContext, TokenService};

pub use pb::account_service_client::AccountServiceClient;
pub use pb::account_service_server::AccountServiceServer;

/// The `auth.v1.AccountService` implementation.
pub struct AccountApi {
    access: Arc<AdminAccess>,
    tokens: Arc<TokenService>,
    deps: AdminDeps,
}

type Reply<T> = Result<Response<T>, Status>;

impl AccountApi {
    pub fn new(access: Arc<AdminAccess>, tokens: Arc<TokenService>, deps: AdminDeps) -> Self {
        Self {
            access,
            tokens,
            deps,
        }
    }

    /// The tonic service, with the message-size limit applied.
    pub fn into_server(self: Arc<Self>, max_message_bytes: usize) -> AccountServiceServer<Self> {
        AccountServiceServer::from_arc(self)
            .max_decoding_message_size(max_message_bytes)
            .max_encoding_message_size(max_message_bytes)
    }

    /// The one authentication step of every RPC: the calling user, the actor its changes
    /// are audited as, the request's context and its message.
    async fn caller<T>(
        &self,
        mut request: Request<T>,
    ) -> Result<(User, Actor, RequestContext, T), Status> {
        let ctx = context(&mut request);
        let token = bearer(&request);
        let (user, _) = self
            .access
            .authenticate(token.as_deref())
            .await
            .map_err(error::to_status)?;
        let actor = Actor::remote(Principal::User(user.clone()).label(), &ctx);
        Ok((user, actor, ctx, request.into_inner()))
    }
}

#[tonic::async_trait]
impl pb::account_service_server::AccountService for AccountApi {
    async fn get_me(&self, request: Request<pb::GetMeRequest>) -> Reply<pb::User> {
        let (user, ..) = self.caller(request).await?;
        Ok(Response::new(user_pb(&user, false)))
    }

    async fn change_password(
        &self,
        request: Request<pb::ChangePasswordRequest>,
    ) -> Reply<pb::TokenResponse> {
        let (user, actor, ctx, r) = self.caller(request).await?;
        let name = user.username.as_str();
        // A directory user's password is the directory's: refused before anything is checked.
        self.deps
            .users(actor.clone())
            .password_settable(&user.username)
            .await
            .map_err(error::admin_status)?;
        // A new password the policy refuses is refused first, so that request changes nothing
        // (found by fuzzing, FUZZING.md: the login below had already started a session).
        self.deps
            .password_policy
            .accept(&r.new_password)
            .map_err(|e| error::admin_status(e.into()))?;
        // The current password is checked as a login is: throttled and audited. The session
        // it starts ends with the others below.
        self.tokens
            .login(name, &r.current_password, &ctx)
            .await
            .map_err(error::to_status)?;
        self.deps
            .users(actor)
            .set_password(name, &r.new_password)
            .await
            .map_err(error::admin_status)?;
        self.tokens
            .login(name, &r.new_password, &ctx)
            .await
            .map(|t| token_response(&self.tokens, t.access_token, t.refresh_token.expose()))
            .map_err(error::to_status)
    }

    async fn list_my_sessions(
        &self,
        request: Request<pb::ListMySessionsRequest>,
    ) -> Reply<pb::ListSessionsResponse> {
        let (user, actor, _, r) = self.caller(request).await?;
        let sessions = self
            .deps
            .sessions(actor)
            .list(user.username.as_str())
            .await
            .map_err(error::admin_status)?;
        sessions_page(sessions, r.page_size, r.page_token).map(Response::new)
    }

    async fn revoke_my_session(
        &self,
        request: Request<pb::RevokeSessionRequest>,
    ) -> Reply<pb::Session> {
        let (user, actor, _, r) = self.caller(request).await?;
        let session = self
            .deps
            .sessions(actor)
            .revoke_own(&user, &r.id)
            .await
            .map_err(error::admin_status)?;
        Ok(Response::new(session_pb(&session)))
    }

    async fn revoke_all_my_sessions(
        &self,
        request: Request<pb::RevokeAllMySessionsRequest>,
    ) -> Reply<pb::RevokeUserSessionsResponse> {
        let (user, actor, ..) = self.caller(request).await?;
        let (_, revoked) = self
            .deps
            .sessions(actor)
            .revoke_all(user.username.as_str())
            .await
            .map_err(error::admin_status)?;
        Ok(Response::new(pb::RevokeUserSessionsResponse { revoked }))
    }

    async fn create_my_api_key(
        &self,
        request: Request<pb::CreateMyApiKeyRequest>,
    ) -> Reply<pb::CreateApiKeyResponse> {
        let (user, actor, _, r) = self.caller(request).await?;
        let expires_in = (r.expires_in_seconds > 0)
            .then(|| std::time::Duration::from_secs(r.expires_in_seconds));
        let created = self
            .deps
            .api_keys(actor)
            .create(user.username.as_str(), &r.name, &r.roles, expires_in)
            .await
            .map_err(error::admin_status)?;
        let listing = ApiKeyListing {
            username: user.username,
            key: created.key,
        };
        Ok(Response::new(pb::CreateApiKeyResponse {
            key: Some(api_key_pb(&listing)),
            secret: created.secret.expose(),
        }))
    }

    async fn list_my_api_keys(
        &self,
        request: Request<pb::ListMyApiKeysRequest>,
    ) -> Reply<pb::ListApiKeysResponse> {
        let (user, actor, _, r) = self.caller(request).await?;
        let keys = self
            .deps
            .api_keys(actor)
            .list(Some(user.username.as_str()))
            .await
            .map_err(error::admin_status)?;
        let page = page_request(r.page_size, r.page_token)
            .take_after_item(keys, |k| k.key.id.to_string())
            .map_err(error::admin_status)?;
        Ok(Response::new(pb::ListApiKeysResponse {
            next_page_token: next_token(&page),
            keys: page.items.iter().map(api_key_pb).collect(),
        }))
    }

    async fn revoke_my_api_key(
        &self,
        request: Request<pb::RevokeApiKeyRequest>,
    ) -> Reply<pb::RevokeApiKeyResponse> {
        let (user, actor, _, r) = self.caller(request).await?;
        self.deps
            .api_keys(actor)
            .revoke_own(&user, &r.id)
            .await
            .map_err(error::admin_status)?;
        Ok(Response::new(pb::RevokeApiKeyResponse {}))
    }
}
