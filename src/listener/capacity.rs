//! How many connections the process can hold: the open-file limit, raised at start, and the
//! part of it left to clients once the rest of the process has its headroom.
//!
//! Every connection is a file descriptor, and so is everything else the process opens: the
//! database (SQLite's file, WAL and shared memory per pooled connection, plus the rotation
//! writer's and checkpointer's; one socket per PostgreSQL connection), the TLS files when they
//! are re-read, the runtime's epoll and eventfd, standard streams. [`reserved_descriptors`]
//! keeps that headroom out of what the listeners may accept, so clients holding every
//! connection they are allowed never leave the database without a descriptor.

use rlimit::Resource;

/// Below this soft limit after raising it, authd warns at start.
pub const LOW_FILE_LIMIT: u64 = 4096;
/// The largest default `max_connections`, whatever the file limit: with the usual hard limits
/// (524,288 under systemd) the default would otherwise be far beyond what memory allows.
pub const DEFAULT_MAX_CONNECTIONS_CEILING: usize = 16_384;
/// The default `max_connections_per_source` is this fraction of `max_connections`.
pub const DEFAULT_SOURCE_SHARE: usize = 8;
/// Listeners sharing the descriptors left for clients: gRPC and the HTTP side port.
const LISTENERS: u64 = 2;

/// The open-file limit before and after [`raise_file_limit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileLimit {
    pub before: u64,
    /// The soft limit now in force.
    pub soft: u64,
    pub hard: u64,
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit, the most an unprivileged process may
/// take (systemd's default soft limit is 1,024; its hard limit 524,288). `None` when the limit
/// cannot be read at all.
pub fn raise_file_limit() -> Option<FileLimit> {
    let (before, hard) = Resource::NOFILE.get().ok()?;
    let soft = match rlimit::increase_nofile_limit(hard) {
        Ok(soft) => soft,
        Err(e) => {
            tracing::warn!(error = %e, "cannot raise the open-file limit");
            before
        }
    };
    Some(FileLimit { before, soft, hard })
}

/// Descriptors kept for everything but client connections: a fixed share for the runtime,
/// logs, TLS files and the SQLite writer, plus four per database connection (SQLite opens
/// the database, its WAL and shared-memory file per connection; PostgreSQL one socket).
pub fn reserved_descriptors(database_max_connections: u32) -> u64 {
    64 + 4 * u64::from(database_max_connections)
}

/// The default `max_connections` of each listener: the descriptors left after the reserve,
/// shared by both listeners, at least 1 and at most [`DEFAULT_MAX_CONNECTIONS_CEILING`].
pub fn default_max_connections(file_limit: u64, reserved: u64) -> usize {
    let per_listener = file_limit.saturating_sub(reserved) / LISTENERS;
    usize::try_from(per_listener)
        .unwrap_or(usize::MAX)
        .clamp(1, DEFAULT_MAX_CONNECTIONS_CEILING)
}

/// The default `max_connections_per_source`: an eighth of `max_connections`, at least 1.
pub fn default_max_per_source(max_connections: usize) -> usize {
    (max_connections / DEFAULT_SOURCE_SHARE).max(1)
}

/// Whether `max_connections` per listener, with the reserve, fits in the file limit.
pub fn fits(file_limit: u64, reserved: u64, max_connections: usize) -> bool {
    let needed = u64::try_from(max_connections)
        .unwrap_or(u64::MAX)
        .saturating_mul(LISTENERS)
        .saturating_add(reserved);
    needed <= file_limit
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_systemd_default_limit_leaves_room_for_the_database() {
        let reserved = reserved_descriptors(10);
        assert_eq!(reserved, 104);
        let max = default_max_connections(1024, reserved);
        assert_eq!(max, 460);
        assert!(fits(1024, reserved, max));
        assert!(!fits(1024, reserved, max + 1));
        assert_eq!(default_max_per_source(max), 57);
    }

    #[test]
    fn defaults_stay_within_bounds() {
        assert_eq!(default_max_connections(10, 104), 1);
        assert_eq!(default_max_per_source(1), 1);
        assert_eq!(
            default_max_connections(1 << 20, 104),
            DEFAULT_MAX_CONNECTIONS_CEILING
        );
    }

    #[test]
    fn raising_reaches_the_hard_limit() {
        let limit = raise_file_limit().unwrap();
        assert!(limit.soft >= limit.before);
        assert_eq!(Resource::NOFILE.get().unwrap().0, limit.soft);
    }
}
