//! Connecting to a running authd from the command line: `http://` in the clear, `https://`
//! verified against the system's trusted roots plus, optionally, a CA file (`--ca-file`, for
//! a private CA or a self-signed certificate). Every CLI command that talks to a server goes
//! through [`channel`]. [`AdminRemote`] is the admin API with a bearer token, which
//! `authd user|session|apikey|keys|audit --server URL` use instead of the database, and the
//! conversions of its answers into the types the direct mode prints, so both print alike.

use std::path::Path;

use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};
use tonic::{Code, Request, Response, Status};

use authd::domain::{
    ApiKey, ApiKeyId, ApiKeyListing, AuditEvent, AuditKind, FamilyId, KeyState, Role, Session,
    SessionOrigin, Timestamp, User, UserId, Username,
};
use authd::grpc::admin::AdminServiceClient;
use authd::grpc::pb;
use authd::service::KeyInfo;

/// A channel to `url` (`http://HOST:PORT` or `https://HOST:PORT`; a bare `HOST:PORT` means
/// `http://`).
///
/// # Errors
/// A message for a person: a bad URL, an unreadable CA file, or a server that cannot be
/// reached (including a certificate that does not verify).
pub async fn channel(url: &str, ca_file: Option<&Path>) -> Result<Channel, String> {
    let url = if url.contains("://") {
        url.to_owned()
    } else {
        format!("http://{url}")
    };
    let mut endpoint =
        Endpoint::from_shared(url.clone()).map_err(|_| format!("invalid server URL {url:?}"))?;
    if url.starts_with("https://") {
        let mut tls = ClientTlsConfig::new().with_native_roots();
        if let Some(path) = ca_file {
            let pem = std::fs::read(path)
                .map_err(|e| format!("cannot read the CA file {}: {e}", path.display()))?;
            tls = tls.ca_certificate(Certificate::from_pem(pem));
        }
        endpoint = endpoint
            .tls_config(tls)
            .map_err(|e| format!("TLS set-up for {url}: {e}"))?;
    } else if ca_file.is_some() {
        return Err(format!("--ca-file needs an https:// server URL, not {url}"));
    }
    endpoint.connect().await.map_err(|e| {
        // tonic's top-level message is "transport error"; the cause says why.
        let cause = std::error::Error::source(&e).map_or_else(String::new, |s| format!(": {s}"));
        format!("cannot connect to {url}: {e}{cause}")
    })
}

/// The admin API of a server, with the bearer token every call carries: `AUTHD_TOKEN`, else a
/// fresh access token of the `authd login` for that server (refreshed under the credentials
/// file's lock, as `authd token` does).
pub struct AdminRemote {
    client: AdminServiceClient<Channel>,
    token: String,
}

impl AdminRemote {
    /// # Errors
    /// No token to call with, or a server that cannot be reached.
    pub async fn connect(server: &str, ca_file: Option<&Path>) -> Result<Self, String> {
        let token = match std::env::var("AUTHD_TOKEN").ok().filter(|t| !t.is_empty()) {
            Some(token) => token,
            None => {
                let target = super::login::Target::from_env(server, ca_file.map(Path::to_path_buf));
                super::login::fresh_access_token(target, TOKEN_MIN_VALID).await?
            }
        };
        let channel = channel(server, ca_file).await?;
        Ok(Self {
            client: AdminServiceClient::new(channel),
            token,
        })
    }

    /// Calls one RPC with the bearer token; errors as a person wants them.
    ///
    /// # Errors
    /// The server's refusal, in words.
    pub async fn call<T, R, Fut>(
        &self,
        rpc: impl FnOnce(AdminServiceClient<Channel>, Request<T>) -> Fut,
        message: T,
    ) -> Result<R, String>
    where
        Fut: Future<Output = Result<Response<R>, Status>>,
    {
        let mut request = Request::new(message);
        let bearer = format!("Bearer {}", self.token)
            .parse()
            .map_err(|_| "the access token is not a valid header value".to_owned())?;
        request.metadata_mut().insert("authorization", bearer);
        rpc(self.client.clone(), request)
            .await
            .map(Response::into_inner)
            .map_err(explain)
    }
}

/// A refusal of the admin API as a person wants to read it.
pub fn explain(s: Status) -> String {
    match s.code() {
        Code::PermissionDenied => "permission denied: this needs the admin role".to_owned(),
        Code::Unauthenticated => format!(
            "not authenticated: {} (authd login --server URL, or set AUTHD_TOKEN)",
            s.message()
        ),
        Code::Unavailable | Code::DeadlineExceeded | Code::Unknown => {
            format!("the server could not do it: {}", s.message())
        }
        _ => s.message().to_owned(),
    }
}

