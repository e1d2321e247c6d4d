#!/usr/bin/env bash
# Starts a throwaway PostgreSQL cluster with the server's stock settings (autovacuum on, as a
# fresh installation has it) on PORT (default 55432), for measurements that depend on them
# (BENCHMARKS.md, "Storage per refresh"): the shared test server may be configured otherwise.
#
#   scripts/pg-defaults.sh start   # prints the URL of its database `authd_bench`
#   scripts/pg-defaults.sh stop    # stops it and deletes its files
#
# Needs PostgreSQL's server binaries (Debian: postgresql) and, when run as root, the `postgres`
# user to own the cluster.
set -euo pipefail
PORT=${PORT:-55432}
DATA=${PGDEFAULTS_DIR:-/tmp/authd-pg-defaults}
bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
as_postgres() {
    if [ "$(id -u)" = 0 ]; then su postgres -s /bin/sh -c "$*"; else sh -c "$*"; fi
}
case "${1:-}" in
start)
    rm -rf "$DATA"
    mkdir -p "$DATA"
    [ "$(id -u)" = 0 ] && chown postgres "$DATA"
    as_postgres "$bin/initdb -D $DATA/data -U postgres --auth=trust >/dev/null"
    as_postgres "$bin/pg_ctl -D $DATA/data -o '-p $PORT -k $DATA -c listen_addresses=127.0.0.1' -l $DATA/log -w start >/dev/null"
    as_postgres "$bin/psql -h 127.0.0.1 -p $PORT -U postgres -qc 'CREATE DATABASE authd_bench' postgres"
    echo "postgres://postgres@127.0.0.1:$PORT/authd_bench"
    ;;
stop)
    as_postgres "$bin/pg_ctl -D $DATA/data -m fast -w stop >/dev/null" || true
    rm -rf "$DATA"
    ;;
*)
    echo "usage: scripts/pg-defaults.sh start|stop" >&2
    exit 2
    ;;
esac
