//! The signing-key lifecycle as pure rules: when a key is published, when it signs, when it is
//! retired and when it leaves the JWKS, and when the next rotation is due.
//!
//! Nothing here generates, stores or reads keys or clocks; the service layer feeds in the
//! stored times and `now`. The rules guarantee that a verifier caching the JWKS for less than
//! the pre-publication period never meets a token signed by a key it could not have seen, and
//! that a key stays published until every token it signed has expired.

use std::time::Duration;

use super::Timestamp;

/// Clock skew tolerated between authd and verifiers, added to token lifetimes when deciding
/// how long a retired key stays published.
pub const TOKEN_CLOCK_SKEW: Duration = Duration::from_secs(60);

/// Lifecycle settings, from configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyPolicy {
    /// How long a new key is published before it signs.
    pub prepublish: Duration,
    /// How long a key signs before the next one takes over (automatic rotation).
    pub rotation_interval: Duration,
    /// The longest a token signed by a key stays valid after it was signed (access-token TTL
    /// plus clock skew): how long a retired key stays published.
    pub token_lifetime: Duration,
}

/// The times that govern one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyTimes {
    pub created_at: Timestamp,
    pub activates_at: Timestamp,
    /// Set when a successor is scheduled: the successor's activation time.
    pub retires_at: Option<Timestamp>,
}

/// Where a key is in its life at a given moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyState {
    /// Published, not yet signing.
    Pending,
    /// Published and signing.
    Active,
    /// No longer signing; published until the tokens it signed have expired.
    Retiring,
    /// Gone from the JWKS.
    Retired,
}

impl KeyState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Active => "active",
            Self::Retiring => "retiring",
            Self::Retired => "retired",
        }
    }

    /// Whether the key belongs in the JWKS.
    pub fn is_published(self) -> bool {
        !matches!(self, Self::Retired)
    }
}

impl KeyTimes {
    /// Whether the key may sign at `now`.
    pub fn signs_at(&self, now: Timestamp) -> bool {
        self.activates_at <= now && self.retires_at.is_none_or(|r| now < r)
    }

    /// The key's state at `now`.
    pub fn state(&self, now: Timestamp, policy: &KeyPolicy) -> KeyState {
        if now < self.activates_at {
            return KeyState::Pending;
        }
        match self.retires_at {
            None => KeyState::Active,
            Some(r) if now < r => KeyState::Active,
            // Tokens signed up to `r` are valid until `r + token_lifetime`.
            Some(r) if now < r.saturating_add(policy.token_lifetime) => KeyState::Retiring,
            Some(_) => KeyState::Retired,
        }
    }
}

/// A rotation to perform: a new key activating at `activates_at`, and the condition the store
/// checks atomically before inserting it, so that several processes deciding at once insert
/// one key between them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlannedRotation {
    pub activates_at: Timestamp,
    /// Insert only if no stored key activates later than this.
    pub unless_activation_after: Timestamp,
}

impl KeyPolicy {
    /// The automatic rotation, if one is due at `now`: when the newest key has been (or will
    /// have been) signing for `rotation_interval` by the end of a pre-publication period
    /// starting now. `latest_activation` is the newest key's activation time.
    pub fn scheduled_rotation(
        &self,
        latest_activation: Timestamp,
        now: Timestamp,
    ) -> Option<PlannedRotation> {
        let activates_at = now.saturating_add(self.prepublish);
        let due_at = latest_activation.saturating_add(self.rotation_interval);
        (activates_at >= due_at).then_some(PlannedRotation {
            activates_at,
            unless_activation_after: latest_activation,
        })
    }

    /// A rotation forced now (`authd keys rotate`): the new key still waits out the
    /// pre-publication period. Refused by the store when a key is already pending.
    pub fn forced_rotation(&self, now: Timestamp) -> PlannedRotation {
        PlannedRotation {
            activates_at: now.saturating_add(self.prepublish),
            unless_activation_after: now,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(60);

    fn policy() -> KeyPolicy {
        KeyPolicy {
            prepublish: 20 * MIN,
            rotation_interval: 24 * 60 * MIN,
            token_lifetime: 16 * MIN,
        }
    }

    fn t(minutes: i64) -> Timestamp {
        Timestamp::from_unix_millis(minutes * 60_000)
    }

    #[test]
    fn key_moves_through_its_states() {
        let key = KeyTimes {
            created_at: t(0),
            activates_at: t(20),
            retires_at: Some(t(100)),
        };
        let p = policy();
        assert_eq!(key.state(t(0), &p), KeyState::Pending);
        assert_eq!(key.state(t(20), &p), KeyState::Active);
        assert_eq!(key.state(t(99), &p), KeyState::Active);
        assert_eq!(key.state(t(100), &p), KeyState::Retiring);
        assert_eq!(key.state(t(115), &p), KeyState::Retiring);
        assert_eq!(key.state(t(116), &p), KeyState::Retired);
        assert!(!key.signs_at(t(19)) && key.signs_at(t(20)) && !key.signs_at(t(100)));
    }

    #[test]
    fn rotation_is_due_one_prepublication_before_the_interval_ends() {
        let p = policy();
        let start = t(0);
        let due = t(24 * 60 - 20);
        assert_eq!(p.scheduled_rotation(start, t(24 * 60 - 21)), None);
        let planned = p.scheduled_rotation(start, due).unwrap();
        assert_eq!(planned.activates_at, t(24 * 60));
        assert_eq!(planned.unless_activation_after, start);
    }

    #[test]
    fn forced_rotation_waits_out_prepublication() {
        let planned = policy().forced_rotation(t(5));
        assert_eq!(planned.activates_at, t(25));
        assert_eq!(planned.unless_activation_after, t(5));
    }
}
