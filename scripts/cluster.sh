#!/usr/bin/env bash
# Two instances of the server behind nginx on one port, checked end to end:
#
#   scripts/cluster.sh
#
# 1. Builds the release binary, finds PostgreSQL (scripts/pg.sh: $PG_URL, else 127.0.0.1:5432,
#    else a throwaway cluster under target/pg-cluster), creates a fresh database and a secret.
# 2. Starts two instances on the same database and secret at the same moment: the migrations
#    run under an advisory lock, so exactly one instance applies them and the other waits.
# 3. Starts nginx (Debian's package, installed if missing) with its own config, pid file, logs
#    and temp paths under target/cluster/: an upstream of both instances with keep-alive
#    connections, X-Request-Id passed through (or set by nginx when the client sent none).
# 4. Runs scripts/smoke.sh through nginx, checks that a request id reaches an instance, then
#    a short load with wrk (installed if missing): CLUSTER_REQUESTS (2000) requests from 8
#    connections, as 24 users, a quarter of them creates, the rest lists.
# 5. Counts each instance's access-log lines (one per request, target `access`, on stderr) and
#    nginx's, and checks that both instances served, that every request nginx logged reached
#    exactly one instance, that the load saw only 2xx, and that every acknowledged create is
#    stored. Everything started here is stopped on exit; the database is dropped.
#
# DB_POOL_SIZE (8 here) and other server variables in the environment pass through.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
DIR=$ROOT/target/cluster
REQUESTS=${CLUSTER_REQUESTS:-2000}
THREADS=8 # wrk threads, one connection each (see the load section)

say() { printf '[cluster] %s\n' "$*" >&2; }
die() { say "FAIL: $*"; exit 1; }

