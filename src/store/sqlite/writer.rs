//! The rotation writer: the one thread that group-commits rotations (see [`super`]).
//!
//! It owns a synchronous SQLite connection (rusqlite, over the same SQLite library sqlx links)
//! on a thread of its own. A batch is one `BEGIN IMMEDIATE … COMMIT`; inside it each rotation is
//! read, decided with [`decide`] and written with prepared statements, one after the other, so
//! each sees the writes of those before it. The outcome is exactly that of applying the batch's
//! rotations in order, each in its own transaction, but with one fsync for all of them.
//!
//! Why not sqlx here: every sqlx statement is a round trip to the connection's own worker
//! thread and back to the async runtime. With the rotations of a batch on one thread, a
//! statement is a function call; the batch's only waits are for the disk (BENCHMARKS.md, third
//! session, "What changed this session").
//!
//! Checkpoints (copying the WAL back into the database file) mostly happen off the writer's
//! path: a second thread, the checkpointer, runs a passive checkpoint on its own connection
//! every [`CHECKPOINT_EVERY`] rotations, while the writer goes on. A passive checkpoint never
//! blocks the writer, but under constant load it never quite catches up either, and SQLite only
//! starts the WAL over once one has; so the writer keeps SQLite's automatic checkpoint too, at
//! a high threshold, and when it fires it has only the checkpointer's last few frames to copy.
//! The WAL then cycles up to that threshold (64 MiB) instead of growing without bound.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread;
use std::time::Instant;

use rusqlite::{Connection, OpenFlags, TransactionBehavior, params};
use tokio::sync::mpsc;

use super::audit::INSERT_AUDIT_EVENT;
use super::sessions::PRESENTED_TOKEN_SQL;
use super::{
    BUSY_TIMEOUT, MAX_ROTATION_BATCH, ROTATION_QUEUE, WAL_AUTOCHECKPOINT_PAGES, WRITER_CACHE_SIZE,
};
use crate::domain::{
    AuditEvent, Decision, FamilyId, PresentedToken, Rejection, Rotation, Timestamp, TokenHash,
    decide,
};
use crate::store::rotation_queue::{Request, RotationJob, RotationQueue};
use crate::store::sql::{DROP_SEALED_COPIES, INSERT_USED_TOKEN, REVOKE_FAMILY};
use crate::store::{StoreError, rows, unavailable};

/// Opens the writer's connection to the (migrated) database at `path`, starts its thread and
/// returns its queue; the thread stops when the queue is closed or the last handle to it is
/// dropped.
///
/// # Errors
/// When the database cannot be opened or the thread cannot be started.
pub(super) fn spawn(path: PathBuf) -> Result<RotationQueue, StoreError> {
    let connection = open(&path, WRITER_CACHE_SIZE)?;
    let checkpointer = open(&path, CHECKPOINTER_CACHE_SIZE)?;
    let (checkpoints, asked) = sync_channel(1);
    let (handle, queue) = RotationQueue::new(ROTATION_QUEUE);
    let checkpointer = thread::Builder::new()
        .name("authd-checkpoint".into())
        .spawn(move || checkpoint_when_asked(checkpointer, &asked))
        .map_err(unavailable)?;
    let checkpointer = Checkpointer {
        asks: checkpoints,
        thread: checkpointer,
    };
    thread::Builder::new()
        .name("authd-rotations".into())
        .spawn(move || write_rotations(&path, connection, queue, checkpointer))
        .map_err(unavailable)?;
    Ok(handle)
}

/// The writer's end of the checkpointer thread.
struct Checkpointer {
    asks: SyncSender<()>,
    thread: thread::JoinHandle<()>,
}

impl Checkpointer {
    /// Stops the thread (it finishes a checkpoint it is running) and closes its connection.
    fn stop(self) {
        drop(self.asks);
        let _ = self.thread.join();
    }
}

/// Rotations after which the writer asks the checkpointer for a checkpoint (about 1,000 WAL
/// pages, SQLite's default threshold). Measured at 64 chains (BENCHMARKS.md): every 256
/// rotations, 11.9–12.2k refreshes/s and p99 13–14 ms; every 1,024, 12.6–13.1k/s but p99 22 ms
/// (the writer's own checkpoint has more left to copy); none (the writer alone, at the high
/// threshold), 11.8–12.8k/s, p99 29–30 ms.
const CHECKPOINT_EVERY: usize = 256;
/// Above this, the WAL file is truncated back when the writer restarts it after a checkpoint.
const WAL_SIZE_LIMIT: i64 = 64 * 1024 * 1024;
/// The checkpointer reads the WAL directly, not through its page cache: a small one will do.
const CHECKPOINTER_CACHE_SIZE: i32 = -256;

