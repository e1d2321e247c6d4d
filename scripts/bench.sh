#!/usr/bin/env bash
# Runs every end-to-end benchmark of BENCHMARKS.md against a fresh release server on a fresh
# database in a temporary directory, and prints one JSON object per line (machine facts first).
#
#   scripts/bench.sh                 # 10 s per scenario, concurrency 64
#   DURATION=30s scripts/bench.sh    # longer runs
#   SWEEP=1,8,64 scripts/bench.sh    # the concurrencies of the sweeps (benchmarks/sweep-*.svg)
#   BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/authd_bench scripts/bench.sh
#                                    # on PostgreSQL: an empty database, which the run fills
#
# The server and the load generator read the same configuration (AUTHD_* variables), so
# AUTHD_ARGON2_MEMORY_KIB etc. apply to both. Everything runs on this machine (loopback only).
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10s}
CONCURRENCY=${CONCURRENCY:-64}
LOGIN_CONCURRENCY=${LOGIN_CONCURRENCY:-16}
PASSWORD='correct horse battery staple'

cargo build --release --quiet
authd=$PWD/target/release/authd
dir=$(mktemp -d)
server=""
cleanup() {
    if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
    rm -rf "$dir"
}
trap cleanup EXIT
export AUTHD_DATABASE_URL="${BENCH_DATABASE_URL:-sqlite://$dir/authd.db}"
# The load comes from one address and logs one user in from many workers at once: the
# per-source limit and the per-username throttle would measure themselves, not authd.
export AUTHD_HTTP_ADDR=127.0.0.1:0
export AUTHD_MANAGEMENT_ADDR=127.0.0.1:0
export AUTHD_PER_SOURCE_RATE=0
export AUTHD_THROTTLE_FREE_FAILURES=1000000

printf '{"scenario":"machine","database":"%s","nproc":%s,"cpu":"%s","mem_total_kib":%s,"load_average":"%s"}\n' \
    "${AUTHD_DATABASE_URL%%:*}" "$(nproc)" "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')" \
    "$(awk '/MemTotal/ {print $2}' /proc/meminfo)" "$(cut -d' ' -f1-3 /proc/loadavg)"

printf '%s\n' "$PASSWORD" | "$authd" user add bench --password-stdin >/dev/null

start_server() {
    "$authd" serve --grpc-addr 127.0.0.1:0 2>"$dir/serve.log" &
    server=$!
    for _ in $(seq 1 300); do
        addr=$(sed -n 's/.*grpc_addr=\([0-9.:]*\).*/\1/p' "$dir/serve.log" | head -1)
        http_addr=$(sed -n 's/.*http_addr=\([0-9.:]*\).*/\1/p' "$dir/serve.log" | head -1)
        [ -n "$addr" ] && return 0
        sleep 0.05
    done
    echo "the server did not start" >&2
    exit 1
}

stop_server() {
    kill "$server"
    wait "$server" 2>/dev/null || true
    server=""
}

start_server
sleep 1
printf '{"scenario":"idle","server_rss_kib":%s}\n' "$(awk '/VmRSS/ {print $2}' "/proc/$server/status")"

load() { # scenario concurrency duration [extra args...]
    local scenario=$1 concurrency=$2 duration=$3
    shift 3
    printf '%s\n' "$PASSWORD" | "$authd" bench "$scenario" --addr "$addr" \
        --concurrency "$concurrency" --duration "$duration" --pid "$server" \
        --user bench --password-stdin --json "$@"
}

load noop "$CONCURRENCY" "$DURATION"
mkdir -p benchmarks
db=${AUTHD_DATABASE_URL%%:*}
load refresh "$CONCURRENCY" "$DURATION" --memory-svg "benchmarks/memory-refresh-$db.svg"
# The same refresh chains over gRPC and then over the HTTP/JSON routes, and HTTP's share of
# gRPC's requests/s (issue 17's target: at least 0.8).
load refresh "$CONCURRENCY" "$DURATION" --protocol both --http-addr "$http_addr"
# Logins spread over 1,000 distinct users (bench-0 … bench-999, created on first use), so the
# per-username throttle's counter is not one hot row contended by every worker.
load mixed "$CONCURRENCY" "$DURATION" --users 1000
load login "$LOGIN_CONCURRENCY" "$DURATION" --users 1000
# Memory under a flood: 1,000 logins of 1,000 users in flight at once (one request each).
load login 1000 120s --requests 1000 --users 1000

# Throughput and latency against concurrency, one run per level, drawn as SVG into
# benchmarks/ (next to BENCHMARKS.md, which shows them).
SWEEP=${SWEEP:-1,4,16,64,256}
SWEEP_DURATION=${SWEEP_DURATION:-5s}
for scenario in noop refresh; do
    printf '%s\n' "$PASSWORD" | "$authd" bench "$scenario" --addr "$addr" --sweep "$SWEEP" \
        --duration "$SWEEP_DURATION" --pid "$server" --user bench --password-stdin --json \
        --svg "benchmarks/sweep-$scenario-$db.svg"
done

stop_server
# Time from process start to the first answer, on the now existing database.
"$authd" bench startup --runs 20 --json