free_port() {
  local port taken=" ${*:-} "
  # below the kernel's ephemeral range, which outgoing connections and port-0 listeners use
  local low=20000 high
  high=$(awk '{ print $1 }' /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
  [ "$high" -gt $((low + 1000)) ] || { low=$((high - 4000)); [ "$low" -gt 1024 ] || low=1025; }
  for _ in $(seq 1 200); do
    port=$((low + RANDOM % (high - low)))
    [[ $taken == *" $port "* ]] && continue
    if ! ss -Htln "sport = :$port" 2>/dev/null | grep -q .; then
      echo "$port"
      return
    fi
  done
  return 1
}

install_missing() { # install_missing COMMAND PACKAGE
  command -v "$1" >/dev/null || [ -x "/usr/sbin/$1" ] && return
  say "installing $2 from Debian's packages"
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2"; } >&2
}
install_missing nginx nginx
install_missing wrk wrk
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

# --- build, database, secret -------------------------------------------------------------------
say "building the release binary"
cargo build --release
BIN=$ROOT/target/release/todo-api

. scripts/pg.sh
ensure_postgres target/pg-cluster 54330
PSQL=$(pg_bin psql)
DIRECT_BASE=${PG_URL%%\?*}
DIRECT_BASE=${DIRECT_BASE%/*}
QUERY=
[[ $PG_URL == *\?* ]] && QUERY="?${PG_URL#*\?}"

rm -rf "$DIR"
mkdir -p "$DIR/tmp"

A_PID=
B_PID=
NGINX_PID=
WRK_PID=
DB=
cleanup() {
  local status=$? pid
  set +e
  [ -n "$WRK_PID" ] && kill -INT "$WRK_PID" 2>/dev/null && wait "$WRK_PID" 2>/dev/null
  [ -n "$NGINX_PID" ] && kill -QUIT "$NGINX_PID" 2>/dev/null && wait "$NGINX_PID" 2>/dev/null
  for pid in $A_PID $B_PID; do kill -TERM "$pid" 2>/dev/null; done
  for pid in $A_PID $B_PID; do wait "$pid" 2>/dev/null; done
  [ -n "$DB" ] && "$PSQL" "$PG_URL" -qc "DROP DATABASE IF EXISTS \"$DB\" WITH (FORCE)" >/dev/null 2>&1
  [ -n "${PG_CLUSTER_DATA:-}" ] && stop_cluster "$PG_CLUSTER_DATA"
  exit $status
}
trap cleanup EXIT # replaces pg.sh's trap: cleanup stops its cluster too
trap 'exit 130' INT TERM

DB=todo_cluster_$$
"$PSQL" "$PG_URL" -qc "CREATE DATABASE \"$DB\""
DATABASE_URL=$DIRECT_BASE/$DB$QUERY
SECRET=$(openssl rand -hex 32)
PORT_A=$(free_port)
PORT_B=$(free_port "$PORT_A")

RESULTS=()
failed=0
check() { # check NAME PASS|FAIL [detail]
  RESULTS+=("$(printf '%-4s %s%s' "$2" "$1" "${3:+: $3}")")
  [ "$2" = PASS ] || failed=1
}

# --- two instances, started at the same moment -------------------------------------------------
# Each waits for the file $DIR/go, then execs the server (from $DIR, so no .env applies).
start_instance() { # start_instance NAME PORT
  (
    cd "$DIR"
    until [ -e go ]; do sleep 0.005; done
    # Rate limits off: the load below is a few users at thousands of requests a minute.
    exec env DATABASE_URL="$DATABASE_URL" BETTER_AUTH_SECRET="$SECRET" HOST=127.0.0.1 PORT="$2" \
      DB_POOL_SIZE="${DB_POOL_SIZE:-8}" RUST_LOG="${RUST_LOG:-info}" RATE_LIMIT_PER_MINUTE=0 "$BIN"
  ) 2>"$DIR/$1.log" &
}
start_instance a "$PORT_A"
A_PID=$!
start_instance b "$PORT_B"
B_PID=$!
say "starting instances a (127.0.0.1:$PORT_A) and b (127.0.0.1:$PORT_B) at once on the new database $DB"
touch "$DIR/go"
for name in a b; do
  pid=$A_PID && [ $name = b ] && pid=$B_PID
  for _ in $(seq 1 600); do
    grep -q "listening on http://" "$DIR/$name.log" && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  grep -q "listening on http://" "$DIR/$name.log" || { cat "$DIR/$name.log" >&2; die "instance $name did not start"; }
done
files=$(find sql/migrations -name '*.sql' | wc -l)
applied_a=$(grep -c "applying migration" "$DIR/a.log" || true)
applied_b=$(grep -c "applying migration" "$DIR/b.log" || true)
rows=$("$PSQL" "$DATABASE_URL" -Atc "SELECT count(*) FROM schema_migrations")
detail="$files migration file(s); a applied $applied_a, b applied $applied_b; schema_migrations has $rows row(s)"
say "both instances listen; $detail"
if [ "$rows" = "$files" ] && [ $((applied_a + applied_b)) = "$files" ]; then
  check "concurrent start: migrations applied exactly once" PASS "$detail"
else
  check "concurrent start: migrations applied exactly once" FAIL "$detail"
fi

# --- nginx -------------------------------------------------------------------------------------
PORT_C=$(free_port "$PORT_A" "$PORT_B")
user_line=
if [ "$(id -u)" = 0 ]; then
  worker=www-data
  id "$worker" >/dev/null 2>&1 || worker=nobody
  user_line="user $worker;"
  chown "$worker" "$DIR/tmp"
fi
cat >"$DIR/nginx.conf" <<EOF
$user_line
daemon off;
worker_processes 2;
pid $DIR/nginx.pid;
error_log $DIR/nginx-error.log warn;

events {
  worker_connections 1024;
}

http {
  # The client's X-Request-Id when it sent one, else nginx's own: the same id in nginx's log,
  # the instance's log and the response.
  map \$http_x_request_id \$req_id {
    ""      \$request_id;
    default \$http_x_request_id;
  }
  log_format cluster '\$status \$upstream_addr \$upstream_status \$req_id \$request_time "\$request"';
  access_log $DIR/nginx-access.log cluster;

  client_body_temp_path $DIR/tmp/client_body;
  proxy_temp_path $DIR/tmp/proxy;
  fastcgi_temp_path $DIR/tmp/fastcgi;
  uwsgi_temp_path $DIR/tmp/uwsgi;
  scgi_temp_path $DIR/tmp/scgi;

  # the server refuses bodies over 64 KiB itself, with a JSON 413
  client_max_body_size 1m;

  upstream todo_api {
    server 127.0.0.1:$PORT_A;
    server 127.0.0.1:$PORT_B;
    keepalive 32;
    # below the server's IDLE_TIMEOUT_SECONDS (60), so nginx never reuses a connection the
    # server is closing
    keepalive_timeout 30s;
  }

  server {
    listen 127.0.0.1:$PORT_C;

    location / {
      proxy_pass http://todo_api;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host \$host;
      proxy_set_header X-Request-Id \$req_id;
      proxy_set_header X-Real-IP \$remote_addr;
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto \$scheme;
      proxy_connect_timeout 2s;
      proxy_read_timeout 35s;
    }
  }
}
EOF
"$NGINX" -t -q -p "$DIR" -e "$DIR/nginx-error.log" -c "$DIR/nginx.conf" ||
  { cat "$DIR/nginx-error.log" >&2; die "nginx rejects its configuration"; }
"$NGINX" -p "$DIR" -e "$DIR/nginx-error.log" -c "$DIR/nginx.conf" &
NGINX_PID=$!
BASE=http://127.0.0.1:$PORT_C
for _ in $(seq 1 100); do
  [ "$(curl -s -o /dev/null -w '%{http_code}' "$BASE/health" 2>/dev/null)" = 200 ] && break
  kill -0 "$NGINX_PID" 2>/dev/null || { cat "$DIR/nginx-error.log" >&2; die "nginx exited"; }
  sleep 0.1
done
say "nginx $("$NGINX" -v 2>&1 | sed 's/.*nginx\///') listens on $BASE, upstream a=:$PORT_A b=:$PORT_B"

# --- smoke test through nginx ----------------------------------------------------------------------
if BETTER_AUTH_SECRET=$SECRET scripts/smoke.sh "$BASE"; then
  check "scripts/smoke.sh through nginx" PASS
else
  check "scripts/smoke.sh through nginx" FAIL
fi

# --- request id --------------------------------------------------------------------------------------
rid=cluster-check-$(openssl rand -hex 6)
echoed=$(curl -s -o /dev/null -D - -H "X-Request-Id: $rid" "$BASE/health" | tr -d '\r' |
  sed -n 's/^[Xx]-[Rr]equest-[Ii]d: //p')
in_logs=$(cat "$DIR/a.log" "$DIR/b.log" | grep -c " access\] $rid " || true)
detail="sent $rid, response carried ${echoed:-nothing}, $in_logs instance access-log line(s) name it"
if [ "$echoed" = "$rid" ] && [ "$in_logs" = 1 ]; then
  check "X-Request-Id passes through nginx" PASS "$detail"
else
  check "X-Request-Id passes through nginx" FAIL "$detail"
fi

# --- load ------------------------------------------------------------------------------------------
. scripts/jwt.sh
: >"$DIR/tokens.txt"
for i in $(seq 1 24); do BETTER_AUTH_SECRET=$SECRET jwt "load-user-$i" 600 >>"$DIR/tokens.txt"; echo >>"$DIR/tokens.txt"; done

# One connection per wrk thread: a thread stops itself in response() after its share, when it
# has no request in flight, so the run is exactly REQUESTS requests and none is cut off.
cat >"$DIR/load.lua" <<'EOF'
local all = {}
function setup(thread)
  table.insert(all, thread)
  thread:set("id", #all)
end

function init(args)
  tokens = {}
  for line in io.lines(args[1]) do tokens[#tokens + 1] = "Bearer " .. line end
  quota = tonumber(args[2])
  sent, received, tally = 0, 0, {}
end

function request()
  sent = sent + 1
  local auth = tokens[(id * 5 + sent) % #tokens + 1]
  if sent % 4 == 0 then
    return wrk.format("POST", "/api/tasks",
      { Authorization = auth, ["Content-Type"] = "application/json" },
      string.format('{"title":"load %d-%d","description":"through nginx"}', id, sent))
  elseif sent % 4 == 1 then
    return wrk.format("GET", "/api/tasks?sort=title&order=asc&limit=10", { Authorization = auth })
  end
  return wrk.format("GET", "/api/tasks?limit=20", { Authorization = auth })
end

function response(status, headers, body)
  received = received + 1
  local key = tostring(status)
  tally[key] = (tally[key] or 0) + 1
  if received >= quota then wrk.thread:stop() end
end

function done(summary, latency, requests)
  local total, line = {}, {}
  for _, thread in ipairs(all) do
    for status, n in pairs(thread:get("tally")) do total[status] = (total[status] or 0) + n end
  end
  for status, n in pairs(total) do line[#line + 1] = status .. "=" .. n end
  table.sort(line)
  io.write("statuses: ", table.concat(line, " "), "\n")
end
EOF

mark_nginx=$(wc -l <"$DIR/nginx-access.log")
mark_a=$(wc -l <"$DIR/a.log")
mark_b=$(wc -l <"$DIR/b.log")
per_thread=$(((REQUESTS + THREADS - 1) / THREADS))
say "load: wrk, $THREADS connections, $per_thread requests each, 24 users (1/4 creates, 3/4 lists)"
wrk -t "$THREADS" -c "$THREADS" -d 300s --latency -s "$DIR/load.lua" "$BASE" -- \
  "$DIR/tokens.txt" "$per_thread" >"$DIR/wrk.txt" 2>&1 &
WRK_PID=$!
# wrk's main thread sleeps for the whole -d even when every thread has stopped itself; once
# nginx has logged every request, SIGINT makes it print its report at once.
expected=$((mark_nginx + per_thread * THREADS))
for _ in $(seq 1 3000); do
  [ "$(wc -l <"$DIR/nginx-access.log")" -ge "$expected" ] && break
  kill -0 "$WRK_PID" 2>/dev/null || break
  sleep 0.1
done
sleep 0.5
kill -INT "$WRK_PID" 2>/dev/null || true
wait "$WRK_PID" || { cat "$DIR/wrk.txt" >&2; die "wrk failed"; }
WRK_PID=
grep -E 'requests in|Requests/sec|Latency|50%|99%|Non-2xx|Socket errors|statuses:' "$DIR/wrk.txt" | sed 's/^ */  /' >&2

# Counts after the marks: the load only.
load_nginx=$(tail -n +$((mark_nginx + 1)) "$DIR/nginx-access.log")
nginx_total=$(grep -c . <<<"$load_nginx" || true)
nginx_non2xx=$(awk '$1 !~ /^2/' <<<"$load_nginx" | grep -c . || true)
by_upstream=$(awk '{ n[$2]++ } END { for (u in n) printf "%s=%d ", u, n[u] }' <<<"$load_nginx")
access_load() { tail -n +$(($2 + 1)) "$DIR/$1.log" | grep ' access\] '; }
load_a=$(access_load a "$mark_a" | grep -c . || true)
load_b=$(access_load b "$mark_b" | grep -c . || true)
inst_non2xx=$({ access_load a "$mark_a"; access_load b "$mark_b"; } | awk '$(NF - 1) !~ /^2/' | grep -c . || true)
wrk_statuses=$(sed -n 's/^statuses: //p' "$DIR/wrk.txt")
wrk_non2xx=$(tr ' ' '\n' <<<"$wrk_statuses" | grep -vc '^2' || true)
created=$(tr ' ' '\n' <<<"$wrk_statuses" | sed -n 's/^201=//p')
stored=$("$PSQL" "$DATABASE_URL" -Atc "SELECT count(*) FROM tasks WHERE title LIKE 'load %'")

say "load through nginx: $nginx_total requests in nginx's log, by upstream: $by_upstream"
say "load per instance (access-log lines): a=$load_a b=$load_b (sum $((load_a + load_b)))"
say "non-2xx during the load: wrk $wrk_non2xx, nginx log $nginx_non2xx, instance logs $inst_non2xx"

detail="wrk saw ${wrk_statuses:-nothing}"
if [ "$nginx_total" -ge "$REQUESTS" ] && [ "$wrk_non2xx" = 0 ] && [ "$nginx_non2xx" = 0 ] && [ "$inst_non2xx" = 0 ]; then
  check "load of $REQUESTS requests: only 2xx" PASS "$detail"
else
  check "load of $REQUESTS requests: only 2xx" FAIL "$detail; $nginx_total in nginx's log, $nginx_non2xx non-2xx there"
fi
detail="a served $load_a, b served $load_b of $nginx_total"
if [ "$load_a" -gt 0 ] && [ "$load_b" -gt 0 ] && [ $((load_a + load_b)) = "$nginx_total" ]; then
  check "both instances served, each request exactly once" PASS "$detail"
else
  check "both instances served, each request exactly once" FAIL "$detail"
fi
if [ -n "$created" ] && [ "$created" = "$stored" ]; then
  check "every acknowledged create is stored" PASS "$created created (201), $stored in the database"
else
  check "every acknowledged create is stored" FAIL "${created:-0} created (201), $stored in the database"
fi

# --- the whole run ----------------------------------------------------------------------------------
all_a=$(grep -c ' access\] ' "$DIR/a.log" || true)
all_b=$(grep -c ' access\] ' "$DIR/b.log" || true)
problems=$(cat "$DIR/a.log" "$DIR/b.log" | grep -E '^\[[^]]* (WARN|ERROR) ' || true)
nginx_problems=$(grep -E '\[(warn|error|crit|alert|emerg)\]' "$DIR/nginx-error.log" || true)
statuses_all=$(awk '{ n[$1]++ } END { for (s in n) printf "%s=%d ", s, n[s] }' "$DIR/nginx-access.log")
say "whole run: nginx logged $(wc -l <"$DIR/nginx-access.log") requests ($statuses_all— the 401/403/404 are the smoke test's own);" \
  "instance access-log lines: a=$all_a b=$all_b"
if [ -z "$problems" ] && [ -z "$nginx_problems" ]; then
  check "no warning or error in the instances' or nginx's logs" PASS
else
  check "no warning or error in the instances' or nginx's logs" FAIL
  printf '%s\n' "$problems" "$nginx_problems" | grep . | head -n 20 >&2
fi

echo
echo "Cluster check: nginx 127.0.0.1:$PORT_C -> todo-api a (:$PORT_A) + b (:$PORT_B), database $DB"
for line in "${RESULTS[@]}"; do echo "  $line"; done
if [ $failed = 0 ]; then
  echo "cluster: PASS (logs in $DIR)"
else
  echo "cluster: FAIL (logs in $DIR)"
  exit 1
fi
