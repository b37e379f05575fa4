#!/bin/sh
# The PostgreSQL floor of a flash pair, beside axum-messages' statements, in one run:
#   messages-bench/floor/pg-floor.sh [SECONDS] [CLIENTS] [ROUNDS]
# Starts a fresh PostgreSQL (Debian's package; as the `postgres` user when run as root)
# on 127.0.0.1 with the load harness's settings (fsync and full-page writes off), makes
# schema.sql, then runs pgbench (prepared statements) on theirs.sql and floor.sql in
# turn, ROUNDS times, and prints pairs/s for each. See BENCHMARKS.md, "The SQL
# floors".
set -eu
seconds=${1:-8} clients=${2:-16} rounds=${3:-3}
here=$(cd "$(dirname "$0")" && pwd)
bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
dir=$(mktemp -d)
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
[ "$(id -u)" = 0 ] && chown postgres "$dir"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
as_pg "$bin/initdb" -D "$dir/data" -A trust -U postgres >/dev/null
as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/log" -w -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off -c max_connections=200" start >/dev/null
trap 'as_pg "$bin/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null; rm -rf "$dir"' EXIT
"$bin/psql" -q -X -h 127.0.0.1 -p "$port" -U postgres -f "$here/schema.sql" postgres
echo "$(nproc) cores, $clients clients, $seconds s a run; pairs/s:"
for round in $(seq "$rounds"); do
    for script in theirs floor; do
        tps=$("$bin/pgbench" -h 127.0.0.1 -p "$port" -U postgres -n -M prepared -c "$clients" -j 2 \
            -T "$seconds" -f "$here/$script.sql" postgres 2>&1 | sed -n 's/^tps = \([0-9.]*\).*/\1/p')
        echo "round $round  $script  $tps"
    done
done
