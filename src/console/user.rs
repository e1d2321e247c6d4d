//! One user's page — details, their sessions, their API keys and their recent audit events —
//! and the changes made from it: enable or disable, roles, unlock, set password, and delete
//! (after a confirmation page). Each change is one call of the use case the admin API calls;
//! a refusal is shown beside the field it is about, and nothing changes.

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use maud::{Markup, html};
use serde::Deserialize;

use super::layout::{Nav, Notice, badge, csrf_field, field, notice, segment, time, user_href};
use super::session::{Admin, admit};
use super::{ConsoleState, admin_failure, api_keys, audit, refused, role_list, sessions};
use crate::domain::User;
use crate::service::{AdminError, RequestContext};

/// Audit events shown on a user's page.
const RECENT_EVENTS: u32 = 20;

/// `?done=…`: which change the page is shown after (a fixed set, never echoed text).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Done {
    done: String,
}

impl Done {
    fn notice(&self) -> Option<Notice> {
        let text = match self.done.as_str() {
            "created" => "User created.",
            "enabled" => "User enabled.",
            "disabled" => "User disabled; their sessions were ended.",
            "unlocked" => "Login failures cleared.",
            "roles" => "Roles saved. Tokens already issued keep their roles until they expire.",
            "password" => "Password set; the user's sessions were ended.",
            "session-ended" => "Session ended.",
            "sessions-ended" => "All sessions ended.",
            "key-revoked" => "API key revoked.",
            _ => return None,
        };
        Some(Notice::Done(text.to_owned()))
    }
}

/// What a page shows beyond the stored state: refusals by field, a new key's secret.
#[derive(Default)]
pub struct Extra {
    pub notice: Option<Notice>,
    pub password_error: Option<String>,
    pub roles_error: Option<String>,
    pub api_key_error: Option<String>,
    /// A key just created: its name and its secret, shown this once.
    pub new_secret: Option<(String, String)>,
}

pub async fn show(
    State(state): State<ConsoleState>,
    Extension(ctx): Extension<RequestContext>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Query(done): Query<Done>,
) -> Response {
    let admin = match admit(&state, &headers, &ctx).await {
        Ok(a) => a,
        Err(r) => return refused(&state, r),
    };
    let extra = Extra {
        notice: done.notice(),
        ..Extra::default()
    };
    render(&state, admin, &name, extra, StatusCode::OK).await
}

/// The page of user `name`, or the reason it cannot be shown.
pub async fn render(
    state: &ConsoleState,
    admin: Admin,
    name: &str,
    extra: Extra,
    status: StatusCode,
) -> Response {
    match gather(state, &admin, name).await {
        Ok(view) => {
            let body = body(&admin.csrf, &view, &extra);
            let title = format!("User {}", view.user.username);
            admin.page(status, &title, Nav::Users, &body)
        }
        Err(e) => {
            let (status, message) = admin_failure(e);
            let body = html! {
                (notice(Some(&Notice::Error(message))))
                p { a href="/admin/users" { "Back to users" } }
            };
            admin.page(status, "User", Nav::Users, &body)
        }
    }
}

struct View {
    user: User,
    locked: bool,
    sessions: Vec<crate::domain::Session>,
    keys: Vec<crate::domain::ApiKeyListing>,
    events: Vec<crate::domain::AuditEvent>,
}

async fn gather(state: &ConsoleState, admin: &Admin, name: &str) -> Result<View, AdminError> {
    let users = state.deps.users(admin.actor.clone());
    let user = users.get(name).await?;
    let locked = users
        .locked(state.deps.locked_at)
        .await?
        .iter()
        .any(|n| n == user.username.as_str());
    let sessions = state.deps.sessions(admin.actor.clone()).list(name).await?;
    let keys = state
        .deps
        .api_keys(admin.actor.clone())
        .list(Some(name))
        .await?;
    let mut events = users.audit_tail(Some(name), RECENT_EVENTS).await?;
    events.reverse();
    Ok(View {
        user,
        locked,
        sessions,
        keys,
        events,
    })
}

