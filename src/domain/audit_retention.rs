//! How long audit events are kept, per event class: one default (`audit_retention`) and
//! overrides by event type (`audit_retention_per_event`, e.g. `token_refreshed=7d`). It owns
//! the rule and its parsing; the retention job (`service::housekeeping`) applies it through
//! the store.

use std::fmt;
use std::time::Duration;

use super::{AuditKind, Timestamp};

/// A retention per [`AuditKind`]: the default, except where overridden.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRetention {
    default: Duration,
    overrides: Vec<(AuditKind, Duration)>,
}

impl From<Duration> for AuditRetention {
    /// Every event kept `default`.
    fn from(default: Duration) -> Self {
        Self {
            default,
            overrides: Vec::new(),
        }
    }
}

impl AuditRetention {
    /// `default` for every event, except those `overrides` names: a comma-separated list of
    /// `EVENT_TYPE=DURATION` (`token_refreshed=7d, login_failed=30d`; empty: none).
    ///
    /// # Errors
    /// An unknown event type, a duration that does not parse or is zero, or a type named twice.
    pub fn parse(default: Duration, overrides: &str) -> Result<Self, String> {
        let mut parsed: Vec<(AuditKind, Duration)> = Vec::new();
        for item in overrides
            .split(',')
            .map(str::trim)
            .filter(|i| !i.is_empty())
        {
            let bad = |why: &str| format!("invalid audit_retention_per_event {item:?}: {why}");
            let (kind, duration) = item
                .split_once('=')
                .ok_or_else(|| bad("use EVENT_TYPE=DURATION, e.g. token_refreshed=7d"))?;
            let kind = AuditKind::parse(kind.trim()).ok_or_else(|| bad("unknown event type"))?;
            let duration =
                humantime::parse_duration(duration.trim()).map_err(|e| bad(&e.to_string()))?;
            if duration.is_zero() {
                return Err(bad("the retention must be positive"));
            }
            if parsed.iter().any(|(k, _)| *k == kind) {
                return Err(bad("event type named twice"));
            }
            parsed.push((kind, duration));
        }
        Ok(Self {
            default,
            overrides: parsed,
        })
    }

    /// How long events of `kind` are kept.
    pub fn of(&self, kind: AuditKind) -> Duration {
        self.overrides
            .iter()
            .find(|(k, _)| *k == kind)
            .map_or(self.default, |(_, d)| *d)
    }

    /// Whether every kind is kept alike (no override differs from the default).
    pub fn is_uniform(&self) -> bool {
        self.overrides.iter().all(|(_, d)| *d == self.default)
    }

    /// The default retention.
    pub fn default_retention(&self) -> Duration {
        self.default
    }

    /// Events of `kind` recorded before this time, as of `now`, have expired.
    pub fn cutoff(&self, kind: AuditKind, now: Timestamp) -> Timestamp {
        cutoff(self.of(kind), now)
    }
}

/// `now` less `retention` (saturating).
pub fn cutoff(retention: Duration, now: Timestamp) -> Timestamp {
    let ms = i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
    Timestamp::from_unix_millis(now.unix_millis().saturating_sub(ms))
}

impl fmt::Display for AuditRetention {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.default))?;
        for (kind, d) in &self.overrides {
            write!(f, ", {}={}", kind.as_str(), humantime::format_duration(*d))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: Duration = Duration::from_secs(24 * 3600);

    #[test]
    fn overrides_apply_to_their_event_type_only() {
        let r =
            AuditRetention::parse(90 * DAY, " token_refreshed=7d, login_failed = 365d ").unwrap();
        assert_eq!(r.of(AuditKind::TokenRefreshed), 7 * DAY);
        assert_eq!(r.of(AuditKind::LoginFailed), 365 * DAY);
        assert_eq!(r.of(AuditKind::LoginSucceeded), 90 * DAY);
        assert!(!r.is_uniform());
        assert!(AuditRetention::parse(90 * DAY, "").unwrap().is_uniform());
        let now = Timestamp::from_unix_millis(10 * 86_400_000);
        assert_eq!(
            r.cutoff(AuditKind::TokenRefreshed, now),
            Timestamp::from_unix_millis(3 * 86_400_000)
        );
    }

    #[test]
    fn bad_overrides_are_refused() {
        for bad in [
            "token_refreshed",
            "nonsense=7d",
            "token_refreshed=soon",
            "token_refreshed=0s",
            "token_refreshed=1d,token_refreshed=2d",
        ] {
            assert!(AuditRetention::parse(DAY, bad).is_err(), "{bad}");
        }
    }
}
