#!/usr/bin/env bash
# Serves the axum example (messages-example) and the actix-web example
# (messages-example-actix) side by side on each store, plays the same requests to both —
# every route of the contract (see the docs of messages-example-shared), HEAD, other
# methods, unknown paths, bad input, a hostile cookie, the background job — and diffs the
# answers: status line, headers (sorted, without `date`) and body.
#
# Masked before the diff, since they differ on every run: session keys and signed cookie
# values, cookie expiry dates, message ids, `created_at`. Masked since they differ by design: `file` and `line`
# in `GET /views` (each app's own source), and that response's content-length.
#
# Usage: examples/compare.sh [store...]
#   stores: memory cookie fallback sqlite redis fallback-redis postgres
#   (default: memory cookie fallback sqlite, the Redis ones when redis-server is installed,
#   postgres when PostgreSQL is, in /usr/lib/postgresql/*/bin)
# Env: AXUM_PORT (3901), ACTIX_PORT (3902), REDIS_PORT (6390), PG_PORT (6391), OUT
# (target/compare: the transcripts); AXUM_BIN, ACTIX_BIN: other binaries to compare (an
# older build, say).
# Exit status: 0 when every store gives identical transcripts.
set -euo pipefail

cd "$(dirname "$0")/.."
AXUM_PORT=${AXUM_PORT:-3901}
ACTIX_PORT=${ACTIX_PORT:-3902}
REDIS_PORT=${REDIS_PORT:-6390}
PG_PORT=${PG_PORT:-6391}
OUT=${OUT:-target/compare}
KEY="the signing key of compare.sh: at least 32 bytes long"

