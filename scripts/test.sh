#!/usr/bin/env bash
# Runs the whole test suite against a real PostgreSQL (started here if none is running).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/pg.sh
ensure_postgres target/pg-test 54329
PG_URL=$PG_URL cargo test "$@"
