//! Fault injection (issue 23): scripted, bounded, repeatable scenarios against the built
//! `authd` binary, each ending with an invariant check of its database (`invariants`).
//! One module per fault: `kill` (kill -9 under load), `disk_full` (SQLite on a small tmpfs),
//! `pg_cut` (PostgreSQL connections cut mid-transaction), `clock` (wall-clock jumps under
//! faketime), `slow_disk` (fsync throttled by a blkio cgroup).
//!
//! `cargo test --test faults -- --nocapture` runs the short versions and prints their figures;
//! `scripts/faults.sh` runs the long ones (`AUTHD_FAULTS_LONG=1`). PostgreSQL scenarios skip
//! with a printed reason without `AUTHD_TEST_POSTGRES_URL`; the others skip with a reason when
//! the machine cannot make the fault (no root for mount or cgroups, no faketime).

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on the unexpected

#[path = "../support/binary.rs"]
mod binary;
#[path = "../support/postgres.rs"]
mod pg;
#[path = "../support/proxy.rs"]
mod proxy;

mod clock;
mod disk_full;
mod harness;
mod invariants;
mod kill;
mod pg_cut;
mod slow_disk;
