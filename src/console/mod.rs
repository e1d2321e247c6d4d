//! The admin web console: server-rendered HTML pages under `/admin/` on the HTTP port, for the
//! administrators the admin API admits. It owns the pages, their forms and the browser session
//! (`session`); it owns no rule: every read and change goes through the same use cases the
//! admin gRPC API calls (`UserAdmin`, `SessionAdmin`, `ApiKeyAdmin`, `KeyManager`,
//! `AdminAccess`, the password login), and errors are worded by `grpc::error`, as the API's.
//!
//! One file per page group: `login` (sign in and out), `overview` (the last hour's activity as
//! an SVG chart), `users` (search, paging, create), `user` (one user and the changes to it),
//! `sessions`, `api_keys`, `keys` (signing keys), `audit` (the filtered log and its live tail),
//! and `layout`, the templates they share. Static files (one stylesheet, one small script)
//! are compiled into the binary.
//!
//! Every response carries a CSP that allows scripts and styles from this origin only (so no
//! inline script), `X-Frame-Options: DENY` and `Cache-Control: no-store`; every request passes
//! the same layer stack as the API routes (request context, metrics and log, per-source limit).

mod api_keys;
mod audit;
mod keys;
mod layout;
mod login;
mod overview;
pub mod session;
mod sessions;
mod user;
mod users;

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use ipnet::IpNet;
use maud::Markup;

use self::layout::{Nav, page};
use self::session::{Admin, CSRF_FIELD, Refused, admit, csrf_matches};
use crate::grpc::admin::AdminDeps;
use crate::grpc::error::{admin_status, http_status, to_status};
use crate::http::errors::HttpRefusal;
use crate::middleware::RequestStack;
use crate::service::{AdminAccess, AdminError, AuthError, RequestContext, TokenService};

/// The largest form accepted (the console's forms are a few short fields).
const MAX_FORM_BYTES: usize = 16 * 1024;

/// The paths the per-source limit applies to: all of the console.
pub const LIMITED_PATHS: &[&str] = &["/admin/"];

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// What the console's handlers need.
#[derive(Clone)]
pub struct ConsoleState {
    tokens: Arc<TokenService>,
    access: Arc<AdminAccess>,
    deps: AdminDeps,
    /// Whether cookies are marked `Secure` (not on plain HTTP on loopback).
    secure_cookies: bool,
}

impl ConsoleState {
    pub fn new(
        tokens: Arc<TokenService>,
        access: Arc<AdminAccess>,
        deps: AdminDeps,
        secure_cookies: bool,
    ) -> Self {
        Self {
            tokens,
            access,
            deps,
            secure_cookies,
        }
    }

    /// The administrator of a POST whose form carries the session's CSRF token, and the form.
    async fn admit_form(
        &self,
        headers: &HeaderMap,
        ctx: &RequestContext,
        body: &Bytes,
    ) -> Result<(Admin, Form), Response> {
        let admin = admit(self, headers, ctx)
            .await
            .map_err(|r| refused(self, r))?;
        let form = Form::parse(body);
        if !csrf_matches(&admin.csrf, form.get_opt(CSRF_FIELD)) {
            return Err(csrf_refused());
        }
        Ok((admin, form))
    }
}

/// The console's routes, behind the request layer stack.
pub fn router(state: ConsoleState, trusted_proxies: Vec<IpNet>) -> Router {
    let limiter = state.tokens.source_limiter();
    Router::new()
        .route("/admin", get(|| async { Redirect::permanent("/admin/") }))
        .route("/admin/", get(overview::show))
        .route("/admin/login", get(login::form).post(login::submit))
        .route("/admin/logout", post(login::logout))
        .route("/admin/users", get(users::list).post(users::create))
        .route("/admin/users/{name}", get(user::show))
        .route("/admin/users/{name}/{action}", post(user::act))
        .route(
            "/admin/users/{name}/delete",
            get(user::confirm_delete).post(user::delete),
        )
        .route("/admin/users/{name}/api-keys", post(api_keys::create))
        .route(
            "/admin/users/{name}/sessions/end-all",
            post(sessions::end_all),
        )
        .route("/admin/sessions/{id}/end", post(sessions::end))
        .route("/admin/api-keys/{id}/revoke", post(api_keys::revoke))
        .route("/admin/keys", get(keys::list))
        .route("/admin/keys/rotate", post(keys::rotate))
        .route(
            "/admin/keys/{kid}/retire",
            get(keys::confirm_retire).post(keys::retire),
        )
        .route("/admin/audit", get(audit::show))
        .route("/admin/audit/rows", get(audit::rows))
        .route("/admin/static/console.css", get(stylesheet))
        .route("/admin/static/console.js", get(script))
        .with_state(state)
        .layer(axum::extract::DefaultBodyLimit::max(MAX_FORM_BYTES))
        .layer(axum::middleware::map_response(security_headers))
        .layer(RequestStack::new(
            limiter,
            LIMITED_PATHS,
            crate::http::peer_address,
            trusted_proxies,
            HttpRefusal,
        ))
}

