//! The users page: search by name prefix, role, disabled or locked; one page at a time (the
//! admin API's paging, token and all); and the form that creates a user, with each error shown
//! beside the field it is about.

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use maud::{Markup, html};
use serde::Deserialize;

use super::layout::{Nav, Notice, badge, csrf_field, field, notice, time, user_href};
use super::session::{Admin, admit};
use super::{ConsoleState, admin_failure, refused, role_list};
use crate::service::paging::{Page, PageRequest};
use crate::service::{AdminError, ListedUser, RequestContext, UserFilter};

/// Users per page.
const PAGE_SIZE: usize = 25;

/// The search form's fields (and the page token), as query parameters.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Search {
    q: String,
    role: String,
    disabled: Option<String>,
    locked: Option<String>,
    page: String,
}

impl Search {
    fn filter(&self) -> UserFilter {
        let some = |s: &str| (!s.trim().is_empty()).then(|| s.trim().to_owned());
        UserFilter {
            name_prefix: some(&self.q),
            role: some(&self.role),
            disabled_only: self.disabled.is_some(),
            locked_only: self.locked.is_some(),
        }
    }

    /// This search's query string for another page token.
    fn with_page(&self, token: &str) -> String {
        let mut pairs = vec![("q", self.q.as_str()), ("role", self.role.as_str())];
        if self.disabled.is_some() {
            pairs.push(("disabled", "on"));
        }
        if self.locked.is_some() {
            pairs.push(("locked", "on"));
        }
        pairs.push(("page", token));
        serde_urlencoded::to_string(pairs).unwrap_or_default()
    }
}

/// What the create form shows again after a refusal.
#[derive(Default)]
struct CreateForm<'a> {
    username: &'a str,
    roles: &'a str,
    username_error: Option<String>,
    password_error: Option<String>,
    roles_error: Option<String>,
    other_error: Option<String>,
}

pub async fn list(
    State(state): State<ConsoleState>,
    Extension(ctx): Extension<RequestContext>,
    headers: HeaderMap,
    Query(search): Query<Search>,
) -> Response {
    let admin = match admit(&state, &headers, &ctx).await {
        Ok(a) => a,
        Err(r) => return refused(&state, r),
    };
    render(
        &state,
        admin,
        &search,
        &CreateForm::default(),
        StatusCode::OK,
        None,
    )
    .await
}

pub async fn create(
    State(state): State<ConsoleState>,
    Extension(ctx): Extension<RequestContext>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (admin, form) = match state.admit_form(&headers, &ctx, &body).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let username = form.get("username");
    let roles = form.get("roles");
    let created = state
        .deps
        .users(admin.actor.clone())
        .add(username, form.get("password"), &role_list(roles))
        .await;
    match created {
        Ok(user) => admin.redirect(&format!(
            "{}?done=created",
            user_href(user.username.as_str())
        )),
        Err(e) => {
            let mut refill = CreateForm {
                username,
                roles,
                ..CreateForm::default()
            };
            let field = match &e {
                AdminError::InvalidUsername(_) | AdminError::DuplicateUser(_) => {
                    &mut refill.username_error
                }
                AdminError::InvalidPassword(_) => &mut refill.password_error,
                AdminError::InvalidRole(_) => &mut refill.roles_error,
                _ => &mut refill.other_error,
            };
            let (status, message) = admin_failure(e);
            *field = Some(message);
            render(&state, admin, &Search::default(), &refill, status, None).await
        }
    }
}

async fn render(
    state: &ConsoleState,
    admin: Admin,
    search: &Search,
    create: &CreateForm<'_>,
    status: StatusCode,
    done: Option<Notice>,
) -> Response {
    let users = state.deps.users(admin.actor.clone());
    let page = users
        .list_page(
            &search.filter(),
            state.deps.locked_at,
            &PageRequest::new(PAGE_SIZE, search.page.clone()),
        )
        .await;
    let (status, listing, error) = match page {
        Ok(page) => (status, Some(page), None),
        Err(e) => {
            let (status, message) = admin_failure(e);
            (status, None, Some(Notice::Error(message)))
        }
    };
    let body = html! {
        (notice(done.as_ref().or(error.as_ref())))
        (search_form(search))
        @if let Some(page) = &listing {
            (table(page, search))
        }
        (create_form(&admin.csrf, create))
    };
    admin.page(status, "Users", Nav::Users, &body)
}

fn search_form(search: &Search) -> Markup {
    html! {
        form.card.filters method="get" action="/admin/users" role="search" {
            div.field {
                label for="q" { "Name starts with" }
                input #q name="q" type="search" value=(search.q);
            }
            div.field {
                label for="role" { "Role" }
                input #role name="role" type="text" value=(search.role);
            }
            div.check {
                input #disabled name="disabled" type="checkbox" checked[search.disabled.is_some()];
                label for="disabled" { "Disabled only" }
            }
            div.check {
                input #locked name="locked" type="checkbox" checked[search.locked.is_some()];
                label for="locked" { "Locked only" }
            }
            button type="submit" { "Search" }
        }
    }
}

fn table(page: &Page<ListedUser>, search: &Search) -> Markup {
    html! {
        div.scroll {
            table {
                caption.sr { "Users" }
                thead { tr { th { "Username" } th { "Roles" } th { "State" } th { "Created" } } }
                tbody {
                    @for listed in &page.items {
                        @let user = &listed.user;
                        tr {
                            td { a href=(user_href(user.username.as_str())) { (user.username) } }
                            td { (user.roles.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(", ")) }
                            td {
                                @if user.enabled { (badge("enabled", "ok")) } @else { (badge("disabled", "off")) }
                                @if listed.locked { " " (badge("locked", "warn")) }
                            }
                            td { (time(user.created_at)) }
                        }
                    }
                    @if page.items.is_empty() {
                        tr { td colspan="4" { "No users match." } }
                    }
                }
            }
        }
        nav.pager aria-label="Pages" {
            @if !search.page.is_empty() {
                a href=(format!("/admin/users?{}", search.with_page(""))) { "First page" }
            }
            @if let Some(next) = &page.next_page_token {
                a href=(format!("/admin/users?{}", search.with_page(next))) { "Next page" }
            }
        }
    }
}

fn create_form(csrf: &str, f: &CreateForm<'_>) -> Markup {
    html! {
        section.card aria-labelledby="create-title" {
            h2 #create-title { "Create a user" }
            @if let Some(e) = &f.other_error { p.notice.error role="alert" { (e) } }
            form method="post" action="/admin/users" {
                (csrf_field(csrf))
                (field("username", "Username", "text", f.username, f.username_error.as_deref(), "off"))
                (field("password", "Password", "password", "", f.password_error.as_deref(), "new-password"))
                (field("roles", "Roles (comma-separated)", "text", f.roles, f.roles_error.as_deref(), "off"))
                button type="submit" { "Create user" }
            }
        }
    }
}