# The newest PostgreSQL of Debian's packages, if any.
pg_bin() { ls -d /usr/lib/postgresql/*/bin 2> /dev/null | sort -V | tail -n 1; }

if [ $# -gt 0 ]; then
    STORES=("$@")
else
    STORES=(memory cookie fallback sqlite)
    if command -v redis-server > /dev/null; then STORES+=(redis fallback-redis); fi
    if [ -n "$(pg_bin)" ]; then STORES+=(postgres); fi
fi

export CARGO_INCREMENTAL=0 CARGO_PROFILE_DEV_DEBUG=0 CARGO_PROFILE_TEST_DEBUG=0
cargo build --quiet --locked --all-features -p messages-example -p messages-example-actix
BIN=$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')/debug
AXUM_BIN=${AXUM_BIN:-$BIN/messages-example}
ACTIX_BIN=${ACTIX_BIN:-$BIN/messages-example-actix}

mkdir -p "$OUT"
OUT_ABS=$(cd "$OUT" && pwd)
PIDS=()
PG_DIR=
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2> /dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2> /dev/null || true; done
    PIDS=()
    if [ -n "$PG_DIR" ]; then
        as_postgres "$(pg_bin)/pg_ctl" -D "$PG_DIR/data" -m immediate -w stop > /dev/null 2>&1 || true
        rm -rf "$PG_DIR"
        PG_DIR=
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP PIPE

# as_postgres PROGRAM [ARGS...]: PostgreSQL refuses to run as root; as root, run it as the
# `postgres` user (Debian's postgresql package makes it).
as_postgres() {
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# start_postgres: a PostgreSQL server on PG_PORT in a temporary directory (stopped and
# removed by cleanup), with one database per app.
start_postgres() {
    local bin
    bin=$(pg_bin)
    PG_DIR=$(mktemp -d /tmp/messages-compare-postgres.XXXXXX)
    if [ "$(id -u)" = 0 ]; then chown postgres: "$PG_DIR"; fi
    as_postgres "$bin/initdb" -D "$PG_DIR/data" -A trust -U postgres -E UTF8 --locale=C --no-sync > "$OUT/postgres.log" 2>&1
    as_postgres "$bin/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w \
        -o "-p $PG_PORT -k $PG_DIR -c listen_addresses=127.0.0.1 -c fsync=off" start >> "$OUT/postgres.log" 2>&1
    for db in axum actix; do
        as_postgres "$bin/createdb" -h 127.0.0.1 -p "$PG_PORT" -U postgres "$db" >> "$OUT/postgres.log" 2>&1
    done
}

# start NAME BINARY PORT [VAR=VALUE...]: runs BINARY on PORT, waits for its listening line.
start() {
    local name=$1 binary=$2 port=$3
    shift 3
    env PORT="$port" MESSAGES_KEY="$KEY" RUST_LOG=warn "$@" "$binary" > "$OUT/$name.log" 2>&1 &
    PIDS+=($!)
    for _ in $(seq 100); do
        if grep -q "listening on http://127.0.0.1:$port/" "$OUT/$name.log"; then return; fi
        if ! kill -0 "${PIDS[-1]}" 2> /dev/null; then break; fi
        sleep 0.1
    done
    echo "$name did not start on port $port:" >&2
    cat "$OUT/$name.log" >&2
    exit 2
}

# req TRANSCRIPT BASE JAR METHOD PATH [curl args...]: one request, appended to TRANSCRIPT.
req() {
    local out=$1 base=$2 jar=$3 method=$4 path=$5
    shift 5
    local head=$OUT/head.tmp body=$OUT/body.tmp
    local how=(-X "$method")
    if [ "$method" = HEAD ]; then how=(-I); fi
    : > "$body"
    if [ "$method" = HEAD ]; then body=/dev/null; fi
    curl -s -o "$body" -D "$head" -b "$jar" -c "$jar" -H 'Expect:' "${how[@]}" "$@" "$base$path" || true
    body=$OUT/body.tmp
    {
        echo "### $method $path $*"
        head -n 1 "$head" | tr -d '\r'
        tail -n +2 "$head" | tr -d '\r' | awk 'NF && tolower($0) !~ /^date:/' | LC_ALL=C sort
        echo
        cat "$body"
        echo
    } >> "$out"
}

# scenario TRANSCRIPT BASE: the requests, in order, as two browsers and a stranger.
scenario() {
    local out=$1 base=$2 a=$OUT/jar-a b=$OUT/jar-b none=/dev/null
    rm -f "$a" "$b" "$out"
    local form=(-H 'content-type: application/x-www-form-urlencoded')
    # Every route, a page visit at a time.
    req "$out" "$base" "$a" GET /
    req "$out" "$base" "$a" HEAD /
    req "$out" "$base" "$a" GET /settings
    req "$out" "$base" "$a" HEAD /settings
    req "$out" "$base" "$a" POST /settings "${form[@]}" --data-raw 'name=Ada'
    req "$out" "$base" "$a" GET /dashboard
    req "$out" "$base" "$b" GET /settings
    req "$out" "$base" "$a" GET /settings
    req "$out" "$base" "$a" GET /settings
    req "$out" "$base" "$a" POST /settings "${form[@]}" --data-raw 'name=+'
    req "$out" "$base" "$a" HEAD /settings
    req "$out" "$base" "$a" GET /settings
    req "$out" "$base" "$a" POST /settings "${form[@]}" --data-raw 'name=L%C3%A9a&extra=1'
    req "$out" "$base" "$a" GET /settings
    req "$out" "$base" "$a" POST /notes "${form[@]}" --data-raw 'text=%3Cb%3E%26hi%22%27%2F&count=3'
    req "$out" "$base" "$a" GET '/dashboard/messages?oob=true'
    req "$out" "$base" "$a" POST /notes "${form[@]}" --data-raw 'text=x&count=201'
    req "$out" "$base" "$a" POST /notes "${form[@]}" --data-raw 'count=1'
    req "$out" "$base" "$a" GET /api/dashboard/messages
    req "$out" "$base" "$a" GET /api/dashboard/messages
    req "$out" "$base" "$a" POST /notes -H 'content-type: application/x-www-form-urlencoded; charset=utf-8' --data-raw 'text=note&count=2'
    req "$out" "$base" "$a" GET '/dashboard/messages'
    req "$out" "$base" "$a" GET '/dashboard/messages?oob=false&other=1'
    req "$out" "$base" "$a" POST /notes "${form[@]}" --data-raw 'text=many&count=200'
    req "$out" "$base" "$a" GET /dashboard
    # The background job: the next dashboard after IMPORT_DELAY (300 ms) shows it.
    req "$out" "$base" "$a" POST /jobs/import
    sleep 0.8
    req "$out" "$base" "$a" GET /dashboard
    req "$out" "$base" "$b" POST /jobs/import -H 'content-type: text/plain' --data-raw 'ignored'
    sleep 0.8
    req "$out" "$base" "$b" GET /api/dashboard/messages
    req "$out" "$base" "$a" GET /views
    req "$out" "$base" "$a" GET /static/app.css
    req "$out" "$base" "$a" HEAD /static/app.css
    # Bad input.
    req "$out" "$base" "$a" POST /notes -H 'content-type: text/plain' --data-raw 'text=x&count=1'
    req "$out" "$base" "$a" POST /settings
    req "$out" "$base" "$a" POST /settings -H 'content-type: application/json' --data-raw '{"name":"x"}'
    req "$out" "$base" "$a" POST /settings "${form[@]}" --data-raw 'name=a&name=b'
    req "$out" "$base" "$a" POST /notes "${form[@]}" --data-raw 'text=a&count=1&count=2'
    head -c 2200000 /dev/zero | tr '\0' 'a' > "$OUT/big.tmp"
    req "$out" "$base" "$a" POST /notes "${form[@]}" --data-binary "@$OUT/big.tmp"
    req "$out" "$base" "$a" GET '/dashboard/messages?oob=maybe'
    req "$out" "$base" "$a" GET '/dashboard/messages?oob=true&oob=false'
    req "$out" "$base" "$a" GET /dashboard
    # Other methods, other paths.
    req "$out" "$base" "$a" POST /
    req "$out" "$base" "$a" PUT /settings
    req "$out" "$base" "$a" DELETE /dashboard
    req "$out" "$base" "$a" POST /dashboard/messages
    req "$out" "$base" "$a" GET /notes
    req "$out" "$base" "$a" HEAD /jobs/import
    req "$out" "$base" "$a" PATCH /api/dashboard/messages
    req "$out" "$base" "$a" POST /views
    req "$out" "$base" "$a" OPTIONS /static/app.css
    req "$out" "$base" "$a" GET /nope
    req "$out" "$base" "$a" HEAD /nope
    req "$out" "$base" "$a" GET /settings/
    # Hostile cookies: no messages, a clean cookie.
    req "$out" "$base" "$none" GET /settings -H 'cookie: messages_session=forged; messages=garbage'
    req "$out" "$base" "$none" GET /dashboard -H 'cookie: messages=x.y.z'
    rm -f "$OUT/big.tmp" "$OUT/head.tmp" "$OUT/body.tmp"
}

mask() {
    sed -E \
        -e 's/(messages_session=)[A-Za-z0-9_-]{20,}/\1<session>/g' \
        -e 's/^(set-cookie: messages=)[^;]+/\1<signed>/' \
        -e 's/(; Expires=)[^;]+/\1<date>/' \
        -e 's/(data-id=")[^"]*"/\1<id>"/g' \
        -e 's/("id":")[0-9a-f]{16,}"/\1<id>"/g' \
        -e 's/("created_at":)[0-9]+/\1<time>/g' \
        -e 's/("file":)"[^"]*"/\1<file>/g' \
        -e 's/("line":)[0-9]+/\1<line>/g' \
        "$1" |
        awk '/^### GET \/views/ { views = 1 } /^### / && !/\/views/ { views = 0 }
             views && /^content-length:/ { print "content-length: <masked>"; next } { print }'
}

status=0
for store in "${STORES[@]}"; do
    env_axum=(MESSAGES_STORE="${store%-redis}")
    env_actix=(MESSAGES_STORE="${store%-redis}")
    case $store in
        memory | cookie | fallback) ;;
        redis | fallback-redis)
            redis-server --port "$REDIS_PORT" --save '' --appendonly no > "$OUT/redis.log" 2>&1 &
            PIDS+=($!)
            for _ in $(seq 50); do
                if redis-cli -p "$REDIS_PORT" ping > /dev/null 2>&1; then break; fi
                sleep 0.1
            done
            # One Redis, one database per app.
            env_axum+=(REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0")
            env_actix+=(REDIS_URL="redis://127.0.0.1:$REDIS_PORT/1")
            ;;
        sqlite)
            # One file per app, new for each run.
            rm -f "$OUT"/{axum,actix}.db*
            env_axum+=(DATABASE_URL="sqlite://$OUT_ABS/axum.db")
            env_actix+=(DATABASE_URL="$OUT/actix.db")
            ;;
        postgres)
            start_postgres
            env_axum+=(DATABASE_URL="postgres://postgres@127.0.0.1:$PG_PORT/axum")
            env_actix+=(DATABASE_URL="postgres://postgres@127.0.0.1:$PG_PORT/actix")
            ;;
        *)
            echo "unknown store $store" >&2
            exit 2
            ;;
    esac
    start axum "$AXUM_BIN" "$AXUM_PORT" "${env_axum[@]}"
    start actix "$ACTIX_BIN" "$ACTIX_PORT" "${env_actix[@]}"
    scenario "$OUT/$store.axum.txt" "http://127.0.0.1:$AXUM_PORT"
    scenario "$OUT/$store.actix.txt" "http://127.0.0.1:$ACTIX_PORT"
    cleanup
    requests=$(grep -c '^### ' "$OUT/$store.axum.txt")
    mask "$OUT/$store.axum.txt" > "$OUT/$store.axum.masked"
    mask "$OUT/$store.actix.txt" > "$OUT/$store.actix.masked"
    if diff -u "$OUT/$store.axum.masked" "$OUT/$store.actix.masked" > "$OUT/$store.diff"; then
        echo "$store: $requests requests, identical answers (but the masked values)"
    else
        echo "$store: $requests requests, DIFFERENT answers ($OUT/$store.diff):"
        cat "$OUT/$store.diff"
        status=1
    fi
done
# What /views says differently by design.
for app in axum actix; do
    echo "/views of $app: $(grep -o '"file":"[^"]*","line":[0-9]*' "$OUT/${STORES[0]}.$app.txt" | sort -u | tr '\n' ' ')"
done
echo "transcripts: $OUT/"
exit $status