fn body(csrf: &str, view: &View, extra: &Extra) -> Markup {
    let user = &view.user;
    let name = user.username.as_str();
    let href = user_href(name);
    let roles = user
        .roles
        .iter()
        .map(|r| r.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    html! {
        (notice(extra.notice.as_ref()))
        section.card aria-labelledby="details-title" {
            h2 #details-title { "Details" }
            dl.details {
                dt { "Id" } dd { code { (user.id.as_str()) } }
                dt { "State" } dd {
                    @if user.enabled { (badge("enabled", "ok")) } @else { (badge("disabled", "off")) }
                    @if view.locked { " " (badge("locked", "warn")) }
                }
                dt { "Roles" } dd { @if roles.is_empty() { span.muted { "none" } } @else { (roles) } }
                dt { "Created" } dd { (time(user.created_at)) }
            }
            div.actions {
                form method="post" action=(format!("{href}/{}", if user.enabled { "disable" } else { "enable" })) {
                    (csrf_field(csrf))
                    @if user.enabled {
                        button.danger type="submit" { "Disable user" }
                    } @else {
                        button type="submit" { "Enable user" }
                    }
                }
                form method="post" action=(format!("{href}/unlock")) {
                    (csrf_field(csrf))
                    button type="submit" { "Clear login failures (unlock)" }
                }
                a.button.danger href=(format!("{href}/delete")) { "Delete user…" }
            }
        }
        div.columns {
            section.card aria-labelledby="roles-title" {
                h2 #roles-title { "Roles" }
                form method="post" action=(format!("{href}/roles")) {
                    (csrf_field(csrf))
                    (field("roles", "Roles (comma-separated)", "text", &roles, extra.roles_error.as_deref(), "off"))
                    button type="submit" { "Save roles" }
                }
            }
            section.card aria-labelledby="password-title" {
                h2 #password-title { "Set password" }
                form method="post" action=(format!("{href}/password")) {
                    (csrf_field(csrf))
                    (field("password", "New password", "password", "", extra.password_error.as_deref(), "new-password"))
                    button type="submit" { "Set password and end sessions" }
                }
            }
        }
        (sessions::section(csrf, name, &view.sessions))
        (api_keys::section(csrf, name, &view.keys, extra))
        section.card aria-labelledby="events-title" {
            h2 #events-title { "Recent audit events" }
            (audit::table(&view.events))
            p { a href=(format!("/admin/audit?user={}", segment(name))) { "All of this user's events" } }
        }
    }
}

pub async fn act(
    State(state): State<ConsoleState>,
    Extension(ctx): Extension<RequestContext>,
    headers: HeaderMap,
    Path((name, action)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let (admin, form) = match state.admit_form(&headers, &ctx, &body).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let users = state.deps.users(admin.actor.clone());
    let (result, done) = match action.as_str() {
        "enable" => (users.set_enabled(&name, true).await.map(|_| ()), "enabled"),
        "disable" => (
            users.set_enabled(&name, false).await.map(|_| ()),
            "disabled",
        ),
        "unlock" => (users.unlock(&name).await.map(|_| ()), "unlocked"),
        "password" => (
            users
                .set_password(&name, form.get("password"))
                .await
                .map(|_| ()),
            "password",
        ),
        "roles" => (
            set_roles(&state, &admin, &name, form.get("roles")).await,
            "roles",
        ),
        _ => {
            let extra = Extra {
                notice: Some(Notice::Error("no such action".into())),
                ..Extra::default()
            };
            return render(&state, admin, &name, extra, StatusCode::NOT_FOUND).await;
        }
    };
    match result {
        Ok(()) => admin.redirect(&format!("{}?done={done}", user_href(&name))),
        Err(e) => {
            let (status, message) = admin_failure(e);
            let mut extra = Extra::default();
            match action.as_str() {
                "password" => extra.password_error = Some(message),
                "roles" => extra.roles_error = Some(message),
                _ => extra.notice = Some(Notice::Error(message)),
            }
            render(&state, admin, &name, extra, status).await
        }
    }
}

/// Makes the user's roles exactly those typed: adds the missing, removes the others.
async fn set_roles(
    state: &ConsoleState,
    admin: &Admin,
    name: &str,
    typed: &str,
) -> Result<(), AdminError> {
    let users = state.deps.users(admin.actor.clone());
    let current: Vec<String> = users
        .get(name)
        .await?
        .roles
        .iter()
        .map(|r| r.as_str().to_owned())
        .collect();
    let wanted = role_list(typed);
    let add: Vec<String> = wanted
        .iter()
        .filter(|r| !current.contains(r))
        .cloned()
        .collect();
    let remove: Vec<String> = current
        .iter()
        .filter(|r| !wanted.contains(r))
        .cloned()
        .collect();
    users.change_roles(name, &add, &remove).await.map(|_| ())
}

pub async fn confirm_delete(
    State(state): State<ConsoleState>,
    Extension(ctx): Extension<RequestContext>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Response {
    let admin = match admit(&state, &headers, &ctx).await {
        Ok(a) => a,
        Err(r) => return refused(&state, r),
    };
    let href = user_href(&name);
    let body = html! {
        section.card.warning {
            p { "Delete user " strong { (name) } "? Their sessions and API keys end with them. "
                "This cannot be undone." }
            div.actions {
                form method="post" action=(format!("{href}/delete")) {
                    (csrf_field(&admin.csrf))
                    button.danger type="submit" { "Delete " (name) }
                }
                a.button href=(href) { "Cancel" }
            }
        }
    };
    admin.page(StatusCode::OK, "Delete user", Nav::Users, &body)
}

pub async fn delete(
    State(state): State<ConsoleState>,
    Extension(ctx): Extension<RequestContext>,
    headers: HeaderMap,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    let (admin, _) = match state.admit_form(&headers, &ctx, &body).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    match state.deps.users(admin.actor.clone()).delete(&name).await {
        Ok(_) => admin.redirect("/admin/users"),
        Err(e) => {
            let (status, message) = admin_failure(e);
            let extra = Extra {
                notice: Some(Notice::Error(message)),
                ..Extra::default()
            };
            render(&state, admin, &name, extra, status).await
        }
    }
}
