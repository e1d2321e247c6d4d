//! Signing keys at run time: loading them (decrypting when sealed), creating the first one,
//! rotating with pre-publication, and reloading so replicas pick up keys created elsewhere.
//!
//! The lifecycle rules themselves are pure and live in [`crate::domain::KeyPolicy`] and
//! [`crate::domain::KeyTimes`]; this module applies them to the store. The current key ring is
//! swapped atomically, so signing never waits for a reload.

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;

use crate::crypto::key_encryption::KeyEncryption;
use crate::crypto::keys::{KeyError, KeyRing, SigningAlgorithm, SigningKey};
use crate::domain::{Clock, KeyPolicy, KeyState, KeyTimes, PlannedRotation, Timestamp};
use crate::store::{Store, StoreError, StoredKey};

#[derive(Debug, thiserror::Error)]
pub enum KeySetupError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("no signing key is active")]
    NoActiveKey,
    #[error("no signing key has kid {0:?}")]
    UnknownKey(String),
}

/// What `authd keys retire KID --now` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmergencyRetirement {
    /// The key that no longer signs or verifies.
    pub retired: String,
    /// The new key, signing from now on.
    pub replacement: String,
}

/// What `authd keys rotate` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RotateOutcome {
    /// A new key was stored; it is published now and signs from `activates_at`.
    Scheduled {
        kid: String,
        activates_at: Timestamp,
    },
    /// A key is already waiting out its pre-publication; nothing was added.
    AlreadyPending {
        kid: String,
        activates_at: Timestamp,
    },
}

/// One line of `authd keys list`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyInfo {
    pub kid: String,
    pub algorithm: String,
    pub state: KeyState,
    pub encrypted: bool,
    pub created_at: Timestamp,
    pub activates_at: Timestamp,
    pub retires_at: Option<Timestamp>,
    /// When the key leaves the JWKS (retirement plus the longest token lifetime).
    pub unpublished_at: Option<Timestamp>,
}

/// The signing keys of this process, kept in step with the database.
pub struct KeyManager {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    policy: KeyPolicy,
    algorithm: SigningAlgorithm,
    kek: Option<KeyEncryption>,
    ring: ArcSwap<KeyRing>,
}

impl std::fmt::Debug for KeyManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyManager")
            .field("policy", &self.policy)
            .field("algorithm", &self.algorithm)
            .field("encrypted_at_rest", &self.kek.is_some())
            .finish_non_exhaustive()
    }
}

/// The verifier's key source for this service's own tokens: the keys of the current ring that
/// are published now (a key retired with `keys retire --now` verifies nothing from then on).
impl authd_verifier::LocalKeys for KeyManager {
    fn key(&self, kid: &str) -> Option<authd_verifier::LocalKey> {
        let now = self.clock.now();
        self.ring()
            .find(kid)
            .filter(|k| k.times().state(now, &self.policy).is_published())
            .and_then(crate::crypto::access_token::local_key)
    }
}

impl KeyManager {
    /// Loads every stored key; encrypts keys stored in the clear when `kek` is given; creates
    /// a first key, active at once, when none can sign now.
    ///
    /// Two processes starting at once on an empty database insert one key between them.
    ///
    /// # Errors
    /// When the store fails or a stored key is unusable (e.g. sealed and `kek` is missing).
    pub async fn start(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        policy: KeyPolicy,
        algorithm: SigningAlgorithm,
        kek: Option<KeyEncryption>,
    ) -> Result<Self, KeySetupError> {
        let mut stored = store.signing_keys().await?;
        if let Some(kek) = &kek
            && stored.iter().any(|k| !k.encrypted)
        {
            for key in stored.iter().filter(|k| !k.encrypted) {
                let sealed = kek
                    .seal(&key.kid, &key.private_key)
                    .map_err(KeyError::from)?;
                store.reseal_signing_key(&key.kid, &sealed, true).await?;
                tracing::info!(kid = %key.kid, "encrypted a signing key stored in the clear");
            }
            // Read again only when something changed: each read at start-up may cost
            // PostgreSQL a connection of its own (BENCHMARKS.md, start-up).
            stored = store.signing_keys().await?;
        }
        let ring = KeyRing::from_stored(&stored, kek.as_ref())?;
        let manager = Self {
            store,
            clock,
            policy,
            algorithm,
            kek,
            ring: ArcSwap::from_pointee(ring),
        };
        let now = manager.clock.now();
        if manager.ring().signing_key(now).is_none() {
            // Empty database: insert only if still empty (another process may have won).
            // Keys exist but none signs now (only pending ones): bridge the gap anyway.
            let unless = if manager.ring().keys().is_empty() {
                None
            } else {
                Some(Timestamp::from_unix_millis(i64::MAX))
            };
            manager.insert(now, unless).await?;
            manager.reload().await?;
            if manager.ring().signing_key(now).is_none() {
                return Err(KeySetupError::NoActiveKey);
            }
        }
        Ok(manager)
    }

