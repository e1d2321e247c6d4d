//! A user's sessions on their page (created, last used, expiry, source, user agent), and
//! ending one or all of them: `SessionAdmin`, as `RevokeSession` and `RevokeUserSessions`.

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use maud::{Markup, html};

use super::layout::{Notice, csrf_field, optional_time, segment, time, user_href};
use super::user::{Extra, render};
use super::{ConsoleState, admin_failure};
use crate::domain::Session;
use crate::service::RequestContext;

pub fn section(csrf: &str, username: &str, sessions: &[Session]) -> Markup {
    html! {
        section.card aria-labelledby="sessions-title" {
            h2 #sessions-title { "Sessions (" (sessions.len()) ")" }
            div.scroll {
                table {
                    thead { tr {
                        th { "Created" } th { "Last used" } th { "Expires" } th { "Source" }
                        th { "User agent" } th { span.sr { "Actions" } }
                    } }
                    tbody {
                        @for s in sessions {
                            tr {
                                td { (time(s.created_at)) }
                                td { (optional_time(s.last_used_at)) }
                                td { (time(s.expires_at)) }
                                td { (s.origin.source_addr.as_deref().unwrap_or("—")) }
                                td.ua { (s.origin.user_agent.as_deref().unwrap_or("—")) }
                                td {
                                    form method="post" action=(format!("/admin/sessions/{}/end", segment(s.id.as_str()))) {
                                        (csrf_field(csrf))
                                        input type="hidden" name="user" value=(username);
                                        button.danger type="submit" aria-label=(format!("End session created {}", s.created_at)) { "End" }
                                    }
                                }
                            }
                        }
                        @if sessions.is_empty() {
                            tr { td colspan="6" { "No live sessions." } }
                        }
                    }
                }
            }
            @if !sessions.is_empty() {
                form method="post" action=(format!("{}/sessions/end-all", user_href(username))) {
                    (csrf_field(csrf))
                    button.danger type="submit" { "End all sessions" }
                }
            }
        }
    }
}

pub async fn end(
    State(state): State<ConsoleState>,
    Extension(ctx): Extension<RequestContext>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let (admin, form) = match state.admit_form(&headers, &ctx, &body).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    match state.deps.sessions(admin.actor.clone()).revoke(&id).await {
        Ok(session) => admin.redirect(&format!(
            "{}?done=session-ended",
            user_href(session.user.username.as_str())
        )),
        Err(e) => {
            let (status, message) = admin_failure(e);
            let user = form.get("user").to_owned();
            let extra = Extra {
                notice: Some(Notice::Error(message)),
                ..Extra::default()
            };
            render(&state, admin, &user, extra, status).await
        }
    }
}

pub async fn end_all(
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
    match state
        .deps
        .sessions(admin.actor.clone())
        .revoke_all(&name)
        .await
    {
        Ok(_) => admin.redirect(&format!("{}?done=sessions-ended", user_href(&name))),
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