async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

async fn stylesheet() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("static/console.css"),
    )
        .into_response()
}

async fn script() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("static/console.js"),
    )
        .into_response()
}

/// A submitted form (`application/x-www-form-urlencoded`); a malformed body is an empty form.
pub struct Form(HashMap<String, String>);

impl Form {
    fn parse(body: &[u8]) -> Self {
        Self(serde_urlencoded::from_bytes(body).unwrap_or_default())
    }

    fn get(&self, name: &str) -> &str {
        self.get_opt(name).unwrap_or_default()
    }

    fn get_opt(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }
}

/// Comma- or space-separated role names, as typed.
fn role_list(text: &str) -> Vec<String> {
    text.split([',', ' '])
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .map(str::to_owned)
        .collect()
}

impl Admin {
    /// A page as this administrator sees it.
    fn page(self, status: StatusCode, title: &str, nav: Nav, body: &Markup) -> Response {
        let markup = page(
            title,
            nav,
            Some((self.user.username.as_str(), &self.csrf)),
            body,
        );
        self.respond((status, Html(markup.into_string())).into_response())
    }

    /// After a change: back to `to` (POST, redirect, GET).
    fn redirect(self, to: &str) -> Response {
        self.respond(Redirect::to(to).into_response())
    }

    /// `response` with the refreshed session's cookies, if it was refreshed.
    fn respond(self, mut response: Response) -> Response {
        for cookie in self.set_cookies {
            response.headers_mut().append(header::SET_COOKIE, cookie);
        }
        response
    }
}

/// The answer to a request without an administrator behind it.
fn refused(state: &ConsoleState, refused: Refused) -> Response {
    match refused {
        Refused::SignIn => {
            let mut response = Redirect::to("/admin/login").into_response();
            for cookie in session::cleared_cookies(state.secure_cookies) {
                response.headers_mut().append(header::SET_COOKIE, cookie);
            }
            response
        }
        Refused::NotAdmin => plain_page(
            StatusCode::FORBIDDEN,
            "Not an administrator",
            "This account does not hold the admin role; sign in as an administrator.",
        ),
        Refused::Unavailable(e) => unavailable(e),
    }
}

fn unavailable(e: AuthError) -> Response {
    let status = to_status(e);
    plain_page(
        http_status(status.code()),
        "Temporarily unavailable",
        status.message(),
    )
}

fn csrf_refused() -> Response {
    plain_page(
        StatusCode::FORBIDDEN,
        "Form refused",
        "This form did not come from your console session (its CSRF token is missing or \
         stale); nothing was changed. Go back, reload the page and try again.",
    )
}

/// A page with one message, for someone who may not be signed in.
fn plain_page(status: StatusCode, title: &str, message: &str) -> Response {
    let body = maud::html! {
        p { (message) }
        p { a href="/admin/" { "Back to the console" } }
    };
    (
        status,
        Html(page(title, Nav::None, None, &body).into_string()),
    )
        .into_response()
}

/// An administrative error as the API words it, with its HTTP status.
fn admin_failure(e: AdminError) -> (StatusCode, String) {
    let status = admin_status(e);
    (http_status(status.code()), status.message().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_split_on_commas_and_spaces() {
        assert_eq!(role_list(" a, b  c,,"), ["a", "b", "c"]);
        assert!(role_list("").is_empty());
    }

    #[test]
    fn forms_decode_and_tolerate_garbage() {
        let form = Form::parse(b"csrf=x%2By&name=a+b");
        assert_eq!(form.get("csrf"), "x+y");
        assert_eq!(form.get("name"), "a b");
        assert_eq!(form.get("missing"), "");
        assert!(Form::parse(b"\xff=%").get_opt("csrf").is_none());
    }
}