/// How long the cached token must stay valid for a remote command.
const TOKEN_MIN_VALID: std::time::Duration = std::time::Duration::from_secs(30);

fn time(ms: i64) -> Timestamp {
    Timestamp::from_unix_millis(ms)
}

fn optional_time(ms: i64) -> Option<Timestamp> {
    (ms != 0).then(|| time(ms))
}

fn roles(raw: &[String]) -> Result<Vec<Role>, String> {
    raw.iter()
        .map(|r| Role::parse(r).map_err(|e| e.to_string()))
        .collect()
}

fn username(raw: &str) -> Result<Username, String> {
    Username::parse(raw).map_err(|e| format!("the server sent an invalid username: {e}"))
}

/// A user as the admin API lists it, and whether it is locked.
///
/// # Errors
/// When the server sends what no user can be.
pub fn user(u: &pb::User) -> Result<(User, bool), String> {
    Ok((
        User {
            id: UserId::from_stored(u.id.clone()),
            username: username(&u.username)?,
            roles: roles(&u.roles)?,
            enabled: u.enabled,
            created_at: time(u.created_at_ms),
        },
        u.locked,
    ))
}

/// A session as the admin API lists it (of its user, only the name is known).
///
/// # Errors
/// When the server sends an invalid username.
pub fn session(s: &pb::Session) -> Result<Session, String> {
    Ok(Session {
        id: FamilyId::from_stored(s.id.clone()),
        user: User {
            id: UserId::from_stored(String::new()),
            username: username(&s.username)?,
            roles: Vec::new(),
            enabled: true,
            created_at: time(0),
        },
        created_at: time(s.created_at_ms),
        last_used_at: optional_time(s.last_used_at_ms),
        expires_at: time(s.expires_at_ms),
        origin: SessionOrigin {
            source_addr: Some(s.source_addr.clone()).filter(|a| !a.is_empty()),
            user_agent: Some(s.user_agent.clone()).filter(|a| !a.is_empty()),
        },
    })
}

/// An API key as the admin API lists it.
///
/// # Errors
/// When the server sends an invalid id, username or role.
pub fn api_key(k: &pb::ApiKey) -> Result<ApiKeyListing, String> {
    Ok(ApiKeyListing {
        key: ApiKey {
            id: ApiKeyId::parse(&k.id).ok_or("the server sent an invalid api key id")?,
            user_id: UserId::from_stored(String::new()),
            name: k.name.clone(),
            roles: roles(&k.roles)?,
            created_at: time(k.created_at_ms),
            expires_at: optional_time(k.expires_at_ms),
            last_used_at: optional_time(k.last_used_at_ms),
            revoked_at: optional_time(k.revoked_at_ms),
        },
        username: username(&k.username)?,
    })
}

/// A signing key as the admin API lists it.
///
/// # Errors
/// When the server sends an unknown state.
pub fn signing_key(k: &pb::SigningKey) -> Result<KeyInfo, String> {
    let state = [
        KeyState::Pending,
        KeyState::Active,
        KeyState::Retiring,
        KeyState::Retired,
    ]
    .into_iter()
    .find(|s| s.as_str() == k.state)
    .ok_or_else(|| format!("the server sent an unknown key state {:?}", k.state))?;
    Ok(KeyInfo {
        kid: k.kid.clone(),
        algorithm: k.algorithm.clone(),
        state,
        encrypted: k.encrypted,
        created_at: time(k.created_at_ms),
        activates_at: time(k.activates_at_ms),
        retires_at: optional_time(k.retires_at_ms),
        unpublished_at: optional_time(k.unpublished_at_ms),
    })
}

/// An audit event as the admin API returns it.
///
/// # Errors
/// When the server sends an unknown event type.
pub fn audit_event(e: pb::AuditEvent) -> Result<AuditEvent, String> {
    let text = |s: String| Some(s).filter(|s| !s.is_empty());
    Ok(AuditEvent {
        time: time(e.time_ms),
        kind: AuditKind::parse(&e.event_type)
            .ok_or_else(|| format!("the server sent an unknown event type {:?}", e.event_type))?,
        user_id: text(e.user_id),
        username: text(e.username),
        source: text(e.source),
        request_id: text(e.request_id),
        detail: text(e.detail),
    })
}
