//! The rotation batcher: one task per replica that applies concurrent rotations together.
//!
//! A rotation alone is seven round trips to PostgreSQL (begin, lock the family, read, mark the
//! token used, insert its successor, record the event, commit), and on a busy replica the
//! round trips, not the rows, are what both sides spend their time on. So rotations are queued
//! to this task, which takes whatever has arrived (up to [`MAX_BATCH`]) and applies it as one
//! transaction, each statement over the whole batch:
//!
//! 1. begin, with the batch's statements planned for their actual arrays;
//! 2. lock the families of every presented token, in id order (`FOR UPDATE`), so batches of
//!    different replicas that share families wait for each other instead of deadlocking;
//! 3. read every presented token afresh (a new snapshot, after the locks), and [`decide`] each
//!    rotation, in arrival order (reuse revocations, which are rare, are written one by one as
//!    they are decided);
//! 4. mark the rotated tokens used, insert their successors, record every audit event;
//! 5. commit, and only then answer each caller.
//!
//! Within a batch every family appears at most once: a rotation whose token or family an
//! earlier one of the batch already took is held back, in order, for the next batch. So the
//! rotations of a batch touch disjoint rows, and the outcome is exactly that of applying them
//! one after another, each in its own transaction — which is what the PostgreSQL store did
//! before, and what the conformance tests check on both backends.
//!
//! A batch that fails with a serialization failure or a deadlock is retried whole, like any
//! transaction of this store; any other failure is every caller's error. A caller that gave up
//! (its deadline passed) before its batch began is dropped from it.

use std::collections::{HashMap, HashSet, VecDeque};

use sqlx::postgres::{PgPool, PgRow};
use sqlx::{Postgres, Row, Transaction};
use tokio::sync::mpsc;

use super::audit::insert_audit;
use super::sessions::{PRESENTED_TOKENS_SQL, revoke_family_in};
use crate::domain::{AuditEvent, Decision, PresentedToken, Rejection, Rotation, decide};
use crate::store::rotation_queue::{Request, RotationJob, RotationQueue, RotationReply};
use crate::store::{StoreError, rows, unavailable};

/// Most rotations applied in one transaction. Under load a batch is whatever arrived while the
/// previous one was being applied, so this only bounds the worst case (and the statements'
/// arrays).
const MAX_BATCH: usize = 256;
/// Rotations that may wait for the batcher; callers beyond it wait to queue.
const QUEUE: usize = 4096;

/// Starts a replica's batcher on the current runtime and returns its queue. The batcher stops
/// when the queue is closed or the last handle to it is dropped.
pub(super) fn spawn(pool: PgPool) -> RotationQueue {
    let (queue, requests) = RotationQueue::new(QUEUE);
    tokio::spawn(apply_batches(pool, requests));
    queue
}

/// The batcher's task: takes what has arrived, applies it, and puts the rotations held back
/// first in line for the next batch.
async fn apply_batches(pool: PgPool, mut queue: mpsc::Receiver<Request>) {
    let mut waiting: VecDeque<(RotationJob, RotationReply)> = VecDeque::new();
    let mut closing = None;
    loop {
        if waiting.is_empty() {
            if closing.is_some() {
                break;
            }
            match queue.recv().await {
                Some(Request::Rotate(job, reply)) => waiting.push_back((job, reply)),
                Some(Request::Close(done)) => closing = Some(done),
                None => break,
            }
        }
        while closing.is_none() && waiting.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(Request::Rotate(job, reply)) => waiting.push_back((job, reply)),
                Ok(Request::Close(done)) => closing = Some(done),
                Err(_) => break,
            }
        }
        waiting.retain(|(_, reply)| !reply.is_closed());
        let batch: Vec<_> = waiting.drain(..waiting.len().min(MAX_BATCH)).collect();
        for held_back in apply(&pool, batch).await.into_iter().rev() {
            waiting.push_front(held_back);
        }
    }
    if let Some(done) = closing {
        let _ = done.send(());
    }
}

