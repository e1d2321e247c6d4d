//! Refresh: a refresh token buys a fresh pair, rotating it (see [`crate::domain::decide`]);
//! the store decides and applies the rotation in one transaction. A directory user's session
//! is first rechecked against the directory when that is due
//! ([`super::directory::DirectorySource::recheck`]), a step of its own before the rotation.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tracing::{debug, info, warn};

use super::RequestContext;
use super::auth::{AuthError, IssuedTokens};
use super::directory::DirectorySource;
use super::shared::Context;
use crate::crypto::refresh_token::RefreshToken;
use crate::domain::{Origin, Rotation, Successor};

/// Refresh-token rotation.
#[derive(Debug)]
pub struct Refresher {
    shared: Arc<Context>,
    /// Rotations so far in this process, for `audit_refresh = sample:N`.
    rotations: AtomicU64,
    /// When `ldap` is an identity source: its sessions' recheck.
    directory: Option<Arc<DirectorySource>>,
}

impl Refresher {
    pub fn new(shared: Arc<Context>) -> Self {
        Self {
            shared,
            rotations: AtomicU64::new(0),
            directory: None,
        }
    }

    /// The same, rechecking directory users' sessions against `directory`.
    #[must_use]
    pub fn with_directory(mut self, directory: Option<Arc<DirectorySource>>) -> Self {
        self.directory = directory;
        self
    }

    /// Exchanges a refresh token for a fresh pair, rotating it (see [`crate::domain::decide`]).
    ///
    /// # Errors
    /// - [`AuthError::InvalidArgument`] for an empty token;
    /// - [`AuthError::InvalidRefreshToken`] for anything unknown, malformed, expired, revoked
    ///   or reused (reuse also revokes the whole family), and for a directory user's session
    ///   the recheck ended (gone, disabled or in no mapped group in the directory);
    /// - [`AuthError::Unavailable`] when storage fails, or a due directory recheck cannot
    ///   reach the directory; nothing is issued then.
    pub async fn refresh(
        &self,
        presented: &str,
        ctx: &RequestContext,
    ) -> Result<IssuedTokens, AuthError> {
        if presented.is_empty() {
            return Err(AuthError::InvalidArgument("refresh_token is required"));
        }
        let peer = ctx.source_label().unwrap_or_default();
        let request_id = ctx.request_id.as_str();
        let Some(presented) = RefreshToken::parse(presented) else {
            info!(target: "authd::refresh", %peer, %request_id, outcome = "malformed",
                "refresh refused");
            crate::metrics::refresh("malformed");
            return Err(AuthError::InvalidRefreshToken);
        };
        if let Some(directory) = &self.directory {
            directory
                .recheck(&self.shared, &presented.hash(), ctx)
                .await
                .inspect_err(|e| {
                    if matches!(e, AuthError::Unavailable(_)) {
                        crate::metrics::refresh("error");
                    }
                })?;
        }
        let now = self.shared.now();
        let successor = RefreshToken::generate(now)?;
        let stored_successor = Successor {
            token: self.shared.new_token(&successor, now),
            sealed: presented.seal_successor(&successor)?,
        };
        let audited = self.shared.settings().audit_refresh;
        let origin = Origin {
            source: ctx.source_label(),
            request_id: Some(ctx.request_id.clone()),
            quiet: !audited.records(self.rotations.fetch_add(1, Ordering::Relaxed)),
        };
        let rotation = self
            .shared
            .store()
            .rotate_refresh(
                &presented.hash(),
                &stored_successor,
                now,
                &self.shared.settings().refresh,
                &origin,
            )
            .await
            .inspect_err(|_| crate::metrics::refresh("error"))?;
        self.shared
            .audit()
            .log_stored(&rotation.audit_events(now, &origin));
        match rotation {
            // A rotation and a grace retry are logged at info by their audit event (above),
            // which names the user, family, source and request; one line per refresh is enough.
            Rotation::Rotated { user, family_id } => {
                debug!(target: "authd::refresh", user_id = %user.id, family = %family_id, %peer,
                    %request_id, outcome = "rotated", "refresh token rotated");
                crate::metrics::refresh("rotated");
                let access_token = self.shared.user_access_token(&user, &family_id, now)?;
                Ok(IssuedTokens {
                    access_token,
                    refresh_token: successor,
                })
            }
            Rotation::Replayed {
                user,
                family_id,
                sealed_successor,
            } => {
                let refresh_token = presented
                    .open_successor(&sealed_successor)
                    .ok_or(AuthError::InvalidRefreshToken)?;
                debug!(target: "authd::refresh", user_id = %user.id, family = %family_id, %peer,
                    %request_id, outcome = "grace_retry",
                    "previous refresh token retried within the grace window");
                crate::metrics::refresh("grace_retry");
                let access_token = self.shared.user_access_token(&user, &family_id, now)?;
                Ok(IssuedTokens {
                    access_token,
                    refresh_token,
                })
            }
            Rotation::ReuseDetected { user, family_id } => {
                warn!(target: "authd::refresh", user_id = %user.id, username = %user.username,
                    family = %family_id, %peer, %request_id, outcome = "reuse_detected",
                    "refresh token reuse detected; family revoked");
                crate::metrics::refresh("reuse_detected");
                crate::metrics::reuse_detected();
                Err(AuthError::InvalidRefreshToken)
            }
            Rotation::Rejected(why) => {
                info!(target: "authd::refresh", %peer, %request_id, outcome = "rejected",
                    reason = why.as_str(), "refresh refused");
                crate::metrics::refresh("rejected");
                Err(AuthError::InvalidRefreshToken)
            }
        }
    }
}
