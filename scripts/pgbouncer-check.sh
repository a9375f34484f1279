#!/usr/bin/env bash
# Proves that the server works through PgBouncer in transaction pooling mode (the mode of
# Neon's pooler) with its default settings: DB_PREPARED_STATEMENTS=auto finds the pooler at
# start-up and sends every statement unnamed (`query_typed`), so no prepared statement or
# session state has to survive between transactions. (Connected directly, the same default
# prepares them: `foundation::prepared_statements_*` checks both ways.)
#
#   scripts/pgbouncer-check.sh
#
# 1. Installs Debian's pgbouncer if missing and starts one on a free loopback port
#    (pool_mode = transaction, a wildcard database so any name works, trust auth), with its
#    config, log and pid file under target/pgbouncer/. It runs as the user postgres when this
#    script runs as root (pgbouncer refuses root) and is stopped when the script exits.
# 2. Creates a database, runs the release binary with DATABASE_URL through PgBouncer and
#    DATABASE_MIGRATION_URL direct (migrations hold an advisory lock, which needs a session),
#    runs scripts/smoke.sh against it, stops it and drops the database. PgBouncer 1.18 refuses
#    the statement_timeout startup option: the server must say so once and go on without it.
# 3. Runs the integration tests `tasks::`, `faults::an_exhausted_pool` and
#    `foundation::prepared_statements` with PG_APP_URL set, so that every test server's pool goes
#    through PgBouncer (tests/api/common.rs, base_env).
# 4. Shows PgBouncer's own accounting (SHOW CONFIG / POOLS / STATS on its admin console) as
#    evidence that the traffic went through it, in transaction mode.
#
# PostgreSQL: $PG_URL, else 127.0.0.1:5432, else a throwaway cluster under target/pg-test on
# port 54329 (scripts/pg.sh). Exit status 0 only when every step passed.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

say() { printf '[pgbouncer-check] %s\n' "$*" >&2; }
die() { say "FAIL: $*"; exit 1; }