/// A connection with the settings of the pool's (`synchronous=FULL` in WAL mode: a committed
/// rotation is on disk; automatic checkpoints only past [`WAL_AUTOCHECKPOINT_PAGES`]) and a page
/// cache of `cache_size` (KiB when negative). The writer's is bigger than the default 2 MiB:
/// tokens are keyed by random hashes, so each rotation touches random pages. The connection does
/// every rotation, so its cache stays warm (SQLite discards a connection's cache whenever
/// another connection has written).
fn open(path: &Path, cache_size: i32) -> Result<Connection, StoreError> {
    let connection = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(unavailable)?;
    let mode = configure(&connection, cache_size).map_err(unavailable)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Unavailable(
            format!("the database's journal mode is {mode}, not WAL").into(),
        ));
    }
    Ok(connection)
}

/// Applies the settings of [`open`]; returns the journal mode the database is in.
fn configure(connection: &Connection, cache_size: i32) -> rusqlite::Result<String> {
    connection.busy_timeout(BUSY_TIMEOUT)?;
    connection.pragma_update(None, "synchronous", "FULL")?;
    connection.pragma_update(None, "foreign_keys", true)?;
    connection.pragma_update(None, "cache_size", cache_size)?;
    connection.pragma_update(None, "wal_autocheckpoint", WAL_AUTOCHECKPOINT_PAGES)?;
    connection.pragma_update(None, "journal_size_limit", WAL_SIZE_LIMIT)?;
    connection.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
}

/// The checkpointer thread: a passive checkpoint each time the writer asks (it never waits for
/// the writer or readers; what it cannot copy yet, the next one will). It stops with the writer.
fn checkpoint_when_asked(connection: Connection, asked: &Receiver<()>) {
    while asked.recv().is_ok() {
        let started = Instant::now();
        match connection.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
            Ok((row.get::<_, i64>(1)?, row.get::<_, i64>(2)?))
        }) {
            Ok((wal_pages, copied)) => tracing::debug!(
                wal_pages,
                copied,
                elapsed_ms = started.elapsed().as_millis(),
                "WAL checkpoint"
            ),
            Err(e) => tracing::warn!(error = %e, "WAL checkpoint failed; the next one retries"),
        }
    }
    close(connection);
}

fn close(connection: Connection) {
    if let Err((_, e)) = connection.close() {
        tracing::warn!(error = %e, "closing a SQLite connection failed");
    }
}

