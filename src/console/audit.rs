//! The audit log: filtered by type, user and time (UTC), newest first, and a live tail — the
//! page's script fetches `/admin/audit/rows` with the same filter every few seconds and puts
//! the rows it gets in place (server-rendered HTML, so the script only moves markup).

use axum::Extension;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use maud::{Markup, html};
use serde::Deserialize;

use super::layout::{Nav, Notice, notice, time, user_href};
use super::session::{Refused, admit};
use super::{ConsoleState, refused, unavailable};
use crate::domain::{AuditEvent, AuditKind, Timestamp, Username};
use crate::service::{AdminError, AuditFilter, AuditReader, AuthError, RequestContext};

/// Events one page shows.
const PAGE_EVENTS: u32 = 200;

/// The filter form's fields, as query parameters.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct AuditQuery {
    #[serde(rename = "type")]
    kind: String,
    user: String,
    from: String,
    until: String,
    live: Option<String>,
}

impl AuditQuery {
    /// The filter, or what is wrong with a field.
    fn filter(&self) -> Result<AuditFilter, String> {
        let kind = match self.kind.as_str() {
            "" => None,
            k => Some(AuditKind::parse(k).ok_or("unknown event type")?),
        };
        let username = match self.user.trim() {
            "" => None,
            u => Some(
                Username::parse(u)
                    .map_err(|e| format!("invalid username: {e}"))?
                    .as_str()
                    .to_owned(),
            ),
        };
        Ok(AuditFilter {
            kind,
            username,
            from: parse_time(&self.from, "from")?,
            to: parse_time(&self.until, "until")?,
        })
    }

    fn query_string(&self) -> String {
        serde_urlencoded::to_string([
            ("type", self.kind.as_str()),
            ("user", self.user.as_str()),
            ("from", self.from.as_str()),
            ("until", self.until.as_str()),
        ])
        .unwrap_or_default()
    }
}

/// A `datetime-local` value (`2026-11-30T14:05`, seconds optional) read as UTC.
fn parse_time(text: &str, name: &str) -> Result<Option<Timestamp>, String> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let text = text.trim_end_matches('Z');
    let full = if text.len() == 16 {
        format!("{text}:00")
    } else {
        text.to_owned()
    };
    let time = humantime::parse_rfc3339_weak(&full)
        .map_err(|_| format!("{name} must be a date and time such as 2026-11-30T14:05"))?;
    let ms = time
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|_| format!("{name} is before 1970"))?
        .as_millis();
    Ok(Some(Timestamp::from_unix_millis(
        i64::try_from(ms).unwrap_or(i64::MAX),
    )))
}

pub async fn show(
    State(state): State<ConsoleState>,
    Extension(ctx): Extension<RequestContext>,
    headers: HeaderMap,
    Query(query): Query<AuditQuery>,
) -> Response {
    let admin = match admit(&state, &headers, &ctx).await {
        Ok(a) => a,
        Err(r) => return refused(&state, r),
    };
    let (status, events, error) = match query.filter() {
        Ok(filter) => match newest(&state, &filter).await {
            Ok(events) => (StatusCode::OK, events, None),
            Err(response) => return response,
        },
        Err(message) => (
            StatusCode::BAD_REQUEST,
            Vec::new(),
            Some(Notice::Error(message)),
        ),
    };
    let body = html! {
        (notice(error.as_ref()))
        form.card.filters method="get" action="/admin/audit" role="search" {
            div.field {
                label for="type" { "Type" }
                select #type name="type" {
                    option value="" selected[query.kind.is_empty()] { "Any" }
                    @for kind in AuditKind::ALL {
                        option value=(kind.as_str()) selected[query.kind == kind.as_str()] { (kind.as_str()) }
                    }
                }
            }
            div.field {
                label for="user" { "User" }
                input #user name="user" type="text" value=(query.user);
            }
            div.field {
                label for="from" { "From (UTC)" }
                input #from name="from" type="datetime-local" value=(query.from);
            }
            div.field {
                label for="until" { "Until (UTC)" }
                input #until name="until" type="datetime-local" value=(query.until);
            }
            div.check {
                input #live name="live" type="checkbox" checked[query.live.is_some()];
                label for="live" { "Live tail" }
            }
            button type="submit" { "Filter" }
        }
        p.muted { "Newest first; at most " (PAGE_EVENTS) " events. With Live tail on, new events appear every few seconds." }
        div #audit-log data-rows=(format!("/admin/audit/rows?{}", query.query_string())) {
            (table(&events))
        }
    };
    admin.page(status, "Audit log", Nav::Audit, &body)
}

/// The table alone, for the live tail. An ended session is 401, so the script stops.
pub async fn rows(
    State(state): State<ConsoleState>,
    Extension(ctx): Extension<RequestContext>,
    headers: HeaderMap,
    Query(query): Query<AuditQuery>,
) -> Response {
    let admin = match admit(&state, &headers, &ctx).await {
        Ok(a) => a,
        Err(Refused::SignIn) => return StatusCode::UNAUTHORIZED.into_response(),
        Err(Refused::NotAdmin) => return StatusCode::FORBIDDEN.into_response(),
        Err(Refused::Unavailable(e)) => return unavailable(e),
    };
    let Ok(filter) = query.filter() else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    match newest(&state, &filter).await {
        Ok(events) => admin.respond(Html(table(&events).into_string()).into_response()),
        Err(response) => response,
    }
}

/// The newest [`PAGE_EVENTS`] events `filter` selects, newest first: the admin API's audit
/// query (`QueryAudit`), so the console and the API filter alike.
async fn newest(state: &ConsoleState, filter: &AuditFilter) -> Result<Vec<AuditEvent>, Response> {
    match AuditReader::new(std::sync::Arc::clone(&state.deps.store))
        .tail(filter, PAGE_EVENTS)
        .await
    {
        Ok(records) => Ok(records.into_iter().rev().map(|r| r.event).collect()),
        Err(AdminError::Store(e)) => Err(unavailable(AuthError::from(e))),
        Err(e) => Err(super::admin_failure(e).into_response()),
    }
}

/// Events as a table, in the order given.
pub fn table(events: &[AuditEvent]) -> Markup {
    html! {
        div.scroll {
            table.audit {
                thead { tr { th { "Time" } th { "Type" } th { "User" } th { "Source" } th { "Detail" } } }
                tbody {
                    @for e in events {
                        tr {
                            td { (time(e.time)) }
                            td { code { (e.kind.as_str()) } }
                            td {
                                @if let Some(u) = &e.username {
                                    a href=(user_href(u)) { (u) }
                                } @else { "—" }
                            }
                            td { (e.source.as_deref().unwrap_or("—")) }
                            td.detail { (e.detail.as_deref().unwrap_or("")) }
                        }
                    }
                    @if events.is_empty() {
                        tr { td colspan="5" { "No events." } }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_read_as_utc() {
        let t = parse_time("1970-01-01T00:01", "from");
        assert_eq!(t, Ok(Some(Timestamp::from_unix_millis(60_000))));
        let t = parse_time("1970-01-01T00:00:02", "from");
        assert_eq!(t, Ok(Some(Timestamp::from_unix_millis(2_000))));
        assert_eq!(parse_time(" ", "from"), Ok(None));
        assert!(parse_time("yesterday", "from").is_err());
    }
}