    /// The current key ring.
    pub fn ring(&self) -> Arc<KeyRing> {
        self.ring.load_full()
    }

    pub fn policy(&self) -> &KeyPolicy {
        &self.policy
    }

    /// Re-reads the keys from the database.
    ///
    /// # Errors
    /// When the store fails or a key cannot be loaded; the previous ring stays in use.
    pub async fn reload(&self) -> Result<(), KeySetupError> {
        let ring = KeyRing::from_stored(&self.store.signing_keys().await?, self.kek.as_ref())?;
        self.ring.store(Arc::new(ring));
        Ok(())
    }

    /// The periodic job: reloads, rotates when the schedule says so, and returns the `kid` of
    /// a key it created. Safe to run in every replica at once.
    ///
    /// # Errors
    /// When the store fails.
    pub async fn maintain(&self) -> Result<Option<String>, KeySetupError> {
        self.reload().await?;
        let now = self.clock.now();
        let ring = self.ring();
        let Some(latest) = ring.keys().iter().map(|k| k.activates_at).max() else {
            return Ok(None);
        };
        let Some(plan) = self.policy.scheduled_rotation(latest, now) else {
            return Ok(None);
        };
        let kid = self.insert_planned(now, plan).await?;
        self.reload().await?;
        if let Some(kid) = &kid {
            tracing::info!(%kid, activates_at = %plan.activates_at, "scheduled key rotation");
        }
        Ok(kid)
    }

    /// Forces a rotation now: a new key is published at once and signs after the
    /// pre-publication period. Does nothing when a key is already pending.
    ///
    /// # Errors
    /// When the store fails.
    pub async fn rotate_now(&self) -> Result<RotateOutcome, KeySetupError> {
        self.reload().await?;
        let now = self.clock.now();
        let plan = self.policy.forced_rotation(now);
        let outcome = match self.insert_planned(now, plan).await? {
            Some(kid) => RotateOutcome::Scheduled {
                kid,
                activates_at: plan.activates_at,
            },
            None => {
                self.reload().await?;
                let ring = self.ring();
                let pending = ring
                    .keys()
                    .iter()
                    .filter(|k| k.activates_at > now)
                    .max_by_key(|k| k.activates_at)
                    .ok_or(KeySetupError::NoActiveKey)?;
                RotateOutcome::AlreadyPending {
                    kid: pending.kid.clone(),
                    activates_at: pending.activates_at,
                }
            }
        };
        self.reload().await?;
        Ok(outcome)
    }

    /// [`Self::rotate_now`], with an audit event naming `actor` (the admin API's `RotateSigningKey`).
    ///
    /// # Errors
    /// As [`Self::rotate_now`].
    pub async fn rotate_as(&self, actor: &super::Actor) -> Result<RotateOutcome, KeySetupError> {
        let outcome = self.rotate_now().await?;
        let detail = match &outcome {
            RotateOutcome::Scheduled { kid, activates_at } => {
                format!("scheduled kid={kid}; activates={activates_at}")
            }
            RotateOutcome::AlreadyPending { kid, .. } => format!("already pending kid={kid}"),
        };
        super::Auditor::new(Arc::clone(&self.store))
            .record(actor.event(
                crate::domain::AuditKind::KeyRotated,
                self.clock.now(),
                Some(detail),
            ))
            .await;
        Ok(outcome)
    }

    /// The emergency path for a compromised key: a new key is stored, active at once, and
    /// `kid` is retired backdated past the longest token lifetime, so it leaves the JWKS and
    /// every token it signed fails verification and Introspect as soon as each process reloads
    /// its keys (this one now, running servers within their key-reload interval). Verifiers
    /// that cached the JWKS keep trusting it until their cache expires. Audited as a rotation.
    ///
    /// # Errors
    /// [`KeySetupError::UnknownKey`] when no key has this kid; when the store fails.
    pub async fn retire_now(&self, kid: &str) -> Result<EmergencyRetirement, KeySetupError> {
        self.reload().await?;
        if self.ring().find(kid).is_none() {
            return Err(KeySetupError::UnknownKey(kid.chars().take(64).collect()));
        }
        let now = self.clock.now();
        // Unconditional: whatever else is pending, a new key signs from now.
        let unless = Some(Timestamp::from_unix_millis(i64::MAX));
        let replacement = self
            .insert_at(now, now, unless)
            .await?
            .ok_or(KeySetupError::NoActiveKey)?;
        let lifetime_ms = i64::try_from(self.policy.token_lifetime.as_millis()).unwrap_or(i64::MAX);
        let backdated = Timestamp::from_unix_millis(
            now.unix_millis()
                .saturating_sub(lifetime_ms)
                .saturating_sub(1),
        );
        if !self.store.set_key_retirement(kid, backdated).await? {
            return Err(KeySetupError::UnknownKey(kid.chars().take(64).collect()));
        }
        self.reload().await?;
        tracing::warn!(retired = %kid, replacement = %replacement,
            "signing key retired at once; its tokens no longer verify");
        Ok(EmergencyRetirement {
            retired: kid.to_owned(),
            replacement,
        })
    }

