//! `auth.v1.AdminService`: remote administration, thin edges over the same use cases the
//! direct-database CLI runs (`UserAdmin`, `SessionAdmin`, `ApiKeyAdmin`, `KeyManager`).
//!
//! Every handler starts with [`AdminApi::admit`], the one authorisation step
//! ([`AdminAccess::admin`]: bearer token or mTLS subject), which also yields the [`Actor`]
//! every change is audited with. The RPCs pass the same layer stack as `AuthService`'s
//! (`LIMITED_PATHS` names this service too).

use std::sync::Arc;

use tokio_stream::StreamExt;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

use super::pb;
use super::{client_subject, context, error};
use crate::crypto::password::PasswordHasher;
use crate::domain::{ApiKeyListing, Clock, PasswordPolicy, Session, Timestamp, User};
use crate::service::paging::{Page, PageRequest};
use crate::service::{
    Actor, AdminAccess, ApiKeyAdmin, AuditFilter, AuditReader, AuthError, KeyInfo, KeyManager,
    RotateOutcome, SessionAdmin, UserAdmin, UserFilter, list_keys,
};
use crate::store::AuditRecord;
use crate::store::Store;

pub use pb::admin_service_client::AdminServiceClient;
pub use pb::admin_service_server::AdminServiceServer;

/// What the admin use cases are built from, once per server (shared with `AccountService`).
#[derive(Clone)]
pub struct AdminDeps {
    pub store: Arc<dyn Store>,
    pub hasher: Arc<PasswordHasher>,
    pub clock: Arc<dyn Clock>,
    pub password_policy: PasswordPolicy,
    pub keys: Arc<KeyManager>,
    /// `throttle_max_failures`: a name with this many failures is locked.
    pub locked_at: u32,
    /// Cancelled when the server shuts down: ends `FollowAudit` streams, which would
    /// otherwise hold the graceful shutdown open.
    pub stop: CancellationToken,
}

impl AdminDeps {
    pub fn users(&self, actor: Actor) -> UserAdmin {
        UserAdmin::new(
            Arc::clone(&self.store),
            Arc::clone(&self.hasher),
            Arc::clone(&self.clock),
            self.password_policy.clone(),
        )
        .acting_as(actor)
    }

    pub fn sessions(&self, actor: Actor) -> SessionAdmin {
        SessionAdmin::new(Arc::clone(&self.store), Arc::clone(&self.clock)).acting_as(actor)
    }

    pub fn api_keys(&self, actor: Actor) -> ApiKeyAdmin {
        ApiKeyAdmin::new(Arc::clone(&self.store), Arc::clone(&self.clock)).acting_as(actor)
    }
}

/// The `auth.v1.AdminService` implementation.
pub struct AdminApi {
    access: Arc<AdminAccess>,
    deps: AdminDeps,
}

