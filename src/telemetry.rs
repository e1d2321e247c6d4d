//! Logging set-up: `tracing` to stderr, filtered by `RUST_LOG` (default `info`).
//!
//! Audit events (target `authd::audit`) are written as one JSON object per line, whatever
//! `RUST_LOG` says; everything else is human-readable text.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::{FilterExt, filter_fn};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, fmt};

use crate::service::AUDIT_TARGET;

/// Installs the global subscriber. `default` applies when `RUST_LOG` is unset.
pub fn init(default: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let is_audit = |meta: &tracing::Metadata<'_>| meta.target() == AUDIT_TARGET;
    let text = fmt::layer()
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
