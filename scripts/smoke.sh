#!/usr/bin/env bash
# Smoke test of a running deployment: health, then the whole life of one recurring task under a
# throwaway user (its fields, a tag filter, its reminder, its next occurrence, the rate-limit
# fields on its responses, /metrics counting them), then one 401 and one 403. Prints one line per step and stops at the first surprise,
# showing the response body of the failing step.
#
#   BETTER_AUTH_SECRET=<the server's secret> scripts/smoke.sh https://api.example.com
#
# Needs only bash, curl, openssl and coreutils. The tokens it mints (HS256, valid 5 minutes) are
# for a user `smoke-<random hex>`; the tasks it creates are deleted again. The user's row in the
# `users` table stays (the API has no way to remove it).
set -euo pipefail

if [ $# -ne 1 ] || [ -z "$1" ]; then
  echo "usage: BETTER_AUTH_SECRET=<secret> $0 BASE_URL" >&2
  exit 2
fi
if [ -z "${BETTER_AUTH_SECRET:-}" ]; then
  echo "smoke: BETTER_AUTH_SECRET is not set: export the secret the server verifies tokens with" >&2
  exit 2
fi
base=${1%/}

tmp=$(mktemp -d)
task_id=
next_id=
deleted=
cleanup() {
  # A run that stopped half way removes the tasks it created, if it can.
  local id
  for id in $task_id $next_id; do
    [ -n "$deleted" ] && break
    curl -sS -o /dev/null --max-time 10 -X DELETE -H "Authorization: Bearer $token" \
      "$base/api/tasks/$id" 2>/dev/null || true
  done
  rm -rf "$tmp"
}
trap cleanup EXIT

# --- tokens ---------------------------------------------------------------------------------

. "$(dirname "$0")/jwt.sh"

run_id=$(openssl rand -hex 6)
user="smoke-$run_id"
other="smoke-other-$(openssl rand -hex 6)"
token=$(jwt "$user")

# --- steps ----------------------------------------------------------------------------------

step=0
name=
status=
body=
headers=

# call NAME METHOD PATH [curl args...]: sends the request; sets status, body and headers.
call() {
  name=$1
  local method=$2 path=$3
  shift 3
  step=$((step + 1))
  body="$tmp/$step.body"
  headers="$tmp/$step.headers"
  : >"$body"
  : >"$headers"
  status=$(curl -sS -o "$body" -D "$headers" -w '%{http_code}' --max-time 15 \
    -X "$method" -H "X-Request-Id: smoke-$run_id-$step" "$@" "$base$path" 2>"$tmp/$step.err") ||
    true
  if [ -z "$status" ] || [ "$status" = 000 ]; then
    status=000
    fail "no HTTP response: $(cat "$tmp/$step.err")"
  fi
}

fail() {
  printf '%-18s %s FAIL\n' "$name" "$status"
  echo "  $1" >&2
  if [ -s "$body" ]; then
    echo "  response body:" >&2
    sed 's/^/    /' "$body" >&2
    echo >&2
  fi
  exit 1
}

pass() { printf '%-18s %s OK\n' "$name" "$status"; }

expect_status() {
  [ "$status" = "$1" ] || fail "expected HTTP $1, got $status"
}

# header NAME: the value of the response header NAME (last one if repeated), without CR.
header() {
  { grep -i "^$1:" "$headers" || true; } | tail -n 1 | cut -d: -f2- | tr -d '\r' | sed 's/^[[:space:]]*//'
}

expect_header() {
  local value
  value=$(header "$1")
  [ -n "$value" ] || fail "response has no $1 header"
  if [ $# -ge 2 ] && [ "$value" != "$2" ]; then
    fail "expected $1: $2, got $1: $value"
  fi
}

expect_body() {
  grep -qF -- "$1" "$body" || fail "response body does not contain $1"
}

auth=(-H "Authorization: Bearer $token")
json=(-H "Content-Type: application/json")

call health GET /health
expect_status 200
expect_body '"status":"ok"'
pass

call ready GET /health/ready
expect_status 200
expect_body '"database":"ok"'
pass

title="smoke test $run_id"
call create POST /api/tasks "${auth[@]}" "${json[@]}" \
  --data-binary "{\"title\":\"$title\",\"description\":\"created by scripts/smoke.sh\",\"priority\":\"high\",
\"tags\":[\" Smoke \"],\"due_date\":\"2030-01-07\",\"remind_at\":\"2020-01-01T00:00:00Z\",\"recurrence\":\"weekly\"}"
expect_status 201
expect_header Location
task_id=$(sed -n 's/.*"id":\([0-9][0-9]*\).*/\1/p' "$body" | head -n 1)
[ -n "$task_id" ] || fail "no numeric \"id\" in the response body"
case $(header Location) in
  */api/tasks/"$task_id") ;;
  *) fail "Location $(header Location) does not name task $task_id" ;;
