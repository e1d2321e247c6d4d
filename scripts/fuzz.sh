#!/usr/bin/env bash
# Runs one fuzz target (or every one) for a while: scripts/fuzz.sh TARGET SECONDS, or
# scripts/fuzz.sh all SECONDS. Needs the nightly toolchain and cargo-fuzz
# (`cargo install cargo-fuzz --locked`). See FUZZING.md for the targets and past results.
#
# New inputs go to fuzz/target/corpus/TARGET (not checked in); the seeds in fuzz/corpus/TARGET
# are read, never written. A crash leaves its input in fuzz/artifacts/TARGET/ and fails the
# script; reproduce it with `cargo +nightly fuzz run -s none TARGET fuzz/artifacts/TARGET/FILE`.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

if [ $# -ne 2 ] || ! [[ "$2" =~ ^[0-9]+$ ]]; then
    echo "usage: scripts/fuzz.sh TARGET|all SECONDS" >&2
    exit 2
fi
target=$1
seconds=$2
export CARGO_INCREMENTAL=0

# No sanitizer: authd and its verifier forbid unsafe code, so AddressSanitizer would find
# nothing there, and the C underneath (aws-lc, SQLite) is not instrumented by cargo-fuzz
# anyway; without it a run makes several times more executions. Debug assertions and
# overflow checks stay on (cargo-fuzz's default).
fuzz=(cargo +nightly fuzz)
"${fuzz[@]}" build -s none >&2

if [ "$target" = all ]; then
    targets=$("${fuzz[@]}" list)
else
    targets=$target
fi

for t in $targets; do
    mkdir -p "target/corpus/$t" "corpus/$t"
    dict=()
    if [ -f "dicts/$t.dict" ]; then
        dict=("-dict=dicts/$t.dict")
    fi
    echo "== fuzz $t for ${seconds}s"
    # -max_total_time ends the run; -rss_limit_mb bounds memory on a shared machine. The
    # request targets keep a database that grows with every login and audit event, and
    # grpc_requests' RSS grew by about 140 MB a minute, so a long run needs a higher bound:
    # FUZZ_RSS_LIMIT_MB (default 1024).
    "${fuzz[@]}" run -s none "$t" "target/corpus/$t" "corpus/$t" -- \
        -max_total_time="$seconds" -rss_limit_mb="${FUZZ_RSS_LIMIT_MB:-1024}" \
        -print_final_stats=1 "${dict[@]}" 2>&1 |
        grep -v '^#[0-9]*\s*\(NEW\|REDUCE\)' || test "${PIPESTATUS[0]}" -eq 0
done