pub(super) fn or_empty(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

pub(super) fn millis(t: Option<Timestamp>) -> i64 {
    t.map_or(0, Timestamp::unix_millis)
}

pub(super) fn roles(user: &User) -> Vec<String> {
    user.roles.iter().map(|r| r.as_str().to_owned()).collect()
}

pub(super) fn user_pb(user: &User, locked: bool) -> pb::User {
    pb::User {
        id: user.id.to_string(),
        username: user.username.to_string(),
        roles: roles(user),
        enabled: user.enabled,
        created_at_ms: user.created_at.unix_millis(),
        locked,
    }
}

pub(super) fn session_pb(s: &Session) -> pb::Session {
    pb::Session {
        id: s.id.to_string(),
        username: s.user.username.to_string(),
        created_at_ms: s.created_at.unix_millis(),
        last_used_at_ms: millis(s.last_used_at),
        expires_at_ms: s.expires_at.unix_millis(),
        source_addr: s.origin.source_addr.clone().unwrap_or_default(),
        user_agent: s.origin.user_agent.clone().unwrap_or_default(),
    }
}

pub(super) fn api_key_pb(listing: &ApiKeyListing) -> pb::ApiKey {
    let key = &listing.key;
    pb::ApiKey {
        id: key.id.to_string(),
        username: listing.username.to_string(),
        name: key.name.clone(),
        roles: key.roles.iter().map(|r| r.as_str().to_owned()).collect(),
        created_at_ms: key.created_at.unix_millis(),
        expires_at_ms: millis(key.expires_at),
        last_used_at_ms: millis(key.last_used_at),
        revoked_at_ms: millis(key.revoked_at),
    }
}

fn signing_key_pb(k: &KeyInfo) -> pb::SigningKey {
    pb::SigningKey {
        kid: k.kid.clone(),
        algorithm: k.algorithm.clone(),
        state: k.state.as_str().to_owned(),
        encrypted: k.encrypted,
        created_at_ms: k.created_at.unix_millis(),
        activates_at_ms: k.activates_at.unix_millis(),
        retires_at_ms: millis(k.retires_at),
        unpublished_at_ms: millis(k.unpublished_at),
    }
}

fn audit_event_pb(record: AuditRecord) -> pb::AuditEvent {
    let e = record.event;
    pb::AuditEvent {
        id: record.id,
        time_ms: e.time.unix_millis(),
        event_type: e.kind.as_str().to_owned(),
        user_id: e.user_id.unwrap_or_default(),
        username: e.username.unwrap_or_default(),
        source: e.source.unwrap_or_default(),
        request_id: e.request_id.unwrap_or_default(),
        detail: e.detail.unwrap_or_default(),
    }
}

/// The stream `FollowAudit` answers with.
pub type AuditStream = std::pin::Pin<
    Box<dyn tokio_stream::Stream<Item = Result<pb::AuditEvent, Status>> + Send + 'static>,
>;

pub(super) fn page_request(size: i32, token: String) -> PageRequest {
    PageRequest::new(usize::try_from(size).unwrap_or(0), token)
}

/// One page of `sessions` as a `ListSessionsResponse` (the admin's and the account's).
pub(super) fn sessions_page(
    sessions: Vec<Session>,
    page_size: i32,
    page_token: String,
) -> Result<pb::ListSessionsResponse, Status> {
    let page = page_request(page_size, page_token)
        .take_after_item(sessions, |s| s.id.to_string())
        .map_err(error::admin_status)?;
    Ok(pb::ListSessionsResponse {
        next_page_token: next_token(&page),
        sessions: page.items.iter().map(session_pb).collect(),
    })
}

pub(super) fn next_token<T>(page: &Page<T>) -> String {
    page.next_page_token.clone().unwrap_or_default()
}

impl AdminApi {
    pub fn new(access: Arc<AdminAccess>, deps: AdminDeps) -> Self {
        Self { access, deps }
    }

    /// The tonic service, with the message-size limit applied.
    pub fn into_server(self: Arc<Self>, max_message_bytes: usize) -> AdminServiceServer<Self> {
        AdminServiceServer::from_arc(self)
            .max_decoding_message_size(max_message_bytes)
            .max_encoding_message_size(max_message_bytes)
    }

    /// The one authorisation step of every RPC: the acting administrator, as an [`Actor`]
    /// for the audit trail, and the request's message.
    async fn admit<T>(&self, mut request: Request<T>) -> Result<(Actor, T), Status> {
        let ctx = context(&mut request);
        let bearer = super::bearer(&request);
        let subject = client_subject(&request);
        let principal = self
            .access
            .admin(bearer.as_deref(), subject.as_deref())
            .await
            .map_err(error::to_status)?;
        Ok((Actor::remote(principal.label(), &ctx), request.into_inner()))
    }

    fn users(&self, actor: Actor) -> UserAdmin {
        self.deps.users(actor)
    }

    fn sessions(&self, actor: Actor) -> SessionAdmin {
        self.deps.sessions(actor)
    }

    fn api_keys(&self, actor: Actor) -> ApiKeyAdmin {
        self.deps.api_keys(actor)
    }

    /// A user with whether its name is locked.
    async fn user_reply(&self, admin: &UserAdmin, user: &User) -> Result<pb::User, Status> {
        let locked = admin
            .locked(self.deps.locked_at)
            .await
            .map_err(error::admin_status)?;
        Ok(user_pb(
            user,
            locked.iter().any(|n| n == user.username.as_str()),
        ))
    }
}

type Reply<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl pb::admin_service_server::AdminService for AdminApi {
    async fn create_user(&self, request: Request<pb::CreateUserRequest>) -> Reply<pb::User> {
        let (actor, r) = self.admit(request).await?;
        let user = self
            .users(actor)
            .add(&r.username, &r.password, &r.roles)
            .await
            .map_err(error::admin_status)?;
        Ok(Response::new(user_pb(&user, false)))
    }

    async fn get_user(&self, request: Request<pb::GetUserRequest>) -> Reply<pb::User> {
        let (actor, r) = self.admit(request).await?;
        let admin = self.users(actor);
        let user = admin.get(&r.username).await.map_err(error::admin_status)?;
        self.user_reply(&admin, &user).await.map(Response::new)
    }

    async fn list_users(
        &self,
        request: Request<pb::ListUsersRequest>,
    ) -> Reply<pb::ListUsersResponse> {
        let (actor, r) = self.admit(request).await?;
        let filter = UserFilter {
            name_prefix: or_empty(r.name_prefix),
            role: or_empty(r.role),
            disabled_only: r.disabled_only,
            locked_only: r.locked_only,
        };
        let page = self
            .users(actor)
            .list_page(
                &filter,
                self.deps.locked_at,
                &page_request(r.page_size, r.page_token),
            )
            .await
            .map_err(error::admin_status)?;
        Ok(Response::new(pb::ListUsersResponse {
            next_page_token: next_token(&page),
            users: page
                .items
                .iter()
                .map(|u| user_pb(&u.user, u.locked))
                .collect(),
        }))
    }

    async fn update_user_roles(
        &self,
        request: Request<pb::UpdateUserRolesRequest>,
    ) -> Reply<pb::User> {
        let (actor, r) = self.admit(request).await?;
        let admin = self.users(actor);
        let user = admin
            .change_roles(&r.username, &r.add, &r.remove)
            .await
            .map_err(error::admin_status)?;
        self.user_reply(&admin, &user).await.map(Response::new)
    }

    async fn set_user_enabled(
        &self,
        request: Request<pb::SetUserEnabledRequest>,
    ) -> Reply<pb::User> {
        let (actor, r) = self.admit(request).await?;
        let admin = self.users(actor);
        let user = admin
            .set_enabled(&r.username, r.enabled)
            .await
            .map_err(error::admin_status)?;
        self.user_reply(&admin, &user).await.map(Response::new)
    }

    async fn set_user_password(
        &self,
        request: Request<pb::SetUserPasswordRequest>,
    ) -> Reply<pb::User> {
        let (actor, r) = self.admit(request).await?;
        let admin = self.users(actor);
        let user = admin
            .set_password(&r.username, &r.password)
            .await
            .map_err(error::admin_status)?;
        self.user_reply(&admin, &user).await.map(Response::new)
    }

    async fn unlock_user(
        &self,
        request: Request<pb::UnlockUserRequest>,
    ) -> Reply<pb::UnlockUserResponse> {
        let (actor, r) = self.admit(request).await?;
        let cleared = self
            .users(actor)
            .unlock(&r.username)
            .await
            .map_err(error::admin_status)?;
        Ok(Response::new(pb::UnlockUserResponse { cleared }))
    }

    async fn delete_user(&self, request: Request<pb::DeleteUserRequest>) -> Reply<pb::User> {
        let (actor, r) = self.admit(request).await?;
        let user = self
            .users(actor)
            .delete(&r.username)
            .await
            .map_err(error::admin_status)?;
        Ok(Response::new(user_pb(&user, false)))
    }

    async fn list_sessions(
        &self,
        request: Request<pb::ListSessionsRequest>,
    ) -> Reply<pb::ListSessionsResponse> {
        let (actor, r) = self.admit(request).await?;
        if r.username.is_empty() {
            let page = self
                .sessions(actor)
                .list_all(&page_request(r.page_size, r.page_token))
                .await
                .map_err(error::admin_status)?;
            return Ok(Response::new(pb::ListSessionsResponse {
                next_page_token: next_token(&page),
                sessions: page.items.iter().map(session_pb).collect(),
            }));
        }
        let sessions = self
            .sessions(actor)
            .list(&r.username)
            .await
            .map_err(error::admin_status)?;
        sessions_page(sessions, r.page_size, r.page_token).map(Response::new)
    }

    async fn revoke_session(
        &self,
        request: Request<pb::RevokeSessionRequest>,
    ) -> Reply<pb::Session> {
        let (actor, r) = self.admit(request).await?;
        let session = self
            .sessions(actor)
            .revoke(&r.id)
            .await
            .map_err(error::admin_status)?;
        Ok(Response::new(session_pb(&session)))
    }

    async fn revoke_user_sessions(
        &self,
        request: Request<pb::RevokeUserSessionsRequest>,
    ) -> Reply<pb::RevokeUserSessionsResponse> {
        let (actor, r) = self.admit(request).await?;
        let (_, revoked) = self
            .sessions(actor)
            .revoke_all(&r.username)
            .await
            .map_err(error::admin_status)?;
        Ok(Response::new(pb::RevokeUserSessionsResponse { revoked }))
    }

    async fn create_api_key(
        &self,
        request: Request<pb::CreateApiKeyRequest>,
    ) -> Reply<pb::CreateApiKeyResponse> {
        let (actor, r) = self.admit(request).await?;
        let expires_in = (r.expires_in_seconds > 0)
            .then(|| std::time::Duration::from_secs(r.expires_in_seconds));
        let created = self
            .api_keys(actor)
            .create(&r.username, &r.name, &r.roles, expires_in)
            .await
            .map_err(error::admin_status)?;
        let listing = ApiKeyListing {
            username: crate::domain::Username::parse(&r.username)
                .map_err(|_| Status::internal("username changed"))?,
            key: created.key,
        };
        Ok(Response::new(pb::CreateApiKeyResponse {
            key: Some(api_key_pb(&listing)),
            secret: created.secret.expose(),
        }))
    }

    async fn list_api_keys(
        &self,
        request: Request<pb::ListApiKeysRequest>,
    ) -> Reply<pb::ListApiKeysResponse> {
        let (actor, r) = self.admit(request).await?;
        let username = or_empty(r.username);
        let keys = self
            .api_keys(actor)
            .list(username.as_deref())
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

    async fn revoke_api_key(
        &self,
        request: Request<pb::RevokeApiKeyRequest>,
    ) -> Reply<pb::RevokeApiKeyResponse> {
        let (actor, r) = self.admit(request).await?;
        self.api_keys(actor)
            .revoke(&r.id)
            .await
            .map_err(error::admin_status)?;
        Ok(Response::new(pb::RevokeApiKeyResponse {}))
    }

    async fn list_signing_keys(
        &self,
        request: Request<pb::ListSigningKeysRequest>,
    ) -> Reply<pb::ListSigningKeysResponse> {
        let (_, _) = self.admit(request).await?;
        let keys = list_keys(
            self.deps.store.as_ref(),
            self.deps.keys.policy(),
            self.deps.clock.now(),
        )
        .await
        .map_err(|e| error::to_status(AuthError::from(e)))?;
        Ok(Response::new(pb::ListSigningKeysResponse {
            keys: keys.iter().map(signing_key_pb).collect(),
        }))
    }

    async fn rotate_signing_key(
        &self,
        request: Request<pb::RotateSigningKeyRequest>,
    ) -> Reply<pb::RotateSigningKeyResponse> {
        let (actor, _) = self.admit(request).await?;
        let outcome = self
            .deps
            .keys
            .rotate_as(&actor)
            .await
            .map_err(|e| error::to_status(AuthError::Unavailable(Box::new(e))))?;
        let (kid, activates_at, scheduled) = match outcome {
            RotateOutcome::Scheduled { kid, activates_at } => (kid, activates_at, true),
            RotateOutcome::AlreadyPending { kid, activates_at } => (kid, activates_at, false),
        };
        Ok(Response::new(pb::RotateSigningKeyResponse {
            kid,
            activates_at_ms: activates_at.unix_millis(),
            scheduled,
        }))
    }

    async fn retire_signing_key(
        &self,
        request: Request<pb::RetireSigningKeyRequest>,
    ) -> Reply<pb::RetireSigningKeyResponse> {
        let (actor, r) = self.admit(request).await?;
        let done = self
            .deps
            .keys
            .retire_as(&r.kid, &actor)
            .await
            .map_err(error::key_status)?;
        Ok(Response::new(pb::RetireSigningKeyResponse {
            retired: done.retired,
            replacement: done.replacement,
        }))
    }

    async fn query_audit(
        &self,
        request: Request<pb::QueryAuditRequest>,
    ) -> Reply<pb::QueryAuditResponse> {
        let (_, r) = self.admit(request).await?;
        let filter = AuditFilter::parse(&r.event_type, &r.username, r.from_ms, r.to_ms)
            .map_err(error::admin_status)?;
        let reader = AuditReader::new(Arc::clone(&self.deps.store));
        if r.page_size != 0 || !r.page_token.is_empty() {
            let page = reader
                .page(&filter, &page_request(r.page_size, r.page_token))
                .await
                .map_err(error::admin_status)?;
            return Ok(Response::new(pb::QueryAuditResponse {
                next_page_token: next_token(&page),
                events: page.items.into_iter().map(audit_event_pb).collect(),
            }));
        }
        let limit = match r.limit {
            0 => 50,
            n if n <= 100_000 => n,
            _ => {
                return Err(Status::invalid_argument(
                    "limit must be between 1 and 100000",
                ));
            }
        };
        let events = reader
            .tail(&filter, limit)
            .await
            .map_err(error::admin_status)?;
        Ok(Response::new(pb::QueryAuditResponse {
            events: events.into_iter().map(audit_event_pb).collect(),
            next_page_token: String::new(),
        }))
    }

    type FollowAuditStream = AuditStream;

    async fn follow_audit(
        &self,
        request: Request<pb::FollowAuditRequest>,
    ) -> Reply<Self::FollowAuditStream> {
        let (_, r) = self.admit(request).await?;
        let filter =
            AuditFilter::parse(&r.event_type, &r.username, 0, 0).map_err(error::admin_status)?;
        if r.after_id < 0 {
            return Err(Status::invalid_argument("after_id must not be negative"));
        }
        let reader = AuditReader::new(Arc::clone(&self.deps.store));
        let cursor = reader
            .cursor(r.after_id)
            .await
            .map_err(error::admin_status)?;
        let events = reader
            .follow(cursor, filter, self.deps.stop.clone())
            .map(|item| item.map(audit_event_pb).map_err(error::admin_status));
        Ok(Response::new(Box::pin(events)))
    }
}