/// The writer thread: takes every queued rotation (up to [`MAX_ROTATION_BATCH`]), applies them
/// in one transaction, and answers each caller only after the commit. After a failed batch it
/// reopens its connection. Every [`CHECKPOINT_EVERY`] rotations it asks for a checkpoint (if
/// one is running, it asks again after the next batch).
fn write_rotations(
    path: &Path,
    connection: Connection,
    mut queue: mpsc::Receiver<Request>,
    checkpointer: Checkpointer,
) {
    let mut connection = Some(connection);
    let mut requests = Vec::with_capacity(MAX_ROTATION_BATCH);
    let mut since_checkpoint = 0;
    let mut closed = None;
    while closed.is_none() && queue.blocking_recv_many(&mut requests, MAX_ROTATION_BATCH) > 0 {
        let mut jobs = Vec::with_capacity(requests.len());
        let mut replies = Vec::with_capacity(requests.len());
        for request in requests.drain(..) {
            match request {
                // Rotations behind a close are dropped: their callers see a stopped writer.
                Request::Rotate(..) if closed.is_some() => {}
                Request::Rotate(job, reply) => {
                    jobs.push(job);
                    replies.push(reply);
                }
                Request::Close(done) => closed = Some(done),
            }
        }
        if jobs.is_empty() {
            continue;
        }
        since_checkpoint += jobs.len();
        if since_checkpoint >= CHECKPOINT_EVERY && checkpointer.asks.try_send(()).is_ok() {
            since_checkpoint = 0;
        }
        let outcome = match connection.as_mut() {
            Some(conn) => rotate_batch(conn, &jobs),
            None => open(path, WRITER_CACHE_SIZE)
                .and_then(|conn| rotate_batch(connection.insert(conn), &jobs)),
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
    checkpointer.stop();
    if let Some(connection) = connection {
        close(connection);
    }
    if let Some(done) = closed {
        let _ = done.send(());
    }
}

/// Applies `jobs` in order in one transaction. A rotation whose stored state cannot be decoded
/// fails alone (nothing of it is written); a failed statement or commit fails the whole batch,
/// which is rolled back (the transaction is dropped uncommitted).
fn rotate_batch(
    connection: &mut Connection,
    jobs: &[RotationJob],
) -> Result<Vec<Result<Rotation, StoreError>>, StoreError> {
    let started = Instant::now();
    let tx = connection
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(unavailable)?;
    let outcomes = jobs
        .iter()
        .map(|job| rotate_one(&tx, job))
        .collect::<Result<Vec<_>, _>>()?;
    let written = Instant::now();
    tx.commit().map_err(unavailable)?;
    crate::metrics::rotation_batch(jobs.len(), written - started, written.elapsed());
    Ok(outcomes)
}

/// Reads, decides and writes one rotation, with its audit events. The outer error fails the
/// batch; the inner one only this rotation.
fn rotate_one(
    tx: &Connection,
    job: &RotationJob,
) -> Result<Result<Rotation, StoreError>, StoreError> {
    let (state, family_seq) = match load_state(tx, &job.presented)? {
        Some(Ok(state)) => state,
        Some(Err(e)) => return Ok(Err(e)),
        None => return Ok(Ok(Rotation::Rejected(Rejection::Unknown))),
    };
    let PresentedToken {
        user, family_id, ..
    } = &state;
    let rotation = match decide(&state, job.now, &job.policy) {
        Decision::Reject(why) => Rotation::Rejected(why),
        Decision::ReturnSuccessor(sealed_successor) => Rotation::Replayed {
            user: user.clone(),
            family_id: family_id.clone(),
            sealed_successor,
        },
        Decision::RevokeFamily => {
            revoke_family(tx, family_id, job.now)?;
            Rotation::ReuseDetected {
                user: user.clone(),
                family_id: family_id.clone(),
            }
        }
        Decision::Rotate => {
            rotate_token(tx, job, family_seq)?;
            Rotation::Rotated {
                user: user.clone(),
                family_id: family_id.clone(),
            }
        }
    };
    for event in rotation.audit_events(job.now, &job.origin) {
        insert_audit(tx, &event)?;
    }
    Ok(Ok(rotation))
}

/// A presented token's stored state and its family's key (`seq`).
type Loaded = (PresentedToken, i64);

/// The stored state of the presented token, with its family's key, if it exists: the
/// family's newest token by its whole key, or a used one by [`rows::used_key`].
fn load_state(
    tx: &Connection,
    presented: &TokenHash,
) -> Result<Option<Result<Loaded, StoreError>>, StoreError> {
    let mut statement = tx
        .prepare_cached(PRESENTED_TOKEN_SQL)
        .map_err(unavailable)?;
    let mut found = statement
        .query(params![&presented.0[..], rows::used_key(presented)])
        .map_err(unavailable)?;
    Ok(found.next().map_err(unavailable)?.map(|row| {
        let state = rows::presented(row)?;
        Ok((state, rows::family_seq(row)?))
    }))
}

/// Retires the presented token (its row goes; what reuse detection needs of it is kept in
/// `used_refresh_tokens`) and stores the successor as the family's newest token, with its
/// copy sealed under a key derived from the presented token and the presented token's key
/// prefix: only the immediately previous token may use the grace window, and that is now the
/// presented one, whose own sealed copy goes with its row.
fn rotate_token(tx: &Connection, job: &RotationJob, family: i64) -> Result<(), StoreError> {
    let next = &job.successor.token;
    let retired = tx
        .prepare_cached("DELETE FROM refresh_tokens WHERE hash = ?1")
        .and_then(|mut s| s.execute([&job.presented.0[..]]))
        .map_err(unavailable)?;
    // The write lock is held since BEGIN IMMEDIATE and the token was read unused in this
    // transaction; checking keeps the guarantee even if that ever changes.
    if retired != 1 {
        return Err(StoreError::Unavailable("concurrent rotation".into()));
    }
    tx.prepare_cached(INSERT_USED_TOKEN)
        .and_then(|mut s| s.execute(params![rows::used_key(&job.presented), family]))
        .map_err(unavailable)?;
    tx.prepare_cached(
        "INSERT INTO refresh_tokens \
             (hash, family, issued_at, expires_at, predecessor, sealed_by_predecessor) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )
    .and_then(|mut s| {
        s.execute(params![
            &next.hash.0[..],
            family,
            next.issued_at.unix_millis(),
            next.expires_at.unix_millis(),
            rows::used_key(&job.presented),
            &job.successor.sealed,
        ])
    })
    .map_err(unavailable)?;
    Ok(())
}

/// Revokes the family whose token was reused, and drops its sealed copies (now useless).
fn revoke_family(tx: &Connection, family: &FamilyId, now: Timestamp) -> Result<(), StoreError> {
    tx.prepare_cached(REVOKE_FAMILY)
        .and_then(|mut s| {
            s.execute(params![
                now.unix_millis(),
                "refresh token reuse",
                family.as_str()
            ])
        })
        .map_err(unavailable)?;
    tx.prepare_cached(DROP_SEALED_COPIES)
        .and_then(|mut s| s.execute([family.as_str()]))
        .map_err(unavailable)?;
    Ok(())
}

fn insert_audit(tx: &Connection, e: &AuditEvent) -> Result<(), StoreError> {
    tx.prepare_cached(INSERT_AUDIT_EVENT)
        .and_then(|mut s| {
            s.execute(params![
                e.time.unix_millis(),
                e.kind.as_str(),
                e.user_id,
                e.username,
                e.source,
                e.request_id,
                e.detail,
            ])
        })
        .map_err(unavailable)?;
    Ok(())
}

#[cfg(test)]
mod tests;
