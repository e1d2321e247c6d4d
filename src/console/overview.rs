//! The overview: logins, refreshes, throttled attempts and reuse detections over the last hour,
//! as totals, a line chart drawn on the server as SVG (presentation attributes only, no inline
//! style) and the same numbers as a table for screen readers.

use std::time::Duration;

use axum::Extension;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use maud::{Markup, html};

use super::layout::{Nav, time};
use super::session::admit;
use super::{ConsoleState, refused, unavailable};
use crate::service::console_queries::{Activity, ActivityCounts, activity};
use crate::service::{AuthError, RequestContext};

const WINDOW: Duration = Duration::from_secs(3600);
const BUCKETS: u32 = 12;

/// The series drawn: label, colour, and which count.
type Series = (&'static str, &'static str, fn(&ActivityCounts) -> u64);

const SERIES: [Series; 4] = [
    ("Logins", "#1f6feb", |c| c.logins),
    ("Refreshes", "#2da44e", |c| c.refreshes),
    ("Throttled", "#bf8700", |c| c.throttled),
    ("Reuse detected", "#cf222e", |c| c.reuse_detected),
];

pub async fn show(
    State(state): State<ConsoleState>,
    Extension(ctx): Extension<RequestContext>,
    headers: HeaderMap,
) -> Response {
    let admin = match admit(&state, &headers, &ctx).await {
        Ok(a) => a,
        Err(r) => return refused(&state, r),
    };
    let now = state.deps.clock.now();
    let audit_refresh = state.tokens.settings().audit_refresh;
    let found = activity(
        state.deps.store.as_ref(),
        now,
        WINDOW,
        BUCKETS,
        audit_refresh,
    )
    .await;
    let activity = match found {
        Ok(a) => a,
        Err(e) => return unavailable(AuthError::from(e)),
    };
    let body = html! {
        p.muted { "The last hour, from " (time(activity.start)) ", counted from the audit trail." }
        div.totals {
            @for (label, colour, count) in SERIES {
                div.total {
                    span.label { (swatch(colour)) " " (label) }
                    strong { (count(&activity.total)) }
                }
            }
            div.total {
                span.label { "Failed logins" }
                strong { (activity.total.failed_logins) }
            }
        }
        @if !activity.refreshes_audited {
            p.muted { "Routine refreshes are not audited (audit_refresh = none), so only grace-window "
                "retries count as refreshes here; set audit_refresh to all or sample:N to see them." }
        }
        figure.card {
            (chart(&activity))
            figcaption { "Events per " (activity.bucket.as_secs() / 60) " minutes over the last hour" }
        }
        details {
            summary { "The numbers" }
            (numbers(&activity))
        }
    };
    admin.page(StatusCode::OK, "Overview", Nav::Overview, &body)
}

fn swatch(colour: &str) -> Markup {
    html! {
        svg width="12" height="12" viewBox="0 0 12 12" aria-hidden="true" {
            rect width="12" height="12" rx="2" fill=(colour) {}
        }
    }
}

/// A line per series over the buckets, with a y axis from 0 to the largest count.
fn chart(a: &Activity) -> Markup {
    const W: f64 = 960.0;
    const H: f64 = 220.0;
    const LEFT: f64 = 40.0;
    const BOTTOM: f64 = 24.0;
    const TOP: f64 = 10.0;
    let max = a
        .buckets
        .iter()
        .flat_map(|b| SERIES.iter().map(move |(_, _, f)| f(b)))
        .max()
        .unwrap_or(0)
        .max(1);
    let n = a.buckets.len().max(2) - 1;
    let x = |i: usize| LEFT + (W - LEFT - 10.0) * (i as f64) / (n as f64);
    let y = |v: u64| TOP + (H - TOP - BOTTOM) * (1.0 - (v as f64) / (max as f64));
    let minutes = WINDOW.as_secs() / 60;
    html! {
        svg.chart viewBox=(format!("0 0 {W} {H}")) role="img"
            aria-label="Logins, refreshes, throttled attempts and reuse detections over the last hour" {
            line x1=(LEFT) y1=(y(0)) x2=(W - 10.0) y2=(y(0)) stroke="#8c959f" {}
            line x1=(LEFT) y1=(TOP) x2=(LEFT) y2=(y(0)) stroke="#8c959f" {}
            text x=(LEFT - 6.0) y=(TOP + 8.0) text-anchor="end" font-size="11" fill="currentColor" { (max) }
            text x=(LEFT - 6.0) y=(y(0)) text-anchor="end" font-size="11" fill="currentColor" { "0" }
            text x=(LEFT) y=(H - 6.0) font-size="11" fill="currentColor" { "−" (minutes) " min" }
            text x=(W - 10.0) y=(H - 6.0) text-anchor="end" font-size="11" fill="currentColor" { "now" }
            @for (label, colour, count) in SERIES {
                polyline fill="none" stroke=(colour) stroke-width="2"
                    points=(a.buckets.iter().enumerate()
                        .map(|(i, b)| format!("{:.1},{:.1}", x(i), y(count(b))))
                        .collect::<Vec<_>>().join(" ")) {
                    title { (label) }
                }
            }
        }
    }
}

fn numbers(a: &Activity) -> Markup {
    let bucket_ms = i64::try_from(a.bucket.as_millis()).unwrap_or(0);
    html! {
        div.scroll {
            table {
                thead { tr {
                    th { "From" }
                    @for (label, _, _) in SERIES { th { (label) } }
                    th { "Failed logins" }
                } }
                tbody {
                    @for (i, b) in a.buckets.iter().enumerate() {
                        tr {
                            td { (time(crate::domain::Timestamp::from_unix_millis(
                                a.start.unix_millis() + bucket_ms * i64::try_from(i).unwrap_or(0)))) }
                            @for (_, _, count) in SERIES { td { (count(b)) } }
                            td { (b.failed_logins) }
                        }
                    }
                }
            }
        }
    }
}
