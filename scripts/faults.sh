#!/usr/bin/env bash
# Runs the long versions of the fault-injection scenarios (tests/faults, issue 23) against the
# built authd binary and prints their figures ("[faults] ..." lines; RELIABILITY.md records
# them): 100 kill -9 restarts on SQLite and PostgreSQL, 5 disk-full rounds, 30 PostgreSQL
# cuts, 40 clock jumps, 30 s of slow disk.
#
#   scripts/faults.sh              # every scenario
#   scripts/faults.sh kill_9       # only those whose test name contains kill_9
#
# Needs root for the tmpfs mount and the blkio cgroup (the scenarios say why they skip
# otherwise), libfaketime (apt-get install faketime) for the clock jumps, and
# AUTHD_TEST_POSTGRES_URL for the PostgreSQL scenarios (set below to this machine's server
# unless already set).
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_INCREMENTAL=0
export AUTHD_FAULTS_LONG=1
export AUTHD_TEST_POSTGRES_URL=${AUTHD_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}
cargo test --test faults "${1:-}" -- --nocapture --test-threads=1 2>&1 \
    | grep -E '^\[faults\]|^test |skipping|test result'
