//! Reading the audit trail as an administrator: pages of the events a filter selects (type,
//! user, time range), newest first, each one store query; and following new events as they
//! are stored.
//!
//! Following polls the store with an id cursor ([`AuditReader::follow`]) instead of
//! subscribing to this process's audit writer: with several replicas on one PostgreSQL
//! database every process writes events, and only the database sees them all. PostgreSQL
//! hands out ids at insert, not at commit, so a poll may see id 7 while id 6 is still being
//! committed; the cursor ([`FollowCursor`]) therefore waits behind such a gap for
//! [`GAP_GRACE`] before giving it up (a rolled-back insert leaves one for good). Events come
//! out in id order, none twice. SQLite has one writer and no gaps.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;

use super::paging::{Page, PageRequest};
use super::users::AdminError;
use crate::domain::{AuditEvent, AuditKind, Timestamp, Username};
use crate::store::{AuditQuery, AuditRecord, Store};

/// How long a follower waits for a missing id before skipping it.
pub const GAP_GRACE: Duration = Duration::from_secs(2);
/// How often a follower asks the store for new events.
pub const FOLLOW_POLL_INTERVAL: Duration = Duration::from_millis(250);
/// The most events one poll reads.
const FOLLOW_BATCH: u32 = 1000;

/// Which events to show; every set condition holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    pub kind: Option<AuditKind>,
    pub username: Option<String>,
    /// At or after.
    pub from: Option<Timestamp>,
    /// Before.
    pub to: Option<Timestamp>,
}

impl AuditFilter {
    /// From the API's fields: empty strings and zero times mean "any".
    ///
    /// # Errors
    /// An unknown event type, an invalid username, or `from` not before `to`.
    pub fn parse(
        event_type: &str,
        username: &str,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Self, AdminError> {
        let kind = match event_type {
            "" => None,
            t => Some(AuditKind::parse(t).ok_or_else(|| {
                AdminError::InvalidQuery(format!(
                    "unknown event type {:?}",
                    t.chars().take(64).collect::<String>()
                ))
            })?),
        };
        let username = match username {
            "" => None,
            u => Some(Username::parse(u)?.as_str().to_owned()),
        };
        let time = |ms: i64| (ms != 0).then(|| Timestamp::from_unix_millis(ms));
        let (from, to) = (time(from_ms), time(to_ms));
        if let (Some(f), Some(t)) = (from, to)
            && f >= t
        {
            return Err(AdminError::InvalidQuery(
                "the time range is empty: from must be before to".into(),
            ));
        }
        Ok(Self {
            kind,
            username,
            from,
            to,
        })
    }

    /// Whether `event` is one this filter selects.
    pub fn matches(&self, event: &AuditEvent) -> bool {
        self.kind.is_none_or(|k| k == event.kind)
            && self
                .username
                .as_deref()
                .is_none_or(|u| event.username.as_deref() == Some(u))
            && self.from.is_none_or(|f| event.time >= f)
            && self.to.is_none_or(|t| event.time < t)
    }
}

/// Where a follower is: the last id it has passed, and the gap it is waiting behind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FollowCursor {
    passed: i64,
    /// The missing id right after `passed`, and when it was first found missing.
    gap: Option<(i64, Instant)>,
}

impl FollowCursor {
    /// A cursor after event `id`.
    pub fn after(id: i64) -> Self {
        Self {
            passed: id,
            gap: None,
        }
    }

    /// The last id passed: what to poll after.
    pub fn position(&self) -> i64 {
        self.passed
    }

    /// Of `fetched` (ids above [`Self::position`], ascending), the records to hand out now, in
    /// order: those up to the first missing id, which is waited for until [`GAP_GRACE`] has
    /// passed since it was first seen missing, and then skipped.
    pub fn accept(&mut self, fetched: Vec<AuditRecord>, now: Instant) -> Vec<AuditRecord> {
        let mut out = Vec::new();
        for record in fetched {
            if record.id <= self.passed {
                continue;
            }
            let missing = self.passed + 1;
            if record.id > missing {
                match self.gap {
                    Some((id, since))
                        if id == missing && now.duration_since(since) >= GAP_GRACE => {}
                    Some((id, _)) if id == missing => break,
                    _ => {
                        self.gap = Some((missing, now));
                        break;
                    }
                }
            }
            self.passed = record.id;
            self.gap = None;
            out.push(record);
        }
        out
    }
}

/// Reads the audit trail for administrators.
#[derive(Clone)]
pub struct AuditReader {
    store: Arc<dyn Store>,
}

