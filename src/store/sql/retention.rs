//! Purges, one statement per lifetime (the retention job's).

/// A backend's purge statements, one per [`crate::store::Expired`] kind: `$1` is the kind's time, `$2`
/// the batch size, `$3` (login counters only) the failures at which a counter is locked.
pub(crate) struct PurgeStatements {
    /// Tokens of families that ended (absolute lifetime) or were revoked.
    pub(crate) tokens_of_ended_families: &'static str,
    /// Used tokens of families that ended or were revoked.
    pub(crate) used_tokens_of_ended_families: &'static str,
    /// Unused tokens past their idle timeout (used ones stay while their family lives).
    pub(crate) idle_tokens: &'static str,
    /// Sealed copies past the grace window (an update, not a delete).
    pub(crate) sealed_copies: &'static str,
    /// Ended or revoked families (their tokens are gone by then; any left go by cascade).
    pub(crate) ended_families: &'static str,
    /// Revocations of access tokens that have expired.
    pub(crate) revoked_access_tokens: &'static str,
    /// Forgotten login-failure counters, never a locked one (`$3`).
    pub(crate) login_counters: &'static str,
    /// Audit events past their retention, oldest first.
    pub(crate) audit_events: &'static str,
    /// Audit events of one type (`$3`) past its retention, oldest first.
    pub(crate) audit_events_of_kind: &'static str,
}

/// One purge batch of `$what` (an [`crate::store::Expired`]) of at most `$limit` rows, from the
/// backend's [`PurgeStatements`]. `$3` is the kind's extra parameter, if any.
macro_rules! purge_batch {
    ($statements:expr, $what:expr, $limit:expr) => {{
        use $crate::store::Expired;
        let sql = match $what {
            Expired::TokensOfEndedFamilies { .. } => $statements.tokens_of_ended_families,
            Expired::UsedTokensOfEndedFamilies { .. } => $statements.used_tokens_of_ended_families,
            Expired::IdleTokens { .. } => $statements.idle_tokens,
            Expired::SealedCopies { .. } => $statements.sealed_copies,
            Expired::EndedFamilies { .. } => $statements.ended_families,
            Expired::RevokedAccessTokens { .. } => $statements.revoked_access_tokens,
            Expired::LoginCounters { .. } => $statements.login_counters,
            Expired::AuditEvents { .. } => $statements.audit_events,
            Expired::AuditEventsOfKind { .. } => $statements.audit_events_of_kind,
        };
        let query = sqlx::query(sql)
            .bind($what.time().unix_millis())
            .bind(i64::from($limit));
        let query = match $what.locked_at() {
            Some(locked_at) => query.bind(i64::from(locked_at)),
            None => query,
        };
        match $what.event_type() {
            Some(event_type) => query.bind(event_type),
            None => query,
        }
    }};
}
pub(crate) use purge_batch;
