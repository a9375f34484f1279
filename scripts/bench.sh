#!/usr/bin/env bash
# Benchmarks the API with wrk against a floor: pgbench running the same SQL statements the
# handlers run, on the same database. One command:
#
#   scripts/bench.sh
#
# BENCH_SECONDS (10) per run, BENCH_ROUNDS (3), BENCH_SCENARIOS (all; e.g. "unlimited limited"),
# BENCH_PORT (a free one), BENCH_BIN (another build
# of the server to measure instead, e.g. an earlier commit's, against the same floor). Server
# settings in the environment pass through, e.g. `WORKERS=64 DB_POOL_SIZE=8 scripts/bench.sh`;
# otherwise the server runs with its defaults, but rate limits off (RATE_LIMIT_PER_MINUTE=0:
# a hundred users at thousands of requests a second are far over the default 600 a minute).
# The limiter's cost: `unlimited` and `limited` are `get` against a second server started for
# the run and warmed up, with limits off, then on and out of reach (every request through the
# limiter, none refused); the same in all but the limits, one right after the other, in turns.
# PostgreSQL: $PG_URL, else 127.0.0.1:5432, else a throwaway cluster under target/pg-bench
# (scripts/pg.sh). Output: a Markdown table on stdout and target/bench/results.md;
# raw wrk/pgbench outputs in target/bench/runs/, the server's log in target/bench/server.log.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

DURATION=${BENCH_SECONDS:-10}
ROUNDS=${BENCH_ROUNDS:-3}
OUT=target/bench
LUA=scripts/bench
SEED_MAX_ID=20000 # ids above this were created by a run (see scripts/bench/seed.sql)
read -r -a SCENARIOS <<<"${BENCH_SCENARIOS:-list tagged get unlimited limited create mixed big mixed1000}"

say() { printf '[bench] %s\n' "$*" >&2; }
die() { say "ERROR: $*"; exit 1; }

rm -rf "$OUT" && mkdir -p "$OUT/runs" "$OUT/floor"

# --- tools -----------------------------------------------------------------------------------
if ! command -v wrk >/dev/null; then
  say "installing wrk"
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk; } >&2
fi
# 1,000 client connections plus the server's side of each: raise the descriptor limit for both.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
say "open files limit: $(ulimit -n)"
(($(ulimit -n) >= 4096)) || say "WARNING: 1,000 connections need about 4,000 descriptors in the server"

