//! The console's templates shared by every page: the page shell (head, skip link, navigation,
//! sign-out form), notices, the CSRF field, and how times and durations are shown. Pages are
//! maud templates, so every value is HTML-escaped unless a template says otherwise (none
//! does). No inline script or style anywhere: the CSP forbids both.

use maud::{DOCTYPE, Markup, html};

use super::session::CSRF_FIELD;
use crate::domain::Timestamp;

/// Which navigation entry a page belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    Overview,
    Users,
    Keys,
    Audit,
    None,
}

/// A message at the top of a page.
pub enum Notice {
    Done(String),
    Error(String),
}

/// The whole page: `title`, the signed-in `user` (for the header and sign-out form) and the
/// `body`.
pub fn page(title: &str, nav: Nav, signed_in: Option<(&str, &str)>, body: &Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · authd console" }
                link rel="stylesheet" href="/admin/static/console.css";
                script src="/admin/static/console.js" defer {}
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    a.brand href="/admin/" { "authd" }
                    @if let Some((username, csrf)) = signed_in {
                        nav aria-label="Main" {
                            (nav_link("/admin/", "Overview", nav == Nav::Overview))
                            (nav_link("/admin/users", "Users", nav == Nav::Users))
                            (nav_link("/admin/keys", "Signing keys", nav == Nav::Keys))
                            (nav_link("/admin/audit", "Audit log", nav == Nav::Audit))
                        }
                        form.signout method="post" action="/admin/logout" {
                            (csrf_field(csrf))
                            span.who { (username) }
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                main #main tabindex="-1" {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

fn nav_link(href: &str, label: &str, current: bool) -> Markup {
    html! {
        @if current {
            a href=(href) aria-current="page" { (label) }
        } @else {
            a href=(href) { (label) }
        }
    }
}

/// The hidden field that carries the session's CSRF token.
pub fn csrf_field(csrf: &str) -> Markup {
    html! { input type="hidden" name=(CSRF_FIELD) value=(csrf); }
}

pub fn notice(notice: Option<&Notice>) -> Markup {
    html! {
        @match notice {
            Some(Notice::Done(text)) => p.notice.done role="status" { (text) },
            Some(Notice::Error(text)) => p.notice.error role="alert" { (text) },
            None => {},
        }
    }
}

/// A labelled input with its error, if any, beside it (`aria-describedby` points at it).
pub fn field(
    id: &str,
    label: &str,
    kind: &str,
    value: &str,
    error: Option<&str>,
    autocomplete: &str,
) -> Markup {
    let error_id = format!("{id}-error");
    html! {
        div.field {
            label for=(id) { (label) }
            @if let Some(e) = error {
                input id=(id) name=(id) type=(kind) value=(value) aria-invalid="true"
                    aria-describedby=(error_id) autocomplete=(autocomplete);
                span.field-error id=(error_id) { (e) }
            } @else {
                input id=(id) name=(id) type=(kind) value=(value) autocomplete=(autocomplete);
            }
        }
    }
}

/// A time as RFC 3339 UTC to the second, in a `<time>` element.
pub fn time(t: Timestamp) -> Markup {
    let text = t.to_string();
    let short = text
        .get(..19)
        .map_or(text.clone(), |s| format!("{} UTC", s.replace('T', " ")));
    html! { time datetime=(text) { (short) } }
}

pub fn optional_time(t: Option<Timestamp>) -> Markup {
    match t {
        Some(t) => time(t),
        None => html! { span.muted { "—" } },
    }
}

/// A state as a small text badge (`kind` picks its colour).
pub fn badge(text: &str, kind: &str) -> Markup {
    html! { span class=(format!("badge {kind}")) { (text) } }
}

/// `text` as one URL path segment: everything but RFC 3986's unreserved characters
/// percent-encoded (usernames and key ids go into links).
pub fn segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The page of user `username`.
pub fn user_href(username: &str) -> String {
    format!("/admin/users/{}", segment(username))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_encode_all_but_unreserved() {
        assert_eq!(segment("a.b-c_d~e9"), "a.b-c_d~e9");
        assert_eq!(segment("a/b c?é"), "a%2Fb%20c%3F%C3%A9");
    }
}
