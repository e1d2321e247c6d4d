//! The JSON mapping of `auth.v1.AdminService` and `auth.v1.AccountService`, as their
//! `google.api.http` annotations declare it (`GET /v1/admin/users`, `POST /v1/admin/users`,
//! `GET /v1/account/me`, …): grpc-gateway conventions, like the AuthService routes
//! ([`super::json`]).
//!
//! A POST's body is the request message as proto3 JSON (an empty body is the empty message);
//! a GET's or DELETE's query parameters fill it ([`super::query`]); path variables fill the
//! fields they name. Each route then calls the *same* [`AdminApi`] / [`AccountApi`] method the
//! gRPC server calls, with the `authorization` header as metadata and the request context the
//! layer stack resolved, so authorisation (bearer tokens only: no client certificate reaches
//! this port's handlers), auditing and every rule are theirs. Answers and errors are written
//! as [`super::json`] writes them. `FollowAudit`, a server stream, has no JSON route.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Request, State};
use axum::http::{StatusCode, header};
use axum::response::Response;
use axum::routing::{delete, get, post};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use tonic::Status;

use super::errors::{status_response, with_status};
use super::json::{is_json, reply};
use crate::grpc::account::AccountApi;
use crate::grpc::admin::AdminApi;
use crate::grpc::pb::account_service_server::AccountService;
use crate::grpc::pb::admin_service_server::AdminService;

/// What the routes need: the two gRPC services' handlers, and the body limit.
#[derive(Clone)]
pub struct AdminJsonApi {
    admin: Arc<AdminApi>,
    account: Arc<AccountApi>,
    max_body_bytes: usize,
}

impl AdminJsonApi {
    pub fn new(admin: Arc<AdminApi>, account: Arc<AccountApi>, max_body_bytes: usize) -> Self {
        Self {
            admin,
            account,
            max_body_bytes,
        }
    }
}

type PathVars = Option<Path<HashMap<String, String>>>;

/// A route whose request is the JSON body (plus path variables).
macro_rules! body {
    ($service:ident . $method:ident) => {
        |State(s): State<AdminJsonApi>, path: PathVars, r: Request| async move {
            let service = Arc::clone(&s.$service);
            with_body(
                &s,
                path,
                r,
                move |req| async move { service.$method(req).await },
            )
            .await
        }
    };
}

/// A route whose request is the query parameters (plus path variables) of message `$message`.
macro_rules! query {
    ($service:ident . $method:ident, $message:literal) => {
        |State(s): State<AdminJsonApi>, path: PathVars, r: Request| async move {
            let service = Arc::clone(&s.$service);
            with_query($message, path, r, move |req| async move {
                service.$method(req).await
            })
            .await
        }
    };
}

/// Every annotated route of both services.
pub fn routes(api: AdminJsonApi) -> Router {
    Router::new()
        .route(
            "/v1/admin/users",
            post(body!(admin.create_user)).get(query!(admin.list_users, "ListUsersRequest")),
        )
        .route(
            "/v1/admin/users/{username}",
            get(query!(admin.get_user, "GetUserRequest"))
                .delete(query!(admin.delete_user, "DeleteUserRequest")),
        )
        .route(
            "/v1/admin/users/{username}/roles",
            post(body!(admin.update_user_roles)),
        )
        .route(
            "/v1/admin/users/{username}/enabled",
            post(body!(admin.set_user_enabled)),
        )
        .route(
            "/v1/admin/users/{username}/password",
            post(body!(admin.set_user_password)),
        )
        .route(
            "/v1/admin/users/{username}/unlock",
            post(body!(admin.unlock_user)),
        )
        .route(
            "/v1/admin/users/{username}/sessions",
            delete(query!(
                admin.revoke_user_sessions,
                "RevokeUserSessionsRequest"
            )),
        )
        .route(
            "/v1/admin/sessions",
            get(query!(admin.list_sessions, "ListSessionsRequest")),
        )
        .route(
            "/v1/admin/sessions/{id}",
            delete(query!(admin.revoke_session, "RevokeSessionRequest")),
        )
        .route(
            "/v1/admin/api-keys",
            post(body!(admin.create_api_key))
                .get(query!(admin.list_api_keys, "ListApiKeysRequest")),
        )
        .route(
            "/v1/admin/api-keys/{id}",
            delete(query!(admin.revoke_api_key, "RevokeApiKeyRequest")),
        )
        .route(
            "/v1/admin/signing-keys",
            get(query!(admin.list_signing_keys, "ListSigningKeysRequest")),
        )
        .route(
            "/v1/admin/signing-keys/rotate",
            post(body!(admin.rotate_signing_key)),
        )
        .route(
            "/v1/admin/signing-keys/{kid}/retire",
            post(body!(admin.retire_signing_key)),
        )
        .route(
            "/v1/admin/audit",
            get(query!(admin.query_audit, "QueryAuditRequest")),
        )
        .route(
            "/v1/account/me",
            get(query!(account.get_me, "GetMeRequest")),
        )
        .route("/v1/account/password", post(body!(account.change_password)))
        .route(
            "/v1/account/sessions",
            get(query!(account.list_my_sessions, "ListMySessionsRequest")).delete(query!(
                account.revoke_all_my_sessions,
                "RevokeAllMySessionsRequest"
            )),
        )
        .route(
            "/v1/account/sessions/{id}",
            delete(query!(account.revoke_my_session, "RevokeSessionRequest")),
        )
        .route(
            "/v1/account/api-keys",
            post(body!(account.create_my_api_key))
                .get(query!(account.list_my_api_keys, "ListMyApiKeysRequest")),
        )
        .route(
            "/v1/account/api-keys/{id}",
            delete(query!(account.revoke_my_api_key, "RevokeApiKeyRequest")),
        )
        .with_state(api)
}

