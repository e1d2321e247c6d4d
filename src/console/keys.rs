//! The signing keys page: every key with its state and dates (`list_keys`), rotating (the
//! admin API's `RotateSigningKey`: a new key is published now and signs after the
//! pre-publication period) and the emergency retirement of a compromised key, behind a page
//! that says what it breaks.

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use maud::html;
use serde::Deserialize;

use super::layout::{Nav, Notice, badge, csrf_field, notice, optional_time, segment, time};
use super::session::admit;
use super::{ConsoleState, refused, unavailable};
use crate::domain::KeyState;
use crate::service::{AuthError, KeySetupError, RequestContext, RotateOutcome, list_keys};

/// `?done=…` after a change (a fixed set).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Done {
    done: String,
}

pub async fn list(
    State(state): State<ConsoleState>,
    Extension(ctx): Extension<RequestContext>,
    headers: HeaderMap,
    Query(done): Query<Done>,
) -> Response {
    let admin = match admit(&state, &headers, &ctx).await {
        Ok(a) => a,
        Err(r) => return refused(&state, r),
    };
    let keys = match list_keys(
        state.deps.store.as_ref(),
        state.deps.keys.policy(),
        state.deps.clock.now(),
    )
    .await
    {
        Ok(k) => k,
        Err(e) => return unavailable(AuthError::from(e)),
    };
    let done = match done.done.as_str() {
        "rotated" => Some(Notice::Done(
            "A new key is published now and signs after the pre-publication period.".into(),
        )),
        "pending" => Some(Notice::Done(
            "A new key was already waiting to sign; nothing was added.".into(),
        )),
        "retired" => Some(Notice::Done(
            "Key retired: its tokens no longer verify; a new key signs from now.".into(),
        )),
        _ => None,
    };
    let body = html! {
        (notice(done.as_ref()))
        div.scroll {
            table {
                thead { tr {
                    th { "Key id" } th { "Algorithm" } th { "State" } th { "Created" }
                    th { "Signs from" } th { "Retires" } th { "Leaves JWKS" } th { span.sr { "Actions" } }
                } }
                tbody {
                    @for k in &keys {
                        tr {
                            td { code { (k.kid) } }
                            td { (k.algorithm) }
                            td { (badge(k.state.as_str(), match k.state {
                                KeyState::Active => "ok",
                                KeyState::Pending | KeyState::Retiring => "warn",
                                _ => "off",
                            })) }
                            td { (time(k.created_at)) }
                            td { (time(k.activates_at)) }
                            td { (optional_time(k.retires_at)) }
                            td { (optional_time(k.unpublished_at)) }
                            td {
                                @if !matches!(k.state, KeyState::Retired) {
                                    a.button.danger href=(format!("/admin/keys/{}/retire", segment(&k.kid)))
                                        aria-label=(format!("Retire key {} now", k.kid)) { "Retire now…" }
                                }
                            }
                        }
                    }
                }
            }
        }
        form.card method="post" action="/admin/keys/rotate" {
            (csrf_field(&admin.csrf))
            p { "Rotating publishes a new key at once; it starts signing after the pre-publication "
                "period, so verifiers have fetched it first. The current key keeps verifying its tokens." }
            button type="submit" { "Rotate signing key" }
        }
    };
    admin.page(StatusCode::OK, "Signing keys", Nav::Keys, &body)
}

pub async fn rotate(
    State(state): State<ConsoleState>,
    Extension(ctx): Extension<RequestContext>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (admin, _) = match state.admit_form(&headers, &ctx, &body).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    match state.deps.keys.rotate_as(&admin.actor).await {
        Ok(RotateOutcome::Scheduled { .. }) => admin.redirect("/admin/keys?done=rotated"),
        Ok(RotateOutcome::AlreadyPending { .. }) => admin.redirect("/admin/keys?done=pending"),
        Err(e) => unavailable(AuthError::Unavailable(Box::new(e))),
    }
}

pub async fn confirm_retire(
    State(state): State<ConsoleState>,
    Extension(ctx): Extension<RequestContext>,
    headers: HeaderMap,
    Path(kid): Path<String>,
) -> Response {
    let admin = match admit(&state, &headers, &ctx).await {
        Ok(a) => a,
        Err(r) => return refused(&state, r),
    };
    let body = html! {
        section.card.warning {
            p { strong { "Only for a compromised key." } }
            p { "Retiring " code { (kid) } " now removes it from the JWKS and makes every token it "
                "signed fail verification and Introspect: every user and service holding one must "
                "log in or refresh again. A new key signs from now. Other servers pick the change up "
                "within their key-reload interval; verifiers that cached the JWKS keep trusting the "
                "key until their cache expires. For a routine change, rotate instead." }
            div.actions {
                form method="post" action=(format!("/admin/keys/{}/retire", segment(&kid))) {
                    (csrf_field(&admin.csrf))
                    button.danger type="submit" { "Retire " (kid) " now" }
                }
                a.button href="/admin/keys" { "Cancel" }
            }
        }
    };
    admin.page(StatusCode::OK, "Retire a signing key", Nav::Keys, &body)
}

pub async fn retire(
    State(state): State<ConsoleState>,
    Extension(ctx): Extension<RequestContext>,
    headers: HeaderMap,
    Path(kid): Path<String>,
    body: Bytes,
) -> Response {
    let (admin, _) = match state.admit_form(&headers, &ctx, &body).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let retired = state.deps.keys.retire_as(&kid, &admin.actor).await;
    match retired {
        Ok(_) => admin.redirect("/admin/keys?done=retired"),
        Err(e @ KeySetupError::UnknownKey(_)) => {
            let body = html! {
                (notice(Some(&Notice::Error(e.to_string()))))
                p { a href="/admin/keys" { "Back to signing keys" } }
            };
            admin.page(
                StatusCode::NOT_FOUND,
                "Retire a signing key",
                Nav::Keys,
                &body,
            )
        }
        Err(e) => unavailable(AuthError::Unavailable(Box::new(e))),
    }
}
