//! The rotation writer: the one task that group-commits rotations (see [`super`]).
//!
//! A batch is applied in *rounds*. A round loads the stored state of all its presented tokens
//! with one statement, decides each with [`decide`], and writes every decision with one
//! statement per kind of change (mark the presented tokens used, insert their successors,
//! insert the audit events), however many rotations it holds. Each statement is a round trip to
//! the connection's thread, so this keeps the cost of a rotation low under load.
//!
//! The rotations of one round touch distinct tokens and families, so their order within the
//! round cannot change any outcome. A rotation whose token or family an earlier one of the
//! round already touched starts the next round, which loads after the previous round's
//! writes. So the outcome is exactly that of applying the batch one rotation after the other.
//!
//! The rows travel as one JSON array per statement (read with `json_each`, hashes as hex), so
//! every statement's text is constant and SQLite prepares it once, whatever the batch size.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::time::Instant;

use serde_json::{Value, json};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{Connection, Row, Sqlite, SqliteConnection, Transaction};
use tokio::sync::{mpsc, oneshot};

use super::{
    MAX_ROTATION_BATCH, ROTATION_QUEUE, presented_from_row, revoke_family_in, unavailable,
};
use crate::domain::{
    AuditEvent, Decision, FamilyId, Origin, PresentedToken, RefreshPolicy, Rejection, Rotation,
    Successor, Timestamp, TokenHash, decide,
};
use crate::store::StoreError;

/// One rotation, as asked of the writer.
pub(super) struct RotationJob {
    pub(super) presented: TokenHash,
    pub(super) successor: Successor,
    pub(super) now: Timestamp,
    pub(super) policy: RefreshPolicy,
    pub(super) origin: Origin,
}

type RotationReply = oneshot::Sender<Result<Rotation, StoreError>>;

/// The handle to the single task that writes rotations.
#[derive(Debug, Clone)]
pub(super) struct RotationWriter {
    jobs: mpsc::Sender<(RotationJob, RotationReply)>,
}

impl RotationWriter {
    /// Starts the writer; it stops when the last handle is dropped.
    pub(super) fn spawn(options: SqliteConnectOptions) -> Self {
        let (jobs, queue) = mpsc::channel(ROTATION_QUEUE);
        tokio::spawn(write_rotations(options, queue));
        Self { jobs }
    }

    /// Queues a rotation and waits until the batch holding it is committed (or failed).
    pub(super) async fn rotate(&self, job: RotationJob) -> Result<Rotation, StoreError> {
        let (reply, answer) = oneshot::channel();
        let gone = || StoreError::Unavailable("the rotation writer has stopped".into());
        self.jobs.send((job, reply)).await.map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }
}

/// The writer task: takes every queued rotation (up to [`MAX_ROTATION_BATCH`]), applies them
/// in one transaction, and answers each caller only after the commit.
///
/// It keeps a connection of its own rather than taking one from the pool: SQLite discards a
/// connection's page cache whenever another connection has written, so a connection that
/// does every rotation keeps its cache (and its prepared statements) warm. After a failed
/// batch it reconnects.
async fn write_rotations(
    options: SqliteConnectOptions,
    mut queue: mpsc::Receiver<(RotationJob, RotationReply)>,
) {
    let mut connection: Option<SqliteConnection> = None;
    let mut batch = Vec::with_capacity(MAX_ROTATION_BATCH);
    while queue.recv_many(&mut batch, MAX_ROTATION_BATCH).await > 0 {
        let (jobs, replies): (Vec<_>, Vec<_>) = batch.drain(..).unzip();
        let outcome = match connection.as_mut() {
            Some(conn) => rotate_batch(conn, &jobs).await,
            None => match SqliteConnection::connect_with(&options).await {
                Ok(conn) => rotate_batch(connection.insert(conn), &jobs).await,
                Err(e) => Err(unavailable(e)),
            },
        };
        match outcome {
            Ok(outcomes) => {
                for (reply, outcome) in replies.into_iter().zip(outcomes) {
                    // A caller that went away still had its rotation applied, exactly as
                    // when a reply is lost on the network.
                    let _ = reply.send(outcome);
                }
            }
            Err(e) => {
                connection = None;
                tracing::error!(error = %e, rotations = jobs.len(),
                    "rotation batch failed and was rolled back");
                for reply in replies {
                    let _ = reply.send(Err(StoreError::Unavailable(
                        format!("rotation batch failed: {e}").into(),
                    )));
                }
            }
        }
    }
}