/// Applies `batch` (retrying transient failures), answers the callers it decided, and returns
/// the rotations held back for the next batch, in order.
async fn apply(
    pool: &PgPool,
    batch: Vec<(RotationJob, RotationReply)>,
) -> Vec<(RotationJob, RotationReply)> {
    if batch.is_empty() {
        return batch;
    }
    let jobs: Vec<&RotationJob> = batch.iter().map(|(job, _)| job).collect();
    let started = std::time::Instant::now();
    let outcome = retrying!(apply_once(pool, &jobs));
    crate::metrics::postgres_rotation_batch(jobs.len(), started.elapsed());
    match outcome {
        Ok(outcomes) => {
            let mut held_back = Vec::new();
            for ((job, reply), outcome) in batch.into_iter().zip(outcomes) {
                match outcome {
                    Some(rotation) => {
                        let _ = reply.send(Ok(rotation));
                    }
                    None => held_back.push((job, reply)),
                }
            }
            held_back
        }
        Err(e) => {
            tracing::warn!(error = %e, rotations = batch.len(), "rotation batch failed");
            let message = e.to_string();
            for (_, reply) in batch {
                let _ = reply.send(Err(StoreError::Unavailable(message.clone().into())));
            }
            Vec::new()
        }
    }
}

/// One transaction over `jobs`: the outcome of each, or `None` for one held back because an
/// earlier job of the batch took its token or family.
async fn apply_once(
    pool: &PgPool,
    jobs: &[&RotationJob],
) -> Result<Vec<Option<Rotation>>, StoreError> {
    let presented: Vec<&[u8]> = jobs.iter().map(|job| &job.presented.0[..]).collect();
    let used: Vec<&[u8]> = jobs
        .iter()
        .map(|job| rows::used_key(&job.presented))
        .collect();
    // A cached generic plan suits a statement whose parameters are single values, not these,
    // whose arrays vary in length: one chosen while the tables were small keeps scanning
    // them whole when they have grown (BENCHMARKS.md). Planned for the values at hand, each
    // costs a little more planning per *batch*. (One simple query, so one round trip.)
    let mut tx = pool
        .begin_with("BEGIN; SET LOCAL plan_cache_mode = force_custom_plan")
        .await
        .map_err(unavailable)?;
    // 2. Lock the families, in a fixed order. Every writer of a family's tokens takes its lock
    //    first, so changes to one family run one after the other, on whichever replica.
    sqlx::query(
        "SELECT id FROM refresh_families \
         WHERE seq IN (SELECT family FROM refresh_tokens WHERE hash = ANY($1) \
                       UNION ALL SELECT family FROM used_refresh_tokens WHERE hash = ANY($2)) \
         ORDER BY id FOR UPDATE",
    )
    .bind(&presented)
    .bind(&used)
    .execute(&mut *tx)
    .await
    .map_err(unavailable)?;
    // 3. Read the tokens after the locks: under READ COMMITTED this statement takes a new
    //    snapshot, so it sees everything the previous holders of the locks committed.
    let read = sqlx::query(PRESENTED_TOKENS_SQL)
        .bind(&presented)
        .bind(&used)
        .fetch_all(&mut *tx)
        .await
        .map_err(unavailable)?;
    let mut found: HashMap<Vec<u8>, PgRow> = HashMap::with_capacity(read.len());
    for row in read {
        found.insert(row.try_get("presented").map_err(unavailable)?, row);
    }
    // Decide, in order.
    let mut writes = Writes::default();
    let mut taken_tokens = HashSet::new();
    let mut taken_families = HashSet::new();
    let mut outcomes = Vec::with_capacity(jobs.len());
    for job in jobs {
        // The family's newest token by its whole key, else a used one by its prefix.
        let row = found
            .get(&job.presented.0[..])
            .or_else(|| found.get(rows::used_key(&job.presented)));
        let state = row
            .map(|row| Ok::<_, StoreError>((rows::presented(row)?, rows::family_seq(row)?)))
            .transpose()?;
        let first_for_token = taken_tokens.insert(job.presented);
        let first_for_family = state
            .as_ref()
            .is_none_or(|(state, _)| taken_families.insert(state.family_id.clone()));
        if !(first_for_token && first_for_family) {
            outcomes.push(None);
            continue;
        }
        let rotation = match state {
            // Not there (never issued, or purged or its user deleted since).
            None => Rotation::Rejected(Rejection::Unknown),
            Some(state) => decide_one(&mut tx, &mut writes, job, state).await?,
        };
        writes
            .events
            .extend(rotation.audit_events(job.now, &job.origin));
        outcomes.push(Some(rotation));
    }
    // 4. Write, 5. commit.
    writes.apply(&mut tx).await?;
    tx.commit().await.map_err(unavailable)?;
    Ok(outcomes)
}