# free_port: a TCP port nobody listens on (nor is about to: picked at random).
free_port() {
  local port i
  # below the kernel's ephemeral range, which outgoing connections and port-0 listeners use
  local low=20000 high
  high=$(awk '{ print $1 }' /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
  [ "$high" -gt $((low + 1000)) ] || { low=$((high - 4000)); [ "$low" -gt 1024 ] || low=1025; }
  for i in $(seq 1 200); do
    port=$((low + RANDOM % (high - low)))
    if ! ss -Htln "sport = :$port" 2>/dev/null | grep -q .; then
      echo "$port"
      return
    fi
  done
  return 1
}

# --- PostgreSQL ------------------------------------------------------------------------------
. scripts/pg.sh
ensure_postgres target/pg-test 54329
PSQL=$(pg_bin psql)

# Split PG_URL (postgres://user[:password]@host[:port]/db[?params]) into its parts.
rest=${PG_URL#*://}
rest=${rest%%\?*}
userinfo=postgres
if [[ $rest == *@* ]]; then
  userinfo=${rest%%@*}
  rest=${rest#*@}
fi
PG_USER=${userinfo%%:*}
PG_PASSWORD=
[[ $userinfo == *:* ]] && PG_PASSWORD=${userinfo#*:}
hostport=${rest%%/*}
PG_HOST=${hostport%:*}
PG_PORT=5432
[[ $hostport == *:* ]] && PG_PORT=${hostport##*:}
DIRECT_BASE=${PG_URL%%\?*}
DIRECT_BASE=${DIRECT_BASE%/*} # postgres://user@host:port

# --- pgbouncer -------------------------------------------------------------------------------
if ! PGBOUNCER=$(command -v pgbouncer || ls /usr/sbin/pgbouncer 2>/dev/null); then
  say "installing pgbouncer from Debian's packages"
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pgbouncer; } >&2
  PGBOUNCER=$(command -v pgbouncer || echo /usr/sbin/pgbouncer)
fi
[ -x "$PGBOUNCER" ] || die "cannot find or install pgbouncer"

DIR=$ROOT/target/pgbouncer
rm -rf "$DIR"
mkdir -p "$DIR"
as_bouncer() { "$@"; }
if [ "$(id -u)" = 0 ]; then
  # pgbouncer refuses to run as root: run it as postgres, in a directory postgres can write.
  chown postgres: "$DIR"
  if ! runuser -u postgres -- test -w "$DIR"; then
    DIR=/tmp/todo-api-pgbouncer-$$
    rm -rf "$DIR" && mkdir -p "$DIR" && chown postgres: "$DIR"
  fi
  as_bouncer() { runuser -u postgres -- "$@"; }
fi

BOUNCER_PORT=$(free_port) || die "no free port for pgbouncer"
server_password=
[ -n "$PG_PASSWORD" ] && server_password=" password=$PG_PASSWORD"
printf '"%s" ""\n' "$PG_USER" >"$DIR/userlist.txt"
[ "$PG_USER" = postgres ] || printf '"postgres" ""\n' >>"$DIR/userlist.txt"
cat >"$DIR/pgbouncer.ini" <<EOF
[databases]
; any database name: a pool per name, on the same PostgreSQL server
* = host=$PG_HOST port=$PG_PORT$server_password

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $BOUNCER_PORT
unix_socket_dir =
auth_type = trust
auth_file = $DIR/userlist.txt
admin_users = $PG_USER
stats_users = $PG_USER
pool_mode = transaction
max_client_conn = 500
default_pool_size = 20
; sent by some drivers (pgJDBC); pgbouncer would otherwise refuse the connection
ignore_startup_parameters = extra_float_digits
logfile = $DIR/pgbouncer.log
pidfile = $DIR/pgbouncer.pid
stats_period = 5
EOF
[ "$(id -u)" = 0 ] && chown postgres: "$DIR"/*

APP_PID=
DB=
BOUNCER_PID=
cleanup() {
  local status=$?
  set +e
  if [ -n "$APP_PID" ] && kill -0 "$APP_PID" 2>/dev/null; then
    kill -TERM "$APP_PID" 2>/dev/null
    wait "$APP_PID" 2>/dev/null
  fi
  if [ -n "$DB" ]; then
    "$PSQL" "$PG_URL" -qc "DROP DATABASE IF EXISTS \"$DB\" WITH (FORCE)" >/dev/null 2>&1
  fi
  if [ -n "$BOUNCER_PID" ] && kill -0 "$BOUNCER_PID" 2>/dev/null; then
    kill -TERM "$BOUNCER_PID" 2>/dev/null
    for _ in $(seq 1 50); do kill -0 "$BOUNCER_PID" 2>/dev/null || break; sleep 0.1; done
  fi
  [ -n "${PG_CLUSTER_DATA:-}" ] && stop_cluster "$PG_CLUSTER_DATA"
  exit $status
}
trap cleanup EXIT # replaces pg.sh's trap: cleanup stops its cluster too
trap 'exit 130' INT TERM

say "starting pgbouncer $("$PGBOUNCER" --version | head -n1 | awk '{print $2}') on 127.0.0.1:$BOUNCER_PORT (config $DIR/pgbouncer.ini)"
as_bouncer "$PGBOUNCER" -d "$DIR/pgbouncer.ini" || { cat "$DIR/pgbouncer.log" >&2; die "pgbouncer did not start"; }
for _ in $(seq 1 100); do
  [ -s "$DIR/pgbouncer.pid" ] && BOUNCER_PID=$(cat "$DIR/pgbouncer.pid") && break
  sleep 0.1
done
[ -n "$BOUNCER_PID" ] || { cat "$DIR/pgbouncer.log" >&2; die "pgbouncer wrote no pid file"; }

ADMIN_URL=postgres://$PG_USER@127.0.0.1:$BOUNCER_PORT/pgbouncer
# admin SQL: runs a command on pgbouncer's console; prints rows, fields separated by |.
admin() { "$PSQL" "$ADMIN_URL" -AtF'|' -c "$1"; }
for _ in $(seq 1 100); do admin "SHOW VERSION" >/dev/null 2>&1 && break; sleep 0.1; done
admin "SHOW VERSION" >/dev/null || die "pgbouncer's admin console does not answer"
pool_mode=$(admin "SHOW CONFIG" | awk -F'|' '$1 == "pool_mode" { print $2 }')
[ "$pool_mode" = transaction ] || die "pgbouncer runs with pool_mode=$pool_mode, not transaction"
say "pgbouncer answers; SHOW CONFIG: pool_mode = $pool_mode"

# admin_table SQL: a SHOW command's rows as NAME=VALUE pairs, one row per line.
admin_table() {
  "$PSQL" "$ADMIN_URL" -AF'|' -P footer=off -c "$1" |
    awk -F'|' 'NR == 1 { for (i = 1; i <= NF; i++) name[i] = $i; next }
               { line = ""; for (i = 1; i <= NF; i++) line = line name[i] "=" $i " "; print line }'
}
# field NAME: the value of NAME in a line of admin_table.
field() { tr ' ' '\n' | sed -n "s/^$1=//p"; }
# pool_line DB: SHOW POOLS for database DB, summarised.
pool_line() {
  local row
  row=$(admin_table "SHOW POOLS" | grep "^database=$1 ") || { echo "no pool"; return; }
  echo "clients active=$(field cl_active <<<"$row") waiting=$(field cl_waiting <<<"$row");" \
    "servers active=$(field sv_active <<<"$row") idle=$(field sv_idle <<<"$row") used=$(field sv_used <<<"$row");" \
    "pool_mode=$(field pool_mode <<<"$row")"
}
# stats_sum REGEX: databases matching REGEX in SHOW STATS, their transactions and queries.
stats_sum() {
  admin_table "SHOW STATS" | awk -v re="$1" '
    { delete f; for (i = 1; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] } }
    f["database"] ~ re { dbs++; xact += f["total_xact_count"]; query += f["total_query_count"] }
    END { printf "%d %d %d\n", dbs, xact, query }'
}

# --- build -----------------------------------------------------------------------------------
say "building the release binary"
cargo build --release
BIN=$ROOT/target/release/todo-api

RESULTS=()
failed=0
record() { RESULTS+=("$(printf '%-52s %s' "$1" "$2")"); [ "$2" = PASS ] || failed=1; }

# --- (a) the release binary through pgbouncer, smoke test ------------------------------------
DB=todo_pgbouncer_check_$$
"$PSQL" "$PG_URL" -qc "CREATE DATABASE \"$DB\""
APP_PORT=$(free_port) || die "no free port for the server"
SECRET=$(openssl rand -hex 32)
APP_LOG=$DIR/todo-api.log
say "(a) starting todo-api on 127.0.0.1:$APP_PORT: DATABASE_URL via pgbouncer (:$BOUNCER_PORT), migrations direct (:$PG_PORT)"
# Run from the log directory, so that no .env of the checkout changes the configuration.
(
  cd "$DIR"
  exec env DATABASE_URL="postgres://$PG_USER@127.0.0.1:$BOUNCER_PORT/$DB" \
    DATABASE_MIGRATION_URL="$DIRECT_BASE/$DB" \
    BETTER_AUTH_SECRET="$SECRET" HOST=127.0.0.1 PORT="$APP_PORT" RUST_LOG=info \
    "$BIN"
) 2>"$APP_LOG" &
APP_PID=$!
for _ in $(seq 1 600); do
  grep -q "listening on http://" "$APP_LOG" && break
  kill -0 "$APP_PID" 2>/dev/null || { cat "$APP_LOG" >&2; die "todo-api exited at start-up"; }
  sleep 0.1
done
grep -q "listening on http://" "$APP_LOG" || { cat "$APP_LOG" >&2; die "todo-api did not start within 60 s"; }

smoke_status=PASS
if grep -q "goes through a transaction pooler: statements are sent unnamed" "$APP_LOG"; then
  say "(a) DB_PREPARED_STATEMENTS=auto found the pooler: statements are sent unnamed"
else
  say "(a) the server did not find the pooler (no 'goes through a transaction pooler' in its log)"
  smoke_status=FAIL
fi
if grep -q "refuses statement_timeout as a startup parameter" "$APP_LOG"; then
  say "(a) pgbouncer refused the statement_timeout startup option: the server connects without it (client deadline only)"
else
  say "(a) the server did not report the refused startup option"
  smoke_status=FAIL
fi
BETTER_AUTH_SECRET=$SECRET scripts/smoke.sh "http://127.0.0.1:$APP_PORT" || smoke_status=FAIL
# Some concurrent traffic, so the pool numbers mean something: 40 lists, 8 at a time.
token=$(
  b64() { base64 | tr '+/' '-_' | tr -d '=\n'; }
  now=$(date +%s)
  h=$(printf '{"alg":"HS256","typ":"JWT"}' | b64)
  p=$(printf '{"sub":"pgbouncer-check","iat":%d,"exp":%d}' "$now" $((now + 300)) | b64)
  s=$(printf '%s' "$h.$p" | openssl dgst -sha256 -hmac "$SECRET" -binary | b64)
  printf '%s.%s.%s' "$h" "$p" "$s"
)
burst=$(seq 1 40 | xargs -P 8 -I{} curl -s -o /dev/null -w '%{http_code}\n' \
  -H "Authorization: Bearer $token" "http://127.0.0.1:$APP_PORT/api/tasks" | sort | uniq -c | awk '{ printf "%s%d x %s", sep, $1, $2; sep = ", " }')
say "(a) 40 list requests, 8 at a time: $burst"
[ "$burst" = "40 x 200" ] || smoke_status=FAIL

pools_a=$(pool_line "$DB")
read -r _ xact_a query_a < <(stats_sum "^$DB\$")
backends=$("$PSQL" "$PG_URL" -Atc "SELECT count(*) FROM pg_stat_activity WHERE datname = '$DB'")
access_a=$(grep -c ' access\]' "$APP_LOG" || true)
say "(a) SHOW POOLS $DB: $pools_a"
say "(a) SHOW STATS $DB: $xact_a transactions, $query_a queries relayed by pgbouncer; server access-log lines: $access_a"
say "(a) PostgreSQL backends on $DB: $backends, for the server's $(field cl_active <<<"$(admin_table "SHOW POOLS" | grep "^database=$DB ")") client connections to pgbouncer (transaction pooling shares them)"
[ "${xact_a:-0}" -gt 0 ] || { say "(a) pgbouncer relayed no transaction for $DB"; smoke_status=FAIL; }

kill -TERM "$APP_PID"
wait "$APP_PID" || { say "(a) todo-api exited non-zero on SIGTERM"; smoke_status=FAIL; }
APP_PID=
grep -E ' (ERROR|WARN) ' "$APP_LOG" >&2 || true
admin "KILL \"$DB\"" >/dev/null # close pgbouncer's server connections before the drop
"$PSQL" "$PG_URL" -qc "DROP DATABASE \"$DB\" WITH (FORCE)"
DB=
record "(a) release binary + scripts/smoke.sh" "$smoke_status"

# --- (b) the integration tests through pgbouncer ----------------------------------------------
TEST_LOG=$DIR/cargo-test.log
filters=(tasks:: faults::an_exhausted_pool foundation::prepared_statements)
say "(b) PG_APP_URL=postgres://$PG_USER@127.0.0.1:$BOUNCER_PORT/postgres cargo test --test api -- ${filters[*]}"
test_status=PASS
PG_URL=$PG_URL PG_APP_URL="postgres://$PG_USER@127.0.0.1:$BOUNCER_PORT/postgres" \
  cargo test --test api -- "${filters[@]}" >"$TEST_LOG" 2>&1 || test_status=FAIL
grep -E '^test .* (FAILED|ok|ignored)$' "$TEST_LOG" | sed 's/^/  /' >&2 || true
grep -E '^(test result:|failures:|---- )' "$TEST_LOG" | sed 's/^/  /' >&2 || true
if [ "$test_status" = FAIL ]; then
  say "(b) cargo test failed; the tail of $TEST_LOG:"
  tail -n 60 "$TEST_LOG" >&2
fi
ran=$(awk '/^test result:/ { for (i = 1; i < NF; i++) if ($(i + 1) ~ /^passed/) n += $i } END { print n + 0 }' "$TEST_LOG")
read -r dbs_b xact_b query_b < <(stats_sum '^todo_test_')
say "(b) SHOW STATS: $dbs_b test databases had pools in pgbouncer; $xact_b transactions, $query_b queries relayed"
[ "${ran:-0}" -gt 0 ] || { say "(b) no test ran"; test_status=FAIL; }
[ "${dbs_b:-0}" -gt 0 ] && [ "${xact_b:-0}" -gt 0 ] ||
  { say "(b) the tests' servers did not go through pgbouncer"; test_status=FAIL; }
record "(b) cargo test tasks:: + an_exhausted_pool + prepared_statements: $ran passed" "$test_status"

# --- summary ---------------------------------------------------------------------------------
errors=$(grep -cE ' (ERROR|FATAL) ' "$DIR/pgbouncer.log" || true)
warnings=$(grep -c ' WARNING ' "$DIR/pgbouncer.log" || true)
# The tests drop their databases WITH (FORCE): PostgreSQL then ends pgbouncer's idle server
# connections to them, which pgbouncer logs as "got packet 'E' from server when not linked".
# Each server's first connection asks for statement_timeout as a startup option, which this
# PgBouncer refuses (two lines); the server then connects without it.
dropped=$(grep ' WARNING ' "$DIR/pgbouncer.log" | grep -c "got packet 'E' from server when not linked" || true)
refused=$(grep ' WARNING ' "$DIR/pgbouncer.log" | grep -c "unsupported startup parameter: options" || true)
other=$((warnings - dropped - refused))
say "pgbouncer log: $(grep -c 'login attempt' "$DIR/pgbouncer.log" || true) client logins, $errors ERROR/FATAL lines," \
  "$warnings warnings ($dropped idle server connections ended by DROP DATABASE ... WITH (FORCE)," \
  "$refused for $((refused / 2)) refused statement_timeout options) ($DIR/pgbouncer.log)"
[ "$errors" = 0 ] && [ "$other" = 0 ] || record "pgbouncer log free of errors" FAIL
echo
echo "PgBouncer check (pool_mode=$pool_mode, 127.0.0.1:$BOUNCER_PORT -> $PG_HOST:$PG_PORT)"
for line in "${RESULTS[@]}"; do echo "  $line"; done
if [ $failed = 0 ]; then
  echo "pgbouncer-check: PASS"
else
  echo "pgbouncer-check: FAIL (logs in $DIR)"
  exit 1
fi