/// Applies `jobs` in order in one transaction, round after round. A rotation whose stored
/// state cannot be read fails alone (nothing of it is written); a failed write or commit fails
/// the whole batch, which is rolled back (the transaction is dropped uncommitted).
pub(super) async fn rotate_batch(
    connection: &mut SqliteConnection,
    jobs: &[RotationJob],
) -> Result<Vec<Result<Rotation, StoreError>>, StoreError> {
    let started = Instant::now();
    let mut tx = connection
        .begin_with("BEGIN IMMEDIATE")
        .await
        .map_err(unavailable)?;
    let mut outcomes = Vec::with_capacity(jobs.len());
    let mut rest = jobs;
    while !rest.is_empty() {
        let taken = rotate_round(&mut tx, rest, &mut outcomes).await?;
        rest = &rest[taken..];
    }
    let written = Instant::now();
    tx.commit().await.map_err(unavailable)?;
    crate::metrics::rotation_batch(jobs.len(), written - started, written.elapsed());
    Ok(outcomes)
}

/// Applies the longest prefix of `jobs` (at least one) whose tokens and families are all
/// distinct, pushing one outcome per job to `outcomes`; returns how many it applied.
async fn rotate_round(
    tx: &mut Transaction<'_, Sqlite>,
    jobs: &[RotationJob],
    outcomes: &mut Vec<Result<Rotation, StoreError>>,
) -> Result<usize, StoreError> {
    let mut states = load_states(tx, jobs).await?;
    let mut tokens = HashSet::with_capacity(jobs.len());
    let mut families = HashSet::with_capacity(jobs.len());
    let mut writes = Writes::default();
    let mut taken = 0;
    for job in jobs {
        if !tokens.insert(job.presented) {
            break;
        }
        let state = match states.remove(&job.presented) {
            Some(Ok(state)) => state,
            Some(Err(e)) => {
                outcomes.push(Err(e));
                taken += 1;
                continue;
            }
            None => {
                outcomes.push(Ok(Rotation::Rejected(Rejection::Unknown)));
                taken += 1;
                continue;
            }
        };
        if !families.insert(state.family_id.clone()) {
            break;
        }
        let rotation = writes.decide(job, state);
        writes
            .audit
            .extend(rotation.audit_events(job.now, &job.origin));
        outcomes.push(Ok(rotation));
        taken += 1;
    }
    writes.apply(tx).await?;
    Ok(taken)
}

/// The stored state of every presented token of `jobs` that exists, by hash.
async fn load_states(
    tx: &mut Transaction<'_, Sqlite>,
    jobs: &[RotationJob],
) -> Result<HashMap<TokenHash, Result<PresentedToken, StoreError>>, StoreError> {
    let hashes: Vec<String> = jobs.iter().map(|job| hex(&job.presented.0)).collect();
    let rows = sqlx::query(presented_token_sql!(
        "WHERE t.hash IN (SELECT unhex(value) FROM json_each(?1))"
    ))
    .bind(Value::from(hashes).to_string())
    .fetch_all(&mut **tx)
    .await
    .map_err(unavailable)?;
    let mut states = HashMap::with_capacity(rows.len());
    for row in rows {
        let hash: Vec<u8> = row.try_get("hash").map_err(unavailable)?;
        let hash = <[u8; 32]>::try_from(hash.as_slice())
            .map_err(|_| StoreError::Unavailable("a stored token hash is not 32 bytes".into()))?;
        let state = presented_from_row(&row).map(|inspected| inspected.state);
        states.insert(TokenHash(hash), state);
    }
    Ok(states)
}

/// What one round writes, gathered while deciding.
#[derive(Default)]
struct Writes {
    /// One JSON row per rotation: presented and successor hashes, the sealed successor, the
    /// family and the times.
    rotated: Vec<Value>,
    /// Families whose token was reused, with the time.
    revoked: Vec<(FamilyId, Timestamp)>,
    audit: Vec<AuditEvent>,
}

