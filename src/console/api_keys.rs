//! A user's API keys on their page, creating one (its secret shown once, on the page that
//! answers the form, and never again) and revoking one: `ApiKeyAdmin`, as the admin API's
//! `CreateApiKey` and `RevokeApiKey`.

use std::time::Duration;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use maud::{Markup, html};

use super::layout::{Notice, badge, csrf_field, field, optional_time, segment, time, user_href};
use super::user::{Extra, render};
use super::{ConsoleState, admin_failure, role_list};
use crate::domain::ApiKeyListing;
use crate::service::RequestContext;

pub fn section(csrf: &str, username: &str, keys: &[ApiKeyListing], extra: &Extra) -> Markup {
    html! {
        section.card aria-labelledby="keys-title" {
            h2 #keys-title { "API keys" }
            @if let Some((name, secret)) = &extra.new_secret {
                div.notice.secret role="status" {
                    p { "API key " strong { (name) } " created. Copy its secret now: it is not shown again." }
                    label for="new-secret" { "Secret" }
                    input #new-secret type="text" readonly value=(secret);
                }
            }
            div.scroll {
                table {
                    thead { tr {
                        th { "Name" } th { "Roles" } th { "Created" } th { "Expires" }
                        th { "Last used" } th { "State" } th { span.sr { "Actions" } }
                    } }
                    tbody {
                        @for listing in keys {
                            @let k = &listing.key;
                            tr {
                                td { (k.name) }
                                td { (k.roles.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(", ")) }
                                td { (time(k.created_at)) }
                                td { (optional_time(k.expires_at)) }
                                td { (optional_time(k.last_used_at)) }
                                td {
                                    @if k.revoked_at.is_some() { (badge("revoked", "off")) } @else { (badge("active", "ok")) }
                                }
                                td {
                                    @if k.revoked_at.is_none() {
                                        form method="post" action=(format!("/admin/api-keys/{}/revoke", segment(&k.id.to_string()))) {
                                            (csrf_field(csrf))
                                            input type="hidden" name="user" value=(username);
                                            button.danger type="submit" aria-label=(format!("Revoke API key {}", k.name)) { "Revoke" }
                                        }
                                    }
                                }
                            }
                        }
                        @if keys.is_empty() {
                            tr { td colspan="7" { "No API keys." } }
                        }
                    }
                }
            }
            h3 { "Create an API key" }
            @if let Some(e) = &extra.api_key_error { p.notice.error role="alert" { (e) } }
            form.inline method="post" action=(format!("{}/api-keys", user_href(username))) {
                (csrf_field(csrf))
                (field("key-name", "Name", "text", "", None, "off"))
                (field("key-roles", "Roles (empty: all of the user's)", "text", "", None, "off"))
                (field("key-days", "Expires after days (empty: never)", "number", "", None, "off"))
                button type="submit" { "Create API key" }
            }
        }
    }
}

pub async fn create(
    State(state): State<ConsoleState>,
    Extension(ctx): Extension<RequestContext>,
    headers: HeaderMap,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    let (admin, form) = match state.admit_form(&headers, &ctx, &body).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let days = form.get("key-days").trim();
    let expires_in = match days {
        "" => None,
        d => match d.parse::<u64>() {
            Ok(n) if (1..=36_500).contains(&n) => Some(Duration::from_secs(n * 86_400)),
            _ => {
                let extra = Extra {
                    api_key_error: Some("expiry must be a whole number of days, 1 to 36500".into()),
                    ..Extra::default()
                };
                return render(&state, admin, &name, extra, StatusCode::BAD_REQUEST).await;
            }
        },
    };
    let created = state
        .deps
        .api_keys(admin.actor.clone())
        .create(
            &name,
            form.get("key-name"),
            &role_list(form.get("key-roles")),
            expires_in,
        )
        .await;
    match created {
        // The secret is on this page only: answered directly, not through a redirect.
        Ok(created) => {
            let extra = Extra {
                new_secret: Some((created.key.name.clone(), created.secret.expose())),
                ..Extra::default()
            };
            render(&state, admin, &name, extra, StatusCode::OK).await
        }
        Err(e) => {
            let (status, message) = admin_failure(e);
            let extra = Extra {
                api_key_error: Some(message),
                ..Extra::default()
            };
            render(&state, admin, &name, extra, status).await
        }
    }
}

pub async fn revoke(
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
    let user = form.get("user").to_owned();
    match state.deps.api_keys(admin.actor.clone()).revoke(&id).await {
        Ok(_) => admin.redirect(&format!("{}?done=key-revoked", user_href(&user))),
        Err(e) => {
            let (status, message) = admin_failure(e);
            let extra = Extra {
                notice: Some(Notice::Error(message)),
                ..Extra::default()
            };
            render(&state, admin, &user, extra, status).await
        }
    }
}