fn path_vars(path: PathVars) -> Vec<(String, String)> {
    path.map(|Path(vars)| vars.into_iter().collect())
        .unwrap_or_default()
}

/// A POST: the body (JSON, or empty) with the path variables set on it.
async fn with_body<Req, Res, F, Fut>(
    api: &AdminJsonApi,
    path: PathVars,
    request: Request,
    call: F,
) -> Response
where
    Req: DeserializeOwned,
    Res: Serialize,
    F: FnOnce(tonic::Request<Req>) -> Fut,
    Fut: Future<Output = Result<tonic::Response<Res>, Status>>,
{
    let (parts, body) = request.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, api.max_body_bytes).await else {
        return with_status(
            StatusCode::PAYLOAD_TOO_LARGE,
            &Status::resource_exhausted("request body too large"),
        );
    };
    let mut object = Map::new();
    if !bytes.iter().all(u8::is_ascii_whitespace) {
        if !is_json(parts.headers.get(header::CONTENT_TYPE)) {
            return with_status(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                &Status::invalid_argument("content-type must be application/json"),
            );
        }
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(Value::Object(given)) => object = given,
            _ => {
                return status_response(&Status::invalid_argument("malformed JSON request body"));
            }
        }
    }
    // As grpc-gateway: a path variable wins over the same field in the body.
    for (name, value) in path_vars(path) {
        object.insert(name, Value::String(value));
    }
    decode_and_call(parts, object, call).await
}

/// A GET or DELETE: the path variables and query parameters as the message `message`.
async fn with_query<Req, Res, F, Fut>(
    message: &str,
    path: PathVars,
    request: Request,
    call: F,
) -> Response
where
    Req: DeserializeOwned,
    Res: Serialize,
    F: FnOnce(tonic::Request<Req>) -> Fut,
    Fut: Future<Output = Result<tonic::Response<Res>, Status>>,
{
    let (parts, _) = request.into_parts();
    let mut params = path_vars(path);
    match serde_urlencoded::from_str::<Vec<(String, String)>>(parts.uri.query().unwrap_or("")) {
        Ok(query) => params.extend(query),
        Err(_) => return status_response(&Status::invalid_argument("malformed query string")),
    }
    match super::query::object(message, &params) {
        Ok(object) => decode_and_call(parts, object, call).await,
        Err(why) => status_response(&Status::invalid_argument(why)),
    }
}

async fn decode_and_call<Req, Res, F, Fut>(
    parts: http::request::Parts,
    object: Map<String, Value>,
    call: F,
) -> Response
where
    Req: DeserializeOwned,
    Res: Serialize,
    F: FnOnce(tonic::Request<Req>) -> Fut,
    Fut: Future<Output = Result<tonic::Response<Res>, Status>>,
{
    let Ok(message) = serde_json::from_value::<Req>(Value::Object(object)) else {
        return status_response(&Status::invalid_argument(
            "a field of the request has the wrong type",
        ));
    };
    reply(
        call(tonic::Request::from_http(http::Request::from_parts(
            parts, message,
        )))
        .await,
    )
}