impl Writes {
    /// Decides `job` on `state` with [`decide`] and notes what the decision writes.
    fn decide(&mut self, job: &RotationJob, state: PresentedToken) -> Rotation {
        let PresentedToken {
            user, family_id, ..
        } = &state;
        match decide(&state, job.now, &job.policy) {
            Decision::Reject(why) => Rotation::Rejected(why),
            Decision::ReturnSuccessor(sealed_successor) => Rotation::Replayed {
                user: user.clone(),
                family_id: family_id.clone(),
                sealed_successor,
            },
            Decision::RevokeFamily => {
                self.revoked.push((family_id.clone(), job.now));
                Rotation::ReuseDetected {
                    user: user.clone(),
                    family_id: family_id.clone(),
                }
            }
            Decision::Rotate => {
                let next = &job.successor.token;
                self.rotated.push(json!({
                    "presented": hex(&job.presented.0),
                    "successor": hex(&next.hash.0),
                    "sealed": hex(&job.successor.sealed),
                    "family": family_id.as_str(),
                    "at": job.now.unix_millis(),
                    "issued": next.issued_at.unix_millis(),
                    "expires": next.expires_at.unix_millis(),
                }));
                Rotation::Rotated {
                    user: user.clone(),
                    family_id: family_id.clone(),
                }
            }
        }
    }

    async fn apply(self, tx: &mut Transaction<'_, Sqlite>) -> Result<(), StoreError> {
        for (family, now) in &self.revoked {
            revoke_family_in(tx, family, *now, "refresh token reuse").await?;
        }
        if !self.rotated.is_empty() {
            let expected = self.rotated.len() as u64;
            let rows = Value::from(self.rotated).to_string();
            let marked = execute(tx, MARK_USED, &rows).await?;
            // The write lock is held since BEGIN IMMEDIATE and a round's tokens are distinct,
            // so every presented token is still unused; checking keeps the guarantee even if
            // that ever changes.
            if marked != expected {
                return Err(StoreError::Unavailable("concurrent rotation".into()));
            }
            execute(tx, INSERT_SUCCESSORS, &rows).await?;
        }
        if !self.audit.is_empty() {
            let rows: Vec<Value> = self.audit.iter().map(audit_row).collect();
            execute(tx, INSERT_AUDIT_EVENTS, &Value::from(rows).to_string()).await?;
        }
        Ok(())
    }
}

/// Marks each presented token used and links its successor. Its own sealed copy (kept for a
/// retry of its predecessor within the grace window) goes: only the immediately previous token
/// may use the window, and that is now the presented one.
const MARK_USED: &str = "\
    UPDATE refresh_tokens \
    SET used_at = r.value->>'at', successor_hash = unhex(r.value->>'successor'), \
        sealed_by_predecessor = NULL \
    FROM json_each(?1) AS r \
    WHERE refresh_tokens.hash = unhex(r.value->>'presented') AND refresh_tokens.used_at IS NULL";
/// Stores each successor with its copy sealed under a key derived from the presented token.
const INSERT_SUCCESSORS: &str = "\
    INSERT INTO refresh_tokens (hash, family_id, issued_at, expires_at, sealed_by_predecessor) \
    SELECT unhex(value->>'successor'), value->>'family', value->>'issued', value->>'expires', \
           unhex(value->>'sealed') \
    FROM json_each(?1)";
const INSERT_AUDIT_EVENTS: &str = "\
    INSERT INTO audit_events (at, event_type, user_id, username, source, request_id, detail) \
    SELECT value->>'at', value->>'type', value->>'user_id', value->>'username', \
           value->>'source', value->>'request_id', value->>'detail' \
    FROM json_each(?1)";

fn audit_row(e: &AuditEvent) -> Value {
    json!({
        "at": e.time.unix_millis(),
        "type": e.kind.as_str(),
        "user_id": e.user_id,
        "username": e.username,
        "source": e.source,
        "request_id": e.request_id,
        "detail": e.detail,
    })
}

/// Runs one statement over the JSON array `rows`; returns the rows it changed.
async fn execute(
    tx: &mut Transaction<'_, Sqlite>,
    sql: &'static str,
    rows: &str,
) -> Result<u64, StoreError> {
    Ok(sqlx::query(sql)
        .bind(rows)
        .execute(&mut **tx)
        .await
        .map_err(unavailable)?
        .rows_affected())
}

fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .fold(String::with_capacity(2 * bytes.len()), |mut out, b| {
            let _ = write!(out, "{b:02x}");
            out
        })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::domain::{NewFamily, NewToken, SessionOrigin, User, UserId, Username};
    use crate::store::sqlite::SqliteStore;
    use crate::store::{NewUser, Store};

    const T0: Timestamp = Timestamp::from_unix_millis(1_800_000_000_000);

    fn policy(grace: Duration) -> RefreshPolicy {
        RefreshPolicy {
            idle_ttl: Duration::from_secs(3600),
            max_lifetime: Duration::from_secs(86_400),
            reuse_grace: grace,
        }
    }

    fn token(n: u8) -> NewToken {
        NewToken {
            hash: TokenHash([n; 32]),
            issued_at: T0,
            expires_at: T0.saturating_add(Duration::from_secs(3600)),
        }
    }

    fn job(presented: u8, successor: u8, grace: Duration) -> RotationJob {
        RotationJob {
            presented: TokenHash([presented; 32]),
            successor: Successor {
                token: token(successor),
                sealed: vec![successor; 60],
            },
            now: T0,
            policy: policy(grace),
            origin: Origin::default(),
        }
    }

    async fn connection(store: &SqliteStore) -> SqliteConnection {
        store.pool.acquire().await.unwrap().detach()
    }

    /// A store with one user and one family whose first token is `token(1)`.
    async fn store_with_family() -> (SqliteStore, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let store = SqliteStore::open(&url).await.unwrap();
        let user = User {
            id: UserId::generate(),
            username: Username::parse("alice").unwrap(),
            roles: vec![],
            enabled: true,
            created_at: T0,
        };
        store
            .create_user(&NewUser {
                user: user.clone(),
                password_hash: "unused".into(),
            })
            .await
            .unwrap();
        let family = NewFamily {
            id: FamilyId::generate(),
            user,
            created_at: T0,
            expires_at: T0.saturating_add(Duration::from_secs(86_400)),
            origin: SessionOrigin::default(),
        };
        store.start_family(&family, &token(1)).await.unwrap();
        (store, dir)
    }

    #[tokio::test]
    async fn one_token_twice_in_one_batch_has_one_winner_and_the_second_is_reuse() {
        let (store, _dir) = store_with_family().await;
        let jobs = [job(1, 2, Duration::ZERO), job(1, 3, Duration::ZERO)];
        let outcomes = rotate_batch(&mut connection(&store).await, &jobs)
            .await
            .unwrap();
        assert!(matches!(outcomes[0], Ok(Rotation::Rotated { .. })));
        assert!(matches!(outcomes[1], Ok(Rotation::ReuseDetected { .. })));
        // Reuse revoked the family, including the winner's successor.
        let after = rotate_batch(&mut connection(&store).await, &[job(2, 4, Duration::ZERO)])
            .await
            .unwrap();
        assert!(matches!(
            after[0],
            Ok(Rotation::Rejected(Rejection::FamilyRevoked))
        ));
    }

    #[tokio::test]
    async fn one_token_twice_in_one_batch_within_grace_returns_the_first_successor() {
        let (store, _dir) = store_with_family().await;
        let grace = Duration::from_secs(10);
        let jobs = [job(1, 2, grace), job(1, 3, grace)];
        let outcomes = rotate_batch(&mut connection(&store).await, &jobs)
            .await
            .unwrap();
        assert!(matches!(outcomes[0], Ok(Rotation::Rotated { .. })));
        match &outcomes[1] {
            Ok(Rotation::Replayed {
                sealed_successor, ..
            }) => assert_eq!(sealed_successor, &vec![2; 60]),
            other => panic!("expected the first successor back, got {other:?}"),
        }
        // The second presentation stored nothing: its would-be successor does not exist.
        let stray = rotate_batch(&mut connection(&store).await, &[job(3, 5, grace)])
            .await
            .unwrap();
        assert!(matches!(
            stray[0],
            Ok(Rotation::Rejected(Rejection::Unknown))
        ));
    }

    #[tokio::test]
    async fn a_chain_rotates_through_the_writer_and_concurrent_presentations_have_one_winner() {
        let (store, _dir) = store_with_family().await;
        let grace = Duration::ZERO;
        let rotate = |presented: u8, successor: u8| {
            let job = job(presented, successor, grace);
            let store = store.clone();
            async move {
                store
                    .rotate_refresh(
                        &job.presented,
                        &job.successor,
                        job.now,
                        &job.policy,
                        &job.origin,
                    )
                    .await
            }
        };
        for n in 1..10u8 {
            let rotation = rotate(n, n + 1).await.unwrap();
            assert!(
                matches!(rotation, Rotation::Rotated { .. }),
                "{n}: {rotation:?}"
            );
        }
        // Sixteen callers present the newest token at once (queued together, so most likely
        // in one batch): exactly one rotates it.
        let concurrent = futures::future::join_all((0..16).map(|_| rotate(10, 11))).await;
        let winners = concurrent
            .iter()
            .filter(|r| matches!(r, Ok(Rotation::Rotated { .. })))
            .count();
        assert_eq!(winners, 1, "{concurrent:?}");
    }

    async fn add_family(store: &SqliteStore, first: u8) {
        let user = store
            .find_user(&Username::parse("alice").unwrap())
            .await
            .unwrap()
            .unwrap();
        let family = NewFamily {
            id: FamilyId::generate(),
            user,
            created_at: T0,
            expires_at: T0.saturating_add(Duration::from_secs(86_400)),
            origin: SessionOrigin::default(),
        };
        store.start_family(&family, &token(first)).await.unwrap();
    }

    #[tokio::test]
    async fn one_batch_rotates_many_families_and_records_one_event_each() {
        let (store, _dir) = store_with_family().await;
        for first in [11, 21, 31] {
            add_family(&store, first).await;
        }
        // Four families, one unknown token in between: one round, every outcome in order.
        let jobs = [
            job(1, 2, Duration::ZERO),
            job(11, 12, Duration::ZERO),
            job(99, 100, Duration::ZERO),
            job(21, 22, Duration::ZERO),
            job(31, 32, Duration::ZERO),
        ];
        let outcomes = rotate_batch(&mut connection(&store).await, &jobs)
            .await
            .unwrap();
        let rotated = |i: usize| matches!(outcomes[i], Ok(Rotation::Rotated { .. }));
        assert!(
            rotated(0) && rotated(1) && rotated(3) && rotated(4),
            "{outcomes:?}"
        );
        assert!(matches!(
            outcomes[2],
            Ok(Rotation::Rejected(Rejection::Unknown))
        ));
        let events = store.audit_events(None, 100).await.unwrap();
        assert_eq!(events.len(), 4, "{events:?}");
        // Every successor was stored and rotates in turn; the presented tokens are used.
        let next = [job(2, 3, Duration::ZERO), job(12, 13, Duration::ZERO)];
        let outcomes = rotate_batch(&mut connection(&store).await, &next)
            .await
            .unwrap();
        assert!(
            outcomes
                .iter()
                .all(|o| matches!(o, Ok(Rotation::Rotated { .. })))
        );
    }

    #[tokio::test]
    async fn two_tokens_of_one_family_in_one_batch_see_each_others_writes() {
        let (store, _dir) = store_with_family().await;
        rotate_batch(&mut connection(&store).await, &[job(1, 2, Duration::ZERO)])
            .await
            .unwrap();
        // The old token is replayed (reuse: the family is revoked), then the newest token is
        // presented in the same batch: it must see the revocation, as if it came later.
        let jobs = [job(1, 5, Duration::ZERO), job(2, 3, Duration::ZERO)];
        let outcomes = rotate_batch(&mut connection(&store).await, &jobs)
            .await
            .unwrap();
        assert!(matches!(outcomes[0], Ok(Rotation::ReuseDetected { .. })));
        assert!(matches!(
            outcomes[1],
            Ok(Rotation::Rejected(Rejection::FamilyRevoked))
        ));
        let kinds: Vec<_> = store
            .audit_events(None, 100)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.kind.as_str())
            .collect();
        assert_eq!(
            kinds,
            [
                "token_refreshed",
                "refresh_reuse_detected",
                "family_revoked"
            ]
        );
    }

    #[tokio::test]
    async fn a_failed_write_rolls_the_whole_batch_back() {
        let (store, _dir) = store_with_family().await;
        add_family(&store, 11).await;
        // The second successor's hash is already a stored token: its insert fails, and with
        // it the batch, so the first rotation is not applied either.
        let jobs = [job(1, 2, Duration::ZERO), job(11, 1, Duration::ZERO)];
        assert!(
            rotate_batch(&mut connection(&store).await, &jobs)
                .await
                .is_err()
        );
        let again = rotate_batch(&mut connection(&store).await, &[job(1, 2, Duration::ZERO)])
            .await
            .unwrap();
        assert!(
            matches!(again[0], Ok(Rotation::Rotated { .. })),
            "{again:?}"
        );
        assert_eq!(store.audit_events(None, 100).await.unwrap().len(), 1);
    }
}
