//! OAuth 2.0 endpoints, thin edges over the same [`TokenService`] methods the gRPC handlers
//! call (the layer stack, throttling and every token rule apply alike):
//!
//! - `POST /oauth2/token` (RFC 6749), form-encoded: `refresh_token` (the same rotation, reuse
//!   detection and grace window as `RefreshToken`), `client_credentials` (an API key is the
//!   client: `client_id` is the key's id, `client_secret` its secret, by HTTP Basic or form
//!   fields; no refresh token) and, only with `oauth2_password_grant = true`, `password`.
//!   Answers §5.1 JSON or §5.2 errors, `Cache-Control: no-store`.
//! - `POST /oauth2/revoke` (RFC 7009): `Logout` for one token of either kind; 200 for unknown
//!   tokens.
//! - `POST /oauth2/introspect` (RFC 7662): the caller authenticates (an API key by Basic, or a
//!   bearer access token) and, when `introspect_role` is set, needs that role, as on gRPC;
//!   anything not active is only `{"active": false}`.
//!
//! Errors are named once in `grpc::error::oauth_error` and written by [`super::errors`].

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine;
use serde::Deserialize;

use super::errors::{no_store_json, oauth_response};
use crate::crypto::api_key::API_KEY_PREFIX;
use crate::grpc::error::{OAuthCredential, OAuthError, oauth_error};
use crate::grpc::{TOKEN_TYPE, introspection};
use crate::service::{RequestContext, TokenService};

/// The grant types `/oauth2/token` accepts with this configuration, as metadata lists them.
pub fn grant_types(password_grant: bool) -> Vec<&'static str> {
    let mut grants = vec!["refresh_token", "client_credentials"];
    if password_grant {
        grants.push("password");
    }
    grants
}

/// How clients authenticate at the token endpoint (RFC 8414 names).
pub const CLIENT_AUTH_METHODS: &[&str] = &["client_secret_basic", "client_secret_post"];

/// What the OAuth 2.0 routes need.
#[derive(Clone)]
pub struct OAuthApi {
    service: Arc<TokenService>,
    password_grant: bool,
    max_body_bytes: usize,
}

impl OAuthApi {
    pub fn new(service: Arc<TokenService>, password_grant: bool, max_body_bytes: usize) -> Self {
        Self {
            service,
            password_grant,
            max_body_bytes,
        }
    }
}

/// The three routes.
pub fn routes(api: OAuthApi) -> Router {
    Router::new()
        .route("/oauth2/token", post(token))
        .route("/oauth2/revoke", post(revoke))
        .route("/oauth2/introspect", post(introspect))
        .with_state(api)
}

/// Every parameter the three endpoints read; the rest are ignored (RFC 6749 §3.2).
#[derive(Default, Deserialize)]
struct Form {
    grant_type: Option<String>,
    refresh_token: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    username: Option<String>,
    password: Option<String>,
    token: Option<String>,
    token_type_hint: Option<String>,
}

/// A form request, taken apart: headers, parameters, and the context the stack resolved.
struct FormRequest {
    headers: HeaderMap,
    form: Form,
    ctx: RequestContext,
}

async fn read_form(api: &OAuthApi, request: Request) -> Result<FormRequest, OAuthError> {
    let (mut parts, body) = request.into_parts();
    let form_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| {
            t.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if !form_type {
        return Err(OAuthError::invalid_request(
            "content-type must be application/x-www-form-urlencoded",
        ));
    }
    let bytes = axum::body::to_bytes(body, api.max_body_bytes)
        .await
        .map_err(|_| OAuthError::invalid_request("request body too large"))?;
    let form: Form = serde_urlencoded::from_bytes(&bytes)
        .map_err(|_| OAuthError::invalid_request("malformed form body"))?;
    let ctx = parts
        .extensions
        .remove::<RequestContext>()
        .unwrap_or_else(|| RequestContext::new(None, None));
    Ok(FormRequest {
        headers: parts.headers,
        form,
        ctx,
    })
}

/// A parameter, where an empty value counts as absent (RFC 6749 §3.1).
fn param<'a>(value: Option<&'a String>, name: &'static str) -> Result<&'a str, OAuthError> {
    value
        .map(String::as_str)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| OAuthError::invalid_request(name))
}

