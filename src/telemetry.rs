//! Logging set-up: `tracing` to stderr, filtered by `RUST_LOG` (default `info`).
//!
//! Audit events (target `authd::audit`) are written as one JSON object per line, whatever
//! `RUST_LOG` says; everything else is human-readable text, one line per event: control
//! characters in any field (a username, a user agent, an error message) are escaped, so what a
//! client sends cannot start a forged log line or drive the terminal.

use std::fmt::Write as _;
use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::field::MakeExt;
use tracing_subscriber::filter::{FilterExt, filter_fn};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, fmt};

use crate::service::AUDIT_TARGET;

/// Installs the global subscriber. `default` applies when `RUST_LOG` is unset.
pub fn init(default: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let is_audit = |meta: &tracing::Metadata<'_>| meta.target() == AUDIT_TARGET;
    let fields = fmt::format::debug_fn(|writer, field, value| {
        let rendered = format!("{value:?}");
        let value = escape_controls(&rendered);
        match field.name() {
            "message" => write!(writer, "{value}"),
            name => write!(writer, "{}={value}", name.trim_start_matches("r#")),
        }
    })
    .delimited(" ");
    let text = fmt::layer()
        .fmt_fields(fields)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_filter(filter.and(filter_fn(move |m| !is_audit(m))));
    let audit = fmt::layer()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(false)
        .with_writer(std::io::stderr)
        .with_filter(filter_fn(is_audit));
    // Ignore a second initialisation (tests may call this more than once).
    let _ = tracing_subscriber::registry()
        .with(text)
        .with(audit)
        .try_init();
}

/// `text` with every control character written as an escape (`\n`, `\r`, `\t`, `\u{1b}`), so
/// a field's value stays on its line and cannot carry terminal escapes. Field values that are
/// strings already come quoted and escaped by their `Debug`; values logged with `%` (`Display`)
/// and the message do not, and those may carry what a client sent.
fn escape_controls(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return text.into();
    }
    let mut escaped = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => escaped.push_str("\\n"),
            '\r' => escaped.push_str("\\r"),
            '\t' => escaped.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(escaped, "\\u{{{:x}}}", u32::from(c));
            }
            c => escaped.push(c),
        }
    }
    escaped.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_and_the_rest_kept() {
        assert_eq!(escape_controls("alice"), "alice");
        assert_eq!(escape_controls("ünïcødé ok"), "ünïcødé ok");
        assert_eq!(
            escape_controls("eve\n2026-01-01T00:00:00Z  INFO forged\r\t\u{1b}[31m"),
            "eve\\n2026-01-01T00:00:00Z  INFO forged\\r\\t\\u{1b}[31m"
        );
        assert!(
            !escape_controls("a\u{85}b\u{0}c")
                .chars()
                .any(char::is_control)
        );
    }
}
