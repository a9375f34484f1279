#!/usr/bin/env bash
# Runs the whole test suite against a real PostgreSQL (started here if none is running).
set -euo pipefail
cd "$(dirname "$0")/.."
# tests/api/metrics.rs reads /metrics with the Prometheus client library's own parser: a Python
# that has it (Debian's python3-prometheus-client, installed if no python3 here has it).
has_parser() { "$1" -c 'import prometheus_client.parser' 2>/dev/null; }
TEST_PYTHON=
for python in python3 /usr/bin/python3; do
  if command -v "$python" >/dev/null && has_parser "$python"; then TEST_PYTHON=$(command -v "$python"); break; fi
done
if [ -z "$TEST_PYTHON" ]; then
  echo "installing Debian's python3-prometheus-client (the /metrics format test)" >&2
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 python3-prometheus-client; } >&2
  TEST_PYTHON=/usr/bin/python3
fi
export TEST_PYTHON
. scripts/pg.sh
ensure_postgres target/pg-test 54329
PG_URL=$PG_URL cargo test "$@"