async fn token(State(api): State<OAuthApi>, request: Request) -> Response {
    match grant(&api, request).await {
        Ok(body) => (no_store_json(), body.to_string()).into_response(),
        Err(e) => oauth_response(&e),
    }
}

async fn grant(api: &OAuthApi, request: Request) -> Result<serde_json::Value, OAuthError> {
    let FormRequest { headers, form, ctx } = read_form(api, request).await?;
    let service = &api.service;
    let issued = |access_token: String, refresh_token: Option<String>| {
        let mut body = serde_json::json!({
            "access_token": access_token,
            "token_type": TOKEN_TYPE,
            "expires_in": service.settings().access_ttl.as_secs(),
        });
        if let Some(refresh) = refresh_token {
            body["refresh_token"] = refresh.into();
        }
        body
    };
    match param(form.grant_type.as_ref(), "grant_type is required")? {
        "refresh_token" => {
            let presented = param(form.refresh_token.as_ref(), "refresh_token is required")?;
            let tokens = service
                .refresh(presented, &ctx)
                .await
                .map_err(|e| oauth_error(e, OAuthCredential::Grant))?;
            Ok(issued(
                tokens.access_token,
                Some(tokens.refresh_token.expose()),
            ))
        }
        "client_credentials" => {
            let key = client_api_key(&headers, &form)?;
            let access = service
                .login_with_api_key(&key, &ctx)
                .await
                .map_err(|e| oauth_error(e, OAuthCredential::Client))?;
            Ok(issued(access, None))
        }
        "password" if api.password_grant => {
            let username = param(form.username.as_ref(), "username is required")?;
            let password = param(form.password.as_ref(), "password is required")?;
            let tokens = service
                .login(username, password, &ctx)
                .await
                .map_err(|e| oauth_error(e, OAuthCredential::Grant))?;
            Ok(issued(
                tokens.access_token,
                Some(tokens.refresh_token.expose()),
            ))
        }
        _ => Err(OAuthError::unsupported_grant_type()),
    }
}

/// The API key a client presents as `client_id` and `client_secret`, by HTTP Basic or in the
/// form — one of the two, never both (RFC 6749 §2.3).
fn client_api_key(headers: &HeaderMap, form: &Form) -> Result<String, OAuthError> {
    let basic = basic_credentials(headers)?;
    let posted = form.client_id.is_some() || form.client_secret.is_some();
    let (id, secret) = match (basic, posted) {
        (Some(_), true) => {
            return Err(OAuthError::invalid_request(
                "use one client authentication method",
            ));
        }
        (Some(pair), false) => pair,
        (None, _) => (
            form.client_id.clone().unwrap_or_default(),
            form.client_secret.clone().unwrap_or_default(),
        ),
    };
    if id.is_empty() || secret.is_empty() {
        return Err(OAuthError::invalid_client("client authentication required"));
    }
    Ok(format!("{API_KEY_PREFIX}{id}_{secret}"))
}

/// `Authorization: Basic` credentials, when that scheme is used.
fn basic_credentials(headers: &HeaderMap) -> Result<Option<(String, String)>, OAuthError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value.to_str().unwrap_or_default();
    let Some((scheme, encoded)) = value.split_once(' ') else {
        return Ok(None);
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Ok(None);
    }
    let malformed = || OAuthError::invalid_client("malformed basic credentials");
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|_| malformed())?;
    let decoded = String::from_utf8(decoded).map_err(|_| malformed())?;
    let (id, secret) = decoded.split_once(':').ok_or_else(malformed)?;
    // RFC 6749 §2.3.1: both are form-encoded before Basic encoding.
    let unescape = |s: &str| {
        serde_urlencoded::from_str::<Vec<(String, String)>>(&format!("v={s}"))
            .ok()
            .and_then(|mut v| v.pop())
            .map(|(_, v)| v)
            .ok_or_else(malformed)
    };
    Ok(Some((unescape(id)?, unescape(secret)?)))
}

