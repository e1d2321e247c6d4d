//! The queue in front of a backend's rotation writer: callers queue a [`RotationJob`] and wait
//! for its outcome; the writer (SQLite's thread, PostgreSQL's batcher task) takes what has
//! arrived, applies it as one transaction, and answers each caller after the commit.

use tokio::sync::{mpsc, oneshot};

use crate::domain::{Origin, RefreshPolicy, Rotation, Successor, Timestamp, TokenHash};
use crate::store::StoreError;

/// One rotation, as a backend's rotation writer queues it
/// ([`super::SessionStore::rotate_refresh`]'s arguments, owned).
pub(crate) struct RotationJob {
    pub(crate) presented: TokenHash,
    pub(crate) successor: Successor,
    pub(crate) now: Timestamp,
    pub(crate) policy: RefreshPolicy,
    pub(crate) origin: Origin,
}

/// Where a writer sends a rotation's outcome.
pub(crate) type RotationReply = oneshot::Sender<Result<Rotation, StoreError>>;

/// What a writer is asked.
#[allow(clippy::large_enum_variant)] // nearly every request is a rotation: boxing would allocate each
pub(crate) enum Request {
    Rotate(RotationJob, RotationReply),
    /// Apply the rotations queued before, release the writer's connections, answer, and stop.
    /// Rotations queued after it are refused.
    Close(oneshot::Sender<()>),
}

/// The callers' end of the queue.
#[derive(Debug, Clone)]
pub(crate) struct RotationQueue {
    requests: mpsc::Sender<Request>,
}

impl RotationQueue {
    /// A queue of at most `capacity` waiting requests (callers beyond it wait to queue), and
    /// the end the writer takes them from.
    pub(crate) fn new(capacity: usize) -> (Self, mpsc::Receiver<Request>) {
        let (requests, queue) = mpsc::channel(capacity);
        (Self { requests }, queue)
    }

    /// Queues a rotation and waits until the batch holding it is committed (or failed).
    pub(crate) async fn rotate(&self, job: RotationJob) -> Result<Rotation, StoreError> {
        let _waiting = Waiting::start();
        let (reply, answer) = oneshot::channel();
        let gone = || StoreError::Unavailable("the rotation writer has stopped".into());
        self.requests
            .send(Request::Rotate(job, reply))
            .await
            .map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }

    /// Has the rotations queued so far applied, then stops the writer. Returns at once if it
    /// has already stopped.
    pub(crate) async fn close(&self) {
        let (done, closed) = oneshot::channel();
        if self.requests.send(Request::Close(done)).await.is_ok() {
            let _ = closed.await;
        }
    }
}

/// Counts a caller in `authd_rotations_waiting` from the moment it queues until it has its
/// answer or gives up (its future dropped), so the gauge shows how far the queue has grown.
struct Waiting;

impl Waiting {
    fn start() -> Self {
        crate::metrics::rotations_waiting(1.0);
        Self
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        crate::metrics::rotations_waiting(-1.0);
    }
}

impl RotationJob {
    /// [`super::SessionStore::rotate_refresh`]'s arguments, owned for the queue.
    pub(crate) fn new(
        presented: &TokenHash,
        successor: &Successor,
        now: Timestamp,
        policy: &RefreshPolicy,
        origin: &Origin,
    ) -> Self {
        Self {
            presented: *presented,
            successor: successor.clone(),
            now,
            policy: *policy,
            origin: origin.clone(),
        }
    }
}
