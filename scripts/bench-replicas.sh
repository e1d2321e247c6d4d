#!/usr/bin/env bash
# Refreshes/s with 1, 2 and 3 `authd serve` replicas on one PostgreSQL database (issue 21),
# each replica driven by its own load generator at CONCURRENCY/N chains, so the total load in
# flight is the same for every N. Prints one JSON object per N: the summed refreshes/s, and the
# CPU each refresh cost the replicas (together) and PostgreSQL (every backend of the cluster),
# read from /proc before and after the run, so the figures can be projected onto machines where
# each replica and the database have cores of their own (see BENCHMARKS.md).
#
#   BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/authd_bench scripts/bench-replicas.sh
#
# The database is emptied first (every table of the schema authd creates is dropped).
set -euo pipefail
cd "$(dirname "$0")/.."

: "${BENCH_DATABASE_URL:?set BENCH_DATABASE_URL to an empty PostgreSQL database}"
DURATION=${DURATION:-10s}
CONCURRENCY=${CONCURRENCY:-64}
REPLICAS=${REPLICAS:-1 2 3}
PASSWORD='correct horse battery staple'

[ -n "${AUTHD_BIN:-}" ] || cargo build --release --quiet
authd=${AUTHD_BIN:-$PWD/target/release/authd}
dir=$(mktemp -d)
servers=()
cleanup() {
    for pid in "${servers[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$dir"
}
trap cleanup EXIT
export AUTHD_DATABASE_URL=$BENCH_DATABASE_URL
export AUTHD_HTTP_ADDR=127.0.0.1:0 AUTHD_MANAGEMENT_ADDR=127.0.0.1:0
export AUTHD_PER_SOURCE_RATE=0 AUTHD_THROTTLE_FREE_FAILURES=1000000

psql "$BENCH_DATABASE_URL" -q -c "DROP SCHEMA public CASCADE; CREATE SCHEMA public;" >/dev/null
printf '%s\n' "$PASSWORD" | "$authd" user add bench --password-stdin >/dev/null

# CPU ticks (user + system) of the given processes.
ticks() {
    local total=0 pid fields
    for pid in "$@"; do
        [ -r "/proc/$pid/stat" ] || continue
        fields=$(sed 's/.*) //' "/proc/$pid/stat")
        total=$((total + $(echo "$fields" | awk '{print $12 + $13}')))
    done
    echo "$total"
}
postgres_pids() { pgrep -d ' ' -x postgres || pgrep -d ' ' postgres; }
hz=$(getconf CLK_TCK)

for n in $REPLICAS; do
    servers=()
    addrs=()
    for i in $(seq 1 "$n"); do
        "$authd" serve --grpc-addr 127.0.0.1:0 2>"$dir/serve-$n-$i.log" &
        servers+=($!)
        for _ in $(seq 1 300); do
            addr=$(sed -n 's/.*grpc_addr=\([0-9.:]*\).*/\1/p' "$dir/serve-$n-$i.log" | head -1)
            [ -n "$addr" ] && break
            sleep 0.05
        done
        [ -n "$addr" ] || { echo "replica $i did not start" >&2; exit 1; }
        addrs+=("$addr")
    done
    sleep 1
    pg_before=$(ticks $(postgres_pids))
    authd_before=$(ticks "${servers[@]}")
    gens=()
    for i in $(seq 1 "$n"); do
        printf '%s\n' "$PASSWORD" | "$authd" bench refresh --addr "${addrs[$((i - 1))]}" \
            --concurrency $((CONCURRENCY / n)) --duration "$DURATION" --user bench \
            --password-stdin --json >"$dir/gen-$n-$i.json" &
        gens+=($!)
    done
    wait "${gens[@]}" || { for f in "$dir"/serve-"$n"-*.log; do tail -n 5 "$f" >&2; done; exit 1; }
    pg_after=$(ticks $(postgres_pids))
    authd_after=$(ticks "${servers[@]}")
    python3 - "$n" "$hz" "$((pg_after - pg_before))" "$((authd_after - authd_before))" "$dir"/gen-"$n"-*.json <<'PY'
import json, sys
n, hz, pg, authd = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
runs = [json.load(open(f)) for f in sys.argv[5:]]
requests = sum(r["requests"] for r in runs)
elapsed = max(r["elapsed_s"] for r in runs)
print(json.dumps({
    "scenario": "replicas", "replicas": n, "refresh_rps": round(requests / elapsed, 1),
    "errors": sum(r["errors"] for r in runs),
    "p99_ms_max": max(r["p99_ms"] for r in runs),
    "authd_cpu_us_per_refresh": round(authd / hz * 1e6 / requests, 1),
    "postgres_cpu_us_per_refresh": round(pg / hz * 1e6 / requests, 1),
}))
PY
    for pid in "${servers[@]}"; do kill "$pid"; wait "$pid" 2>/dev/null || true; done
    servers=()
done