say "building the release binary and the hello-world ceiling (tests/bench/hello.rs)"
cargo build --release
HELLO_BIN=$(cargo bench --bench hello --no-run --message-format=json 2>/dev/null |
  python3 -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "hello" and m.get("executable"):
        print(m["executable"])')
[ -x "$HELLO_BIN" ] || die "cannot build tests/bench/hello.rs"

# --- database --------------------------------------------------------------------------------
. scripts/pg.sh
ensure_postgres target/pg-bench 54327
PSQL=$(pg_bin psql)
PGBENCH=$(pg_bin pgbench)
DB_URL=$(python3 -c 'import sys, urllib.parse as u
p = u.urlsplit(sys.argv[1]); print(u.urlunsplit(p._replace(path="/todo_bench")))' "$PG_URL")
db() { "$PSQL" "$DB_URL" -X -q -At -v ON_ERROR_STOP=1 "$@"; }

say "recreating the database todo_bench"
"$PSQL" "$PG_URL" -X -q -v ON_ERROR_STOP=1 \
  -c "DROP DATABASE IF EXISTS todo_bench WITH (FORCE)" -c "CREATE DATABASE todo_bench"

# --- server ----------------------------------------------------------------------------------
SECRET=$(python3 -c 'import secrets; print(secrets.token_hex(32))')
PORT=${BENCH_PORT:-$(python3 -c 'import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
BASE=http://127.0.0.1:$PORT
SERVER_PID=

HELLO_PID=
LIMITED_PID=
# stop PID: stops a server, waiting up to 10 s for it to finish.
stop() {
  kill -TERM "$1" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$1" 2>/dev/null || true
}
stop_server() {
  [ -n "$HELLO_PID" ] && { kill "$HELLO_PID" 2>/dev/null || true; HELLO_PID=; }
  [ -n "$LIMITED_PID" ] && { stop "$LIMITED_PID"; LIMITED_PID=; }
  [ -n "$SERVER_PID" ] || return 0
  stop "$SERVER_PID"
  SERVER_PID=
}
# pg.sh may have set an EXIT trap that stops its throwaway cluster: keep running it after ours.
PG_ON_EXIT=
if [ -n "$(trap -p EXIT)" ]; then eval "set -- $(trap -p EXIT)"; PG_ON_EXIT=$3; fi
trap 'stop_server; eval "$PG_ON_EXIT"' EXIT
trap 'exit 130' INT TERM

# run_api PORT VAR=VALUE...: runs the server with those settings added, from target/bench so
# that a developer's .env cannot change the configuration; the default log level (info, one
# access line per request) as in production. Run it in the background.
run_api() {
  local port=$1
  shift
  cd "$OUT" && exec env -u RUST_LOG -u JWT_ISSUER -u JWT_AUDIENCE -u BETTER_AUTH_SECRET_PREVIOUS \
    DATABASE_URL="$DB_URL" DATABASE_MIGRATION_URL="$DB_URL" BETTER_AUTH_SECRET="$SECRET" \
    HOST=127.0.0.1 PORT="$port" "$@" "${BENCH_BIN:-$ROOT/target/release/todo-api}"
}
# wait_ready URL PID LOG: until the server answers /health/ready (30 s at most).
wait_ready() {
  for _ in $(seq 300); do
    curl -fs "$1/health/ready" >/dev/null 2>&1 && return
    kill -0 "$2" 2>/dev/null || { cat "$3" >&2; die "the server exited"; }
    sleep 0.1
  done
  die "the server is not ready after 30 s"
}
say "starting the server on $BASE (it migrates todo_bench)"
(run_api "$PORT" RATE_LIMIT_PER_MINUTE="${RATE_LIMIT_PER_MINUTE:-0}") >"$OUT/server.log" 2>&1 &
SERVER_PID=$!
wait_ready "$BASE" "$SERVER_PID" "$OUT/server.log"
LIMITED_PORT=$(python3 -c 'import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

HELLO_PORT=$(python3 -c 'import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
HELLO_PORT=$HELLO_PORT "$HELLO_BIN" >"$OUT/hello.log" 2>&1 &
HELLO_PID=$!
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$HELLO_PORT/" >/dev/null 2>&1 && break; sleep 0.1; done

# --- data ------------------------------------------------------------------------------------
say "seeding 100 users x 100 tasks and bench_big x 10,000"
db -f scripts/bench/seed.sql
misplaced=$(db -c "SELECT count(*) FROM tasks WHERE user_id <> 'bench_big'
                     AND user_id <> 'bench_u' || ((id - 1) / 100 + 1)")
[ "$misplaced" = 0 ] || die "seed layout: $misplaced tasks do not have the ids the floor assumes"

db -c "SELECT user_id || '|' || string_agg(id::text, ',' ORDER BY id) FROM tasks GROUP BY user_id" |
  BENCH_SECRET=$SECRET python3 scripts/bench/data.py "$OUT"
export BENCH_DATA=$OUT/data.lua BENCH_LUA_DIR=$LUA

# Deletes what a run created and vacuums, so every run starts from the same table.
reset_writes() {
  db -c "DELETE FROM tasks WHERE id > $SEED_MAX_ID" -c "VACUUM (ANALYZE) tasks"
}

# --- load generators -------------------------------------------------------------------------
script_of() { case $1 in mixed1000) echo mixed ;; limited | unlimited) echo get ;; *) echo "$1" ;; esac; }
connections_of() { case $1 in mixed1000) echo 1000 ;; *) echo 100 ;; esac; }
writes() { case $1 in create | mixed | mixed1000) return 0 ;; *) return 1 ;; esac; }

# wrk_run SCENARIO CONNECTIONS SECONDS THREADS OUTPUT: prints the BENCH_RESULT line of common.lua.
wrk_run() {
  local extra=()
  [ "$2" -ge 1000 ] && extra=(--timeout 5s)
  wrk -t"$4" -c"$2" -d"$3s" --latency "${extra[@]}" -s "$LUA/$(script_of "$1").lua" "${TARGET:-$BASE}" >"$5" 2>&1 ||
    die "wrk failed for $1: $(tail -3 "$5")"
  grep '^BENCH_RESULT' "$5" || die "no result line from wrk for $1 (see $5)"
}
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<" $2"; }