impl AuditReader {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self { store }
    }

    /// One page of the events `filter` selects, newest first; the page token is the id of
    /// the last event shown.
    ///
    /// # Errors
    /// Invalid page token; storage.
    pub async fn page(
        &self,
        filter: &AuditFilter,
        page: &PageRequest,
    ) -> Result<Page<AuditRecord>, AdminError> {
        let before_id = page
            .after()?
            .map(|id| id.parse::<i64>().map_err(|_| AdminError::InvalidPageToken))
            .transpose()?;
        let records = self
            .store
            .query_audit(&AuditQuery {
                kind: filter.kind,
                username: filter.username.clone(),
                from: filter.from,
                to: filter.to,
                before_id,
                limit: page.fetch_limit(),
            })
            .await
            .map_err(AdminError::Store)?;
        Ok(page.take(records.into_iter(), |r| r.id.to_string()))
    }

    /// The newest `limit` events selected by `filter`, oldest first (`authd audit tail`).
    ///
    /// # Errors
    /// Storage.
    pub async fn tail(
        &self,
        filter: &AuditFilter,
        limit: u32,
    ) -> Result<Vec<AuditRecord>, AdminError> {
        let mut records = self
            .store
            .query_audit(&AuditQuery {
                kind: filter.kind,
                username: filter.username.clone(),
                from: filter.from,
                to: filter.to,
                before_id: None,
                limit,
            })
            .await
            .map_err(AdminError::Store)?;
        records.reverse();
        Ok(records)
    }

    /// A cursor after event `after_id`, or after the newest event when it is 0.
    ///
    /// # Errors
    /// Storage.
    pub async fn cursor(&self, after_id: i64) -> Result<FollowCursor, AdminError> {
        let start = match after_id {
            0 => self
                .store
                .latest_audit_id()
                .await
                .map_err(AdminError::Store)?,
            id => id,
        };
        Ok(FollowCursor::after(start))
    }

    /// The events `filter` selects stored after `cursor`, as they come (polled every
    /// [`FOLLOW_POLL_INTERVAL`]), until `stop` or until the receiver is dropped. A storage
    /// error is the stream's last item.
    pub fn follow(
        &self,
        mut cursor: FollowCursor,
        filter: AuditFilter,
        stop: CancellationToken,
    ) -> ReceiverStream<Result<AuditRecord, AdminError>> {
        let (tx, rx) = mpsc::channel(64);
        let store = Arc::clone(&self.store);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(FOLLOW_POLL_INTERVAL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tx.closed() => return,
                    _ = tick.tick() => {}
                }
                let fetched = match store.audit_after(cursor.position(), FOLLOW_BATCH).await {
                    Ok(fetched) => fetched,
                    Err(e) => {
                        let _ = tx.send(Err(AdminError::Store(e))).await;
                        return;
                    }
                };
                for record in cursor.accept(fetched, Instant::now()) {
                    if filter.matches(&record.event) && tx.send(Ok(record)).await.is_err() {
                        return;
                    }
                }
            }
        });
        ReceiverStream::new(rx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: i64) -> AuditRecord {
        AuditRecord {
            id,
            event: AuditEvent::new(AuditKind::LoginFailed, Timestamp::from_unix_millis(id)),
        }
    }

    fn ids(records: &[AuditRecord]) -> Vec<i64> {
        records.iter().map(|r| r.id).collect()
    }

    #[test]
    fn contiguous_events_pass_at_once_and_never_twice() {
        let t0 = Instant::now();
        let mut cursor = FollowCursor::after(4);
        let out = cursor.accept(vec![record(4), record(5), record(6)], t0);
        assert_eq!(ids(&out), [5, 6]);
        assert_eq!(cursor.position(), 6);
        assert!(cursor.accept(vec![record(6)], t0).is_empty());
    }

    #[test]
    fn a_gap_is_waited_for_then_filled_in_order() {
        let t0 = Instant::now();
        let mut cursor = FollowCursor::after(1);
        // 2 is still being committed when 3 is seen.
        assert_eq!(ids(&cursor.accept(vec![record(3)], t0)), Vec::<i64>::new());
        let later = t0 + GAP_GRACE / 2;
        assert_eq!(
            ids(&cursor.accept(vec![record(3)], later)),
            Vec::<i64>::new()
        );
        // 2 commits: both come out, in order.
        assert_eq!(
            ids(&cursor.accept(vec![record(2), record(3)], later)),
            [2, 3]
        );
    }

    #[test]
    fn a_gap_that_never_fills_is_skipped_after_the_grace() {
        let t0 = Instant::now();
        let mut cursor = FollowCursor::after(1);
        assert!(cursor.accept(vec![record(3), record(4)], t0).is_empty());
        let out = cursor.accept(vec![record(3), record(4)], t0 + GAP_GRACE);
        assert_eq!(ids(&out), [3, 4]);
        // A new gap starts its own wait.
        assert!(cursor.accept(vec![record(6)], t0 + GAP_GRACE).is_empty());
    }

    #[test]
    fn filters_select_by_type_user_and_half_open_time_range() {
        let filter = AuditFilter::parse("login_failed", "alice", 10, 20).unwrap();
        let event = |kind, user: &str, ms| {
            AuditEvent::new(kind, Timestamp::from_unix_millis(ms)).username(user)
        };
        assert!(filter.matches(&event(AuditKind::LoginFailed, "alice", 10)));
        assert!(!filter.matches(&event(AuditKind::LoginFailed, "alice", 20)));
        assert!(!filter.matches(&event(AuditKind::LoginFailed, "bob", 15)));
        assert!(!filter.matches(&event(AuditKind::UserCreated, "alice", 15)));
        assert!(AuditFilter::parse("no_such_event", "", 0, 0).is_err());
        assert!(AuditFilter::parse("", "", 20, 10).is_err());
        assert_eq!(
            AuditFilter::parse("", "", 0, 0).unwrap(),
            AuditFilter::default()
        );
    }
}