/// RFC 7009: the token's session ends (a refresh token) or it is revoked until it expires (an
/// access token). The hint only narrows the search; unknown tokens are 200 too.
async fn revoke(State(api): State<OAuthApi>, request: Request) -> Response {
    let result = async {
        let FormRequest { form, ctx, .. } = read_form(&api, request).await?;
        let token = param(form.token.as_ref(), "token is required")?;
        let (refresh, access) = match form.token_type_hint.as_deref() {
            Some("access_token") => ("", token),
            Some("refresh_token") => (token, ""),
            _ => (token, token),
        };
        api.service
            .logout(refresh, access, &ctx)
            .await
            .map_err(|e| oauth_error(e, OAuthCredential::Grant))
    }
    .await;
    match result {
        Ok(()) => (no_store_json(), "{}").into_response(),
        Err(e) => oauth_response(&e),
    }
}

/// RFC 7662, for an authenticated caller.
async fn introspect(State(api): State<OAuthApi>, request: Request) -> Response {
    let result = async {
        let FormRequest { headers, form, ctx } = read_form(&api, request).await?;
        authenticate_caller(&api, &headers, &form, &ctx).await?;
        let token = param(form.token.as_ref(), "token is required")?;
        api.service
            .introspect(token)
            .await
            .map_err(|e| oauth_error(e, OAuthCredential::Grant))
    }
    .await;
    let found = match result {
        Ok(found) => introspection(found),
        Err(e) => return oauth_response(&e),
    };
    let body = if found.active {
        let mut body = serde_json::json!({
            "active": true,
            "sub": found.sub,
            "exp": found.exp,
            "iat": found.iat,
        });
        let optional = [
            ("username", found.username),
            ("iss", found.iss),
            ("jti", found.jti),
            ("client_id", found.client_id),
        ];
        for (name, value) in optional {
            if !value.is_empty() {
                body[name] = value.into();
            }
        }
        if found.nbf != 0 {
            body["nbf"] = found.nbf.into();
        }
        if !found.aud.is_empty() {
            body["aud"] = found.aud.into();
        }
        // RFC 7662's token_type is the RFC 6749 §7.1 type of an access token.
        body["token_type"] = if found.token_type == "access_token" {
            TOKEN_TYPE.into()
        } else {
            found.token_type.into()
        };
        body
    } else {
        serde_json::json!({ "active": false })
    };
    (no_store_json(), body.to_string()).into_response()
}

/// The caller of introspection: an API key by Basic (or form), or a bearer access token that
/// is active; then the `introspect_role` check the gRPC `Introspect` makes.
async fn authenticate_caller(
    api: &OAuthApi,
    headers: &HeaderMap,
    form: &Form,
    ctx: &RequestContext,
) -> Result<(), OAuthError> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(authd_verifier::parse_bearer);
    let caller_token = match bearer {
        Some(token) => {
            let found = api
                .service
                .introspect(token)
                .await
                .map_err(|e| oauth_error(e, OAuthCredential::Client))?;
            if !matches!(found, crate::service::Introspection::Access(_)) {
                return Err(OAuthError::invalid_client("the bearer token is not active"));
            }
            token.to_owned()
        }
        None => {
            let key = client_api_key(headers, form)?;
            api.service
                .login_with_api_key(&key, ctx)
                .await
                .map_err(|e| oauth_error(e, OAuthCredential::Client))?
        }
    };
    api.service
        .authorize_introspection(Some(&caller_token))
        .await
        .map_err(|e| oauth_error(e, OAuthCredential::Client))
}