say "checking correctness of every scenario's requests"
python3 scripts/bench/check.py "$BASE" "$OUT/data.json" >&2 || die "the server answers wrongly: no timing"
for s in list tagged get create mixed big; do
  line=$(wrk_run "$s" 2 1 1 "$OUT/runs/check-$s.txt")
  [ "$(field requests "$line")" -gt 0 ] && [ "$(field non2xx "$line")" = 0 ] &&
    [ "$(field socket_errors "$line")" = 0 ] || die "wrk check of $s: $line"
done
reset_writes

# --- floor: the handlers' statements under pgbench ---------------------------------------------
# statement FILE N=EXPR...: sql/tasks/FILE.sql without its comments, then $TAIL, with each $N
# replaced. The list statement is composed as db::LIST_TASKS composes it: matching.sql as a CTE
# (with $TAGS appended), then list.sql.
uncommented() { sed -e '/^[[:space:]]*--/d' "sql/tasks/$1.sql"; }
statement() {
  local file=$1 sub args=()
  shift
  for sub in "$@"; do args+=(-e "s/\\\$${sub%%=*}\\b/${sub#*=}/g"); done
  {
    if [ "$file" = list ]; then
      echo 'WITH matching AS NOT MATERIALIZED ('
      uncommented matching
      echo "${TAGS:-})"
    fi
    uncommented "$file"
    echo "${TAIL:-}"
  } | sed "${args[@]}"
  echo ';'
}
USER_EXPR="('bench_u' || :u)" # a random seeded user; task k of bench_u<u> has id (u - 1) * 100 + k
PICK='\set u random(1, 100)
\set id (:u - 1) * 100 + random(1, 100)
\set n random(1, 1000000000)'
# The handler runs, for a plain first page, the list statement of db::LIST_TASKS's ("created",
# descending) order, and binds: completed, q, the task-field filters NULL (and the flag saying so
# false), 50, 0. For the tagged scenario: its ("due_date", ascending) statement with the tag
# clause, the flag true and the tags {work}.
FIRST_PAGE=(2=NULL::bool 3=NULL::text 4=false 5=NULL::text 6=NULL::timestamptz 7=NULL::timestamptz 8=false
  9=NULL::text[] 10=50 11=0)
TAGGED_PAGE=(2=NULL::bool 3=NULL::text 4=true 5=NULL::text 6=NULL::timestamptz 7=NULL::timestamptz 8=false
  "9='{work}'::text[]" 10=50 11=0)
LIST_TAIL=$'ORDER BY created_at DESC, id DESC\nLIMIT $10 OFFSET $11'
TAGGED_TAIL=$'ORDER BY due_date, id\nLIMIT $10 OFFSET $11'
for composed in 'sort!("created", true, "created_at DESC, id DESC")' 'sort!("due_date", false, "due_date, id")' \
  '"  AND tags @> $9\n"' '"WITH matching AS NOT MATERIALIZED (\n"' '"\nLIMIT $10 OFFSET $11"'; do
  grep -qF "$composed" src/db.rs || die "db::LIST_TASKS no longer composes the statements the floor runs ($composed)"
done
{ echo "$PICK"; TAIL=$LIST_TAIL statement list 1="$USER_EXPR" "${FIRST_PAGE[@]}"; } >"$OUT/floor/list.sql"
{ echo "$PICK"; TAGS='  AND tags @> $9' TAIL=$TAGGED_TAIL statement list 1="$USER_EXPR" "${TAGGED_PAGE[@]}"; } \
  >"$OUT/floor/tagged.sql"
{ echo "$PICK"; TAIL=$LIST_TAIL statement list 1="'bench_big'" "${FIRST_PAGE[@]}"; } >"$OUT/floor/big.sql"
{ echo "$PICK"; statement get 1=:id 2="$USER_EXPR"; } >"$OUT/floor/get.sql"
{ echo "$PICK"; statement insert 1="$USER_EXPR" 2="('bench task ' || :n)" 3=NULL::text 4=false 5="'medium'::text" \
  "6='{}'::text[]" 7=NULL::timestamptz 8=NULL::timestamptz 9=NULL::text; } >"$OUT/floor/create.sql"
# Every change is update.sql: the toggle sets only $7 (toggle), PUT only the title.
UNCHANGED=(5=NULL::text 6=NULL::bool 8=NULL::text 9=NULL::text[] 10=false 11=NULL::timestamptz 12=false
  13=NULL::timestamptz 14=false 15=NULL::text)
{ echo "$PICK"; statement update 1=:id 2="$USER_EXPR" 3=NULL::text 4=false 7=true "${UNCHANGED[@]}"; } \
  >"$OUT/floor/toggle.sql"
{ echo "$PICK"; statement update 1=:id 2="$USER_EXPR" 3="('renamed ' || :n)" 4=false 7=false "${UNCHANGED[@]}"; } \
  >"$OUT/floor/put.sql"