    /// [`Self::retire_now`], with an audit event naming `actor` (the CLI's `keys retire --now`
    /// and the admin API's `RetireSigningKey`).
    ///
    /// # Errors
    /// As [`Self::retire_now`].
    pub async fn retire_as(
        &self,
        kid: &str,
        actor: &super::Actor,
    ) -> Result<EmergencyRetirement, KeySetupError> {
        let done = self.retire_now(kid).await?;
        super::Auditor::new(Arc::clone(&self.store))
            .record(actor.event(
                crate::domain::AuditKind::KeyRotated,
                self.clock.now(),
                Some(format!(
                    "kid={} retired={} reason=emergency",
                    done.replacement, done.retired
                )),
            ))
            .await;
        Ok(done)
    }

    /// The JWKS document to serve now.
    pub fn jwks(&self) -> serde_json::Value {
        self.ring().jwks(self.clock.now(), &self.policy)
    }

    /// How long the signing key has been signing, for the key-age metric.
    pub fn signing_key_age(&self) -> Option<Duration> {
        let now = self.clock.now();
        self.ring()
            .signing_key(now)
            .map(|k| now.since(k.activates_at))
    }

    async fn insert_planned(
        &self,
        now: Timestamp,
        plan: PlannedRotation,
    ) -> Result<Option<String>, KeySetupError> {
        self.insert_at(now, plan.activates_at, Some(plan.unless_activation_after))
            .await
    }

    async fn insert(
        &self,
        now: Timestamp,
        unless: Option<Timestamp>,
    ) -> Result<Option<String>, KeySetupError> {
        self.insert_at(now, now, unless).await
    }

    async fn insert_at(
        &self,
        now: Timestamp,
        activates_at: Timestamp,
        unless: Option<Timestamp>,
    ) -> Result<Option<String>, KeySetupError> {
        let mut key = SigningKey::generate(self.algorithm, now)?;
        key.activates_at = activates_at;
        if let Some(kek) = &self.kek {
            key.private_key = kek
                .seal(&key.kid, &key.private_key)
                .map_err(KeyError::from)?;
            key.encrypted = true;
        }
        let inserted = self.store.insert_signing_key_if(&key, unless).await?;
        if inserted {
            tracing::info!(kid = %key.kid, algorithm = self.algorithm.as_str(),
                activates_at = %activates_at, "generated a new signing key");
        }
        Ok(inserted.then_some(key.kid))
    }
}

/// Every stored key with its state at `now`, newest activation first. Needs no decryption.
///
/// # Errors
/// When the store fails.
pub async fn list_keys(
    store: &dyn Store,
    policy: &KeyPolicy,
    now: Timestamp,
) -> Result<Vec<KeyInfo>, StoreError> {
    let stored: Vec<StoredKey> = store.signing_keys().await?;
    let times = |k: &StoredKey| KeyTimes {
        created_at: k.created_at,
        activates_at: k.activates_at,
        retires_at: k.retires_at,
    };
    // The signer is chosen as KeyRing::signing_key does.
    let signer = stored
        .iter()
        .filter(|k| times(k).signs_at(now))
        .max_by(|a, b| {
            a.activates_at
                .cmp(&b.activates_at)
                .then_with(|| a.kid.cmp(&b.kid))
        })
        .map(|k| k.kid.clone());
    let mut list: Vec<KeyInfo> = stored
        .iter()
        .map(|k| {
            let state = match times(k).state(now, policy) {
                KeyState::Active if signer.as_deref() != Some(k.kid.as_str()) => KeyState::Retiring,
                s => s,
            };
            KeyInfo {
                kid: k.kid.clone(),
                algorithm: k.algorithm.clone(),
                state,
                encrypted: k.encrypted,
                created_at: k.created_at,
                activates_at: k.activates_at,
                retires_at: k.retires_at,
                unpublished_at: k
                    .retires_at
                    .map(|r| r.saturating_add(policy.token_lifetime)),
            }
        })
        .collect();
    list.sort_by_key(|k| std::cmp::Reverse(k.activates_at));
    Ok(list)
}