esac
expect_body "\"title\":\"$title\""
expect_body '"priority":"high","tags":["smoke"],"due_date":"2030-01-07T00:00:00.000000Z"'
expect_body '"recurrence":"weekly"'
pass

call get GET "/api/tasks/$task_id" "${auth[@]}"
expect_status 200
expect_body "\"title\":\"$title\""
pass

call list GET /api/tasks "${auth[@]}"
expect_status 200
expect_header X-Total-Count 1
expect_body "\"id\":$task_id,"
pass

# The list's response again: with limits on, both IETF fields; with RATE_LIMIT_PER_MINUTE=0, neither.
name=rate-limit
if [ -n "$(header RateLimit-Policy)" ]; then
  [[ $(header RateLimit-Policy) =~ ^\"default\"\;q=[0-9]+\;w=60$ ]] ||
    fail "RateLimit-Policy: $(header RateLimit-Policy)"
  [[ $(header RateLimit) =~ ^\"default\"\;r=[0-9]+\;t=[0-9]+$ ]] || fail "RateLimit: $(header RateLimit)"
  printf '%-18s %s OK (%s; %s)\n' "$name" "$status" "$(header RateLimit-Policy)" "$(header RateLimit)"
else
  [ -z "$(header RateLimit)" ] || fail "RateLimit without RateLimit-Policy"
  printf '%-18s %s OK (limits off)\n' "$name" "$status"
fi

# Served only to METRICS_ALLOW (default loopback): from elsewhere a 404 is the right answer.
call metrics GET /metrics
if [ "$status" = 404 ]; then
  printf '%-18s %s OK (not served to this address)\n' "$name" "$status"
else
  expect_status 200
  expect_header Content-Type "text/plain; version=0.0.4; charset=utf-8"
  expect_body '# TYPE todo_api_requests_total counter'
  expect_body 'todo_api_requests_total{route="/api/tasks",method="GET",status="2xx"}'
  expect_body 'todo_api_build_info{version="'
  pass
fi

call filter GET "/api/tasks?tag=smoke&priority=high&sort=due_date" "${auth[@]}"
expect_status 200
expect_header X-Total-Count 1
expect_body "\"id\":$task_id,"
pass

call reminders GET /api/tasks/reminders "${auth[@]}"
expect_status 200
expect_header X-Total-Count 1
expect_body "\"id\":$task_id,"
pass

new_title="$title renamed"
call update PUT "/api/tasks/$task_id" "${auth[@]}" "${json[@]}" \
  --data-binary "{\"title\":\"$new_title\"}"
expect_status 200
expect_body "\"title\":\"$new_title\""
pass

call complete PATCH "/api/tasks/$task_id/complete" "${auth[@]}"
expect_status 200
expect_body '"completed":true'
next_id=$(header Link | sed -n 's|^</api/tasks/\([0-9][0-9]*\)>; rel="next-occurrence"$|\1|p')
[ -n "$next_id" ] || fail "no Link to the next occurrence: $(header Link)"
pass

call next GET "/api/tasks/$next_id" "${auth[@]}"
expect_status 200
expect_body '"completed":false,"priority":"high","tags":["smoke"],"due_date":"2030-01-14T00:00:00.000000Z"'
pass

call delete DELETE "/api/tasks/$task_id" "${auth[@]}"
expect_status 204
pass

call delete-next DELETE "/api/tasks/$next_id" "${auth[@]}"
expect_status 204
deleted=1
pass

call get-deleted GET "/api/tasks/$task_id" "${auth[@]}"
expect_status 404
pass

call no-token GET /api/tasks
expect_status 401
expect_header WWW-Authenticate
pass

call other-user GET "/api/$other/tasks" "${auth[@]}"
expect_status 403
pass

echo "smoke: all $step steps passed against $base"