/// Applies the rules to one presented token: queues a rotation's writes in `writes`, revokes a
/// reused token's family at once.
async fn decide_one<'a>(
    tx: &mut Transaction<'static, Postgres>,
    writes: &mut Writes<'a>,
    job: &'a RotationJob,
    (state, family_seq): (PresentedToken, i64),
) -> Result<Rotation, StoreError> {
    let decision = decide(&state, job.now, &job.policy);
    let PresentedToken {
        user, family_id, ..
    } = state;
    Ok(match decision {
        Decision::Reject(why) => Rotation::Rejected(why),
        Decision::ReturnSuccessor(sealed_successor) => Rotation::Replayed {
            user,
            family_id,
            sealed_successor,
        },
        Decision::RevokeFamily => {
            revoke_family_in(tx, &family_id, job.now, "refresh token reuse").await?;
            Rotation::ReuseDetected { user, family_id }
        }
        Decision::Rotate => {
            writes.rotate(job, family_seq);
            Rotation::Rotated { user, family_id }
        }
    })
}

/// The writes of a batch, as the columns of its statements.
#[derive(Default)]
struct Writes<'a> {
    /// Presented tokens to retire: their whole keys, and the prefixes kept of them.
    used: Vec<&'a [u8]>,
    used_keys: Vec<&'a [u8]>,
    /// The successors' rows (their families are the retired tokens' too).
    successors: Vec<&'a [u8]>,
    families: Vec<i64>,
    issued_at: Vec<i64>,
    expires_at: Vec<i64>,
    sealed: Vec<&'a [u8]>,
    events: Vec<AuditEvent>,
}

impl<'a> Writes<'a> {
    fn rotate(&mut self, job: &'a RotationJob, family: i64) {
        self.used.push(&job.presented.0);
        self.used_keys.push(rows::used_key(&job.presented));
        self.successors.push(&job.successor.token.hash.0);
        self.families.push(family);
        self.issued_at
            .push(job.successor.token.issued_at.unix_millis());
        self.expires_at
            .push(job.successor.token.expires_at.unix_millis());
        self.sealed.push(&job.successor.sealed);
    }

    async fn apply(&self, tx: &mut Transaction<'static, Postgres>) -> Result<(), StoreError> {
        if !self.used.is_empty() {
            // Retire the presented tokens: their rows go (with their own sealed copies: only
            // the immediately previous token may use the grace window, and that is now each
            // presented one), and what reuse detection needs of them is kept, in one statement.
            let retired = sqlx::query(
                "WITH retired AS ( \
                     DELETE FROM refresh_tokens WHERE hash = ANY($1) RETURNING hash, family) \
                 INSERT INTO used_refresh_tokens (hash, family) \
                 SELECT k.used_key, r.family \
                 FROM retired r JOIN UNNEST($1::BYTEA[], $2::BYTEA[]) AS k(hash, used_key) \
                     ON k.hash = r.hash \
                 ON CONFLICT (hash) DO UPDATE SET family = NULL",
            )
            .bind(&self.used)
            .bind(&self.used_keys)
            .execute(&mut **tx)
            .await
            .map_err(unavailable)?;
            // The family locks make this impossible; the count keeps the guarantee even if the
            // locking were ever weakened.
            if usize::try_from(retired.rows_affected()).ok() != Some(self.used.len()) {
                return Err(StoreError::Unavailable("concurrent rotation".into()));
            }
            sqlx::query(
                "INSERT INTO refresh_tokens \
                     (hash, family, issued_at, expires_at, predecessor, sealed_by_predecessor) \
                 SELECT * FROM UNNEST($1::BYTEA[], $2::BIGINT[], $3::BIGINT[], $4::BIGINT[], \
                                      $5::BYTEA[], $6::BYTEA[])",
            )
            .bind(&self.successors)
            .bind(&self.families)
            .bind(&self.issued_at)
            .bind(&self.expires_at)
            .bind(&self.used_keys)
            .bind(&self.sealed)
            .execute(&mut **tx)
            .await
            .map_err(unavailable)?;
        }
        insert_audit(tx, &self.events).await
    }
}