grep -q '\$[0-9]' "$OUT"/floor/*.sql && die "a floor script still has a \$n parameter: $(grep -l '\$[0-9]' "$OUT"/floor/*.sql)"

floor_args() {
  case $1 in
    mixed | mixed1000)
      echo "-f $OUT/floor/list.sql@70 -f $OUT/floor/get.sql@10 -f $OUT/floor/create.sql@10" \
        "-f $OUT/floor/toggle.sql@5 -f $OUT/floor/put.sql@5" ;;
    *) echo "-f $OUT/floor/$1.sql" ;;
  esac
}

# pgbench clients: 100, unless PostgreSQL's max_connections leaves fewer free (the server's pool
# and other users of the same PostgreSQL count too; keep a margin of 5).
free_slots=$(db -c "SELECT current_setting('max_connections')::int - count(*)
                    FROM pg_stat_activity WHERE backend_type = 'client backend'
                      AND NOT (datname = 'todo_bench' AND application_name = 'todo-api')")
FLOOR_CLIENTS=$((free_slots - ${DB_POOL_SIZE:-16} - 5))
((FLOOR_CLIENTS > 100)) && FLOOR_CLIENTS=100
((FLOOR_CLIENTS >= 10)) || die "PostgreSQL has only $free_slots free connections"
FLOOR_NOTE="PostgreSQL's max_connections is $(db -c 'SHOW max_connections')"
[ "$FLOOR_CLIENTS" -lt 100 ] && say "WARNING: the floor runs with $FLOOR_CLIENTS clients ($FLOOR_NOTE)"

# Checks that every floor statement hits existing rows (one transaction of each, rolled back).
for f in list tagged big get toggle put; do
  rows=$(sed -e 's/:u\b/7/g; s/:id\b/642/g; s/:n\b/1/g; /^\\set/d' "$OUT/floor/$f.sql" |
    db -c 'BEGIN' -f - -c 'ROLLBACK' | grep -c .) || true
  [ "$rows" -gt 0 ] || die "the floor statement $f returns no row"
done

# floor_run SCENARIO OUTPUT: sets tps (empty when pgbench failed). When others use up PostgreSQL's
# connections meanwhile, it retries with fewer clients (and keeps the lower number).
floor_run() {
  local attempt
  tps=
  for attempt in 1 2 3 4; do
    # shellcheck disable=SC2046 # floor_args is a list of words
    # Planned once, as the server's prepared statements are (plan_cache_mode=force_generic_plan
    # on its connections): left to choose, PostgreSQL planned the list statement anew on every
    # execution in some runs (8.8k TPS) and not in others (19.3k).
    if PGOPTIONS='-c plan_cache_mode=force_generic_plan' \
      "$PGBENCH" -n -M prepared -c "$FLOOR_CLIENTS" -j 2 -T "$DURATION" $(floor_args "$1") "$DB_URL" >"$2" 2>&1; then
      tps=$(sed -n 's/^tps = \([0-9.]*\) (without initial connection time)$/\1/p' "$2")
      return
    fi
    if grep -q 'too many clients' "$2" && ((attempt < 4)); then
      FLOOR_CLIENTS=$((FLOOR_CLIENTS * 3 / 4))
      say "  PostgreSQL has no room for them all: retrying with $FLOOR_CLIENTS clients"
    else
      say "  WARNING: pgbench failed (see $2): $(grep -m1 -i 'error\|fatal' "$2" || tail -1 "$2")"
      return
    fi
  done
}

# --- runs --------------------------------------------------------------------------------------
# sample_rss FILE: keeps the highest VmRSS (kB) and thread count of the server in FILE.
sample_rss() {
  local max_rss=0 max_threads=0 rss threads
  while kill -0 "$SERVER_PID" 2>/dev/null; do
    read -r rss threads < <(awk '/^VmRSS:/ {r = $2} /^Threads:/ {t = $2} END {print r + 0, t + 0}' \
      "/proc/$SERVER_PID/status" 2>/dev/null) || break
    ((rss > max_rss)) && max_rss=$rss
    ((threads > max_threads)) && max_threads=$threads
    echo "$max_rss $max_threads" >"$1"
    sleep 0.2
  done
}

# cpu_ticks PID...: user + system CPU time of the processes, in clock ticks.
cpu_ticks() {
  local pid files=()
  for pid in "$@"; do [ -r "/proc/$pid/stat" ] && files+=("/proc/$pid/stat"); done
  [ ${#files[@]} -gt 0 ] || { echo 0; return; }
  cat "${files[@]}" 2>/dev/null | awk '{sub(/.*\) /, ""); t += $12 + $13} END {print t + 0}'
}
CLK_TCK=$(getconf CLK_TCK)
# per_request TICKS REQUESTS: microseconds of CPU per request ("nan" when not measured).
per_request() { awk -v t="$1" -v r="$2" -v hz="$CLK_TCK" 'BEGIN {print (t > 0 && r > 0) ? sprintf("%.0f", t * 1e6 / hz / r) : "nan"}'; }
# backend_ticks: "pid ticks" for each PostgreSQL backend of the server's pool (when PostgreSQL
# runs on this machine). The pool grows on demand, so a backend may appear during a run.
backend_ticks() {
  local pid
  for pid in $(db -c "SELECT pid FROM pg_stat_activity
                      WHERE datname = 'todo_bench' AND application_name = 'todo-api'"); do
    echo "$pid $(cpu_ticks "$pid")"
  done
}
# backend_ticks_since FILE: CPU ticks the pool's backends used since the snapshot in FILE.
backend_ticks_since() {
  backend_ticks | awk 'NR == FNR {before[$1] = $2; next} {t += $2 - before[$1]} END {print t + 0}' "$1" -
}

RESULTS=$OUT/results.tsv
: >"$RESULTS"
# ceiling_run NAME URL ROUND: the HTTP layer without token or database, at 100 connections.
ceiling_run() {
  local out=$OUT/runs/r$3-$1.txt
  wrk -t2 -c100 -d"${DURATION}s" --latency -s "$LUA/plain.lua" "$2" >"$out" 2>&1 || die "wrk failed for $1"
  local line
  line=$(grep '^BENCH_RESULT' "$out") || die "no result line from wrk for $1 (see $out)"
  printf '%s\t%s\tceiling\t100\t%s\t%s\t%s\t%s\t%s\t%s\n' "$3" "$1" "$(field rps "$line")" \
    "$(field p50_ms "$line")" "$(field p95_ms "$line")" "$(field p99_ms "$line")" "$(field non2xx "$line")" \
    "$(field socket_errors "$line")" >>"$RESULTS"
  say "  $1: ${line#BENCH_RESULT }"
}

for round in $(seq "$ROUNDS"); do
  say "round $round/$ROUNDS: ceilings (rouille hello-world, the API's GET /health)"
  ceiling_run hello "http://127.0.0.1:$HELLO_PORT/" "$round"
  ceiling_run health "$BASE/health" "$round"
  # unlimited and limited swap places every other round: neither always runs second.
  order=()
  for s in "${SCENARIOS[@]}"; do
    if ((round % 2 == 0)); then
      case $s in unlimited) s=limited ;; limited) s=unlimited ;; esac
    fi
    order+=("$s")
  done
  for s in "${order[@]}"; do
    conns=$(connections_of "$s")
    say "round $round/$ROUNDS: $s, API at $conns connections"
    sampler=
    if [ "$s" = mixed1000 ]; then sample_rss "$OUT/rss-$round" & sampler=$!; fi
    pid=$SERVER_PID TARGET=$BASE
    if [ "$s" = limited ] || [ "$s" = unlimited ]; then
      rate=1000000
      [ "$s" = unlimited ] && rate=0
      (run_api "$LIMITED_PORT" RATE_LIMIT_PER_MINUTE=$rate RATE_LIMIT_BURST=1000000) >>"$OUT/limited.log" 2>&1 &
      LIMITED_PID=$! TARGET=http://127.0.0.1:$LIMITED_PORT
      pid=$LIMITED_PID
      wait_ready "$TARGET" "$pid" "$OUT/limited.log"
      # As warm as the main server: its pool grown, its statements prepared.
      TARGET=$TARGET wrk_run "$s" "$conns" 2 2 "$OUT/runs/r$round-$s-warmup.txt" >/dev/null
    fi
    backend_ticks >"$OUT/backends-before"
    server_cpu=$(cpu_ticks "$pid")
    line=$(TARGET=$TARGET wrk_run "$s" "$conns" "$DURATION" 2 "$OUT/runs/r$round-$s-api.txt")
    server_cpu=$(($(cpu_ticks "$pid") - server_cpu))
    pg_cpu=$(backend_ticks_since "$OUT/backends-before")
    [ -n "$sampler" ] && { kill "$sampler" 2>/dev/null || true; wait "$sampler" 2>/dev/null || true; }
    kill -0 "$pid" 2>/dev/null || { tail -20 "$OUT/server.log" >&2; die "the server died during $s"; }
    if [ "$s" = limited ] || [ "$s" = unlimited ]; then
      grep -q ' 429 ' "$OUT/limited.log" && die "the limited server refused requests: limits were in reach"
      stop "$LIMITED_PID"
      LIMITED_PID=
    fi
    requests=$(field requests "$line")
    printf '%s\t%s\tapi\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$s" "$conns" \
      "$(field rps "$line")" "$(field p50_ms "$line")" "$(field p95_ms "$line")" \
      "$(field p99_ms "$line")" "$(field non2xx "$line")" "$(field socket_errors "$line")" \
      "$(per_request "$server_cpu" "$requests")" "$(per_request "$pg_cpu" "$requests")" >>"$RESULTS"
    say "  ${line#BENCH_RESULT } cpu_us_per_request: server=$(per_request "$server_cpu" "$requests") postgres=$(per_request "$pg_cpu" "$requests")"
    if writes "$s"; then reset_writes; fi

    [ "$s" = limited ] || [ "$s" = unlimited ] && continue # their floor is get's
    say "round $round/$ROUNDS: $s, floor at $FLOOR_CLIENTS clients"
    floor_run "$s" "$OUT/runs/r$round-$s-floor.txt"
    printf '%s\t%s\tfloor\t%s\t%s\n' "$round" "$s" "$FLOOR_CLIENTS" "${tps:-nan}" >>"$RESULTS"
    say "  tps=${tps:-n/a}"
    if writes "$s"; then reset_writes; fi
  done
done

# --- report --------------------------------------------------------------------------------------
peak_rss_kb=$(awk '/^VmHWM:/ {print $2}' "/proc/$SERVER_PID/status")
read -r rss_1000 threads_1000 < <(cat "$OUT"/rss-* 2>/dev/null | sort -n | tail -1) || true
stop_server
access=$(grep -c ' access\]' "$OUT/server.log" || true)
statuses=$(awk '/ access\]/ {n[$(NF - 1)]++} END {for (s in n) print s " x" n[s]}' "$OUT/server.log" |
  sort | paste -sd, - | sed 's/,/, /g')
warnings=$(grep -cE '^\[[^]]* (WARN|ERROR) ' "$OUT/server.log" || true)
{
  printf 'date\t%s\n' "$(date -u '+%Y-%m-%d %H:%M UTC')"
  printf 'seconds\t%s\n' "$DURATION"
  printf 'nproc\t%s\n' "$(nproc)"
  printf 'cpu\t%s\n' "$(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -1)"
  printf 'postgres\t%s (%s, max_connections %s, fsync %s)\n' "$(db -c 'SHOW server_version')" \
    "$(python3 -c 'import sys, urllib.parse as u; p = u.urlsplit(sys.argv[1]); print(f"{p.hostname}:{p.port}")' "$DB_URL")" \
    "$(db -c 'SHOW max_connections')" "$(db -c 'SHOW fsync')"
  printf 'wrk\t%s\n' "$(wrk --version 2>&1 | head -1 | cut -d' ' -f1-2)"
  printf 'peak_rss\t%s MB\n' "$((peak_rss_kb / 1024))"
  [ -n "${rss_1000:-}" ] && printf 'rss_1000\t%s MB\n' "$((rss_1000 / 1024))"
  [ -n "${threads_1000:-}" ] && printf 'threads_1000\t%s\n' "$threads_1000"
  printf 'server_settings\tWORKERS=%s DB_POOL_SIZE=%s MAX_CONNECTIONS=%s DB_PREPARED_STATEMENTS=%s, log level info\n' \
    "${WORKERS:-32}" "${DB_POOL_SIZE:-16}" "${MAX_CONNECTIONS:-4096}" "${DB_PREPARED_STATEMENTS:-auto}"
  printf 'server_log\t%s access lines (status: %s), %s warnings/errors\n' "$access" "$statuses" "$warnings"
    printf 'floor_note\t%s\n' "PostgreSQL may not allow 1000 connections; $FLOOR_NOTE"
} >"$OUT/meta.tsv"
python3 scripts/bench/report.py "$RESULTS" "$OUT/meta.tsv" | tee "$OUT/results.md"
