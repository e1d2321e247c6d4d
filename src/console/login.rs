//! Signing in and out. Signing in is the password login every client uses (the per-username
//! throttle, the lockout, the per-source limit of the layer stack, the audit trail), followed by
//! the admin API's authorisation of the new access token; a session of a non-administrator is
//! ended at once. Signing out is Logout: the session's refresh family ends and the access token
//! is revoked.

use axum::Extension;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use maud::html;

use super::layout::{Nav, Notice, csrf_field, field, notice, page};
use super::session::{
    ACCESS_COOKIE, CSRF_FIELD, LOGIN_COOKIE, cleared_cookies, cookie, csrf_matches, new_csrf_token,
    session_cookies, session_parts, set_cookie,
};
use super::{ConsoleState, Form, csrf_refused, unavailable};
use crate::grpc::error::{http_status, to_status};
use crate::service::{AuthError, RequestContext};

/// The sign-in form, with a fresh login CSRF token in its cookie and its hidden field.
pub async fn form(State(state): State<ConsoleState>) -> Response {
    render(&state, StatusCode::OK, "", None)
}

fn render(
    state: &ConsoleState,
    status: StatusCode,
    username: &str,
    error: Option<&str>,
) -> Response {
    let csrf = match new_csrf_token() {
        Ok(t) => t,
        Err(e) => return unavailable(e),
    };
    let body = html! {
        (notice(error.map(|e| Notice::Error(e.to_owned())).as_ref()))
        form.card.narrow method="post" action="/admin/login" {
            (csrf_field(&csrf))
            (field("username", "Username", "text", username, None, "username"))
            (field("password", "Password", "password", "", None, "current-password"))
            button type="submit" { "Sign in" }
        }
        p.muted { "Sign in with an authd account that holds the admin role." }
    };
    let mut response = (
        status,
        Html(page("Sign in", Nav::None, None, &body).into_string()),
    )
        .into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(LOGIN_COOKIE, Some(&csrf), state.secure_cookies),
    );
    response
}

pub async fn submit(
    State(state): State<ConsoleState>,
    Extension(ctx): Extension<RequestContext>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form = Form::parse(&body);
    let expected = cookie(&headers, LOGIN_COOKIE).unwrap_or_default();
    if !csrf_matches(expected, form.get_opt(CSRF_FIELD)) {
        return csrf_refused();
    }
    let username = form.get("username");
    let tokens = match state
        .tokens
        .login(username, form.get("password"), &ctx)
        .await
    {
        Ok(tokens) => tokens,
        Err(e) => {
            let status = to_status(e);
            let message = match crate::grpc::error::retry_after(&status) {
                Some(secs) => format!("{} (about {secs} s)", status.message()),
                None => status.message().to_owned(),
            };
            return render(&state, http_status(status.code()), username, Some(&message));
        }
    };
    match state.access.admin(Some(&tokens.access_token), None).await {
        Ok(_) => {}
        Err(AuthError::CallerForbidden) => {
            // Not an administrator: this session is of no use here.
            let refresh = tokens.refresh_token.expose();
            if let Err(e) = state
                .tokens
                .logout(&refresh, &tokens.access_token, &ctx)
                .await
            {
                return unavailable(e);
            }
            return render(
                &state,
                StatusCode::FORBIDDEN,
                username,
                Some("this account does not hold the admin role"),
            );
        }
        Err(e) => return unavailable(e),
    }
    let csrf = match new_csrf_token() {
        Ok(t) => t,
        Err(e) => return unavailable(e),
    };
    let mut response = Redirect::to("/admin/").into_response();
    let cookies = session_cookies(&tokens, &csrf, state.secure_cookies)
        .into_iter()
        .chain([set_cookie(LOGIN_COOKIE, None, state.secure_cookies)]);
    for c in cookies {
        response.headers_mut().append(header::SET_COOKIE, c);
    }
    response
}

/// Ends the browser's session (any signed-in user may, administrator or not).
pub async fn logout(
    State(state): State<ConsoleState>,
    Extension(ctx): Extension<RequestContext>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some((csrf, refresh)) = session_parts(&headers) else {
        return Redirect::to("/admin/login").into_response();
    };
    if !csrf_matches(csrf, Form::parse(&body).get_opt(CSRF_FIELD)) {
        return csrf_refused();
    }
    let access = cookie(&headers, ACCESS_COOKIE).unwrap_or_default();
    if let Err(e) = state.tokens.logout(refresh, access, &ctx).await {
        return unavailable(e);
    }
    let mut response = Redirect::to("/admin/login").into_response();
    for c in cleared_cookies(state.secure_cookies) {
        response.headers_mut().append(header::SET_COOKIE, c);
    }
    response
}
