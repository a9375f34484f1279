#!/usr/bin/env bash
# Runs the server. With no DATABASE_URL (in the environment or .env), it starts a throwaway
# local PostgreSQL cluster under target/ and generates a development secret, so it works as is.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/pg.sh
from_dotenv() { [ -f .env ] && grep -qE "^[[:space:]]*(export[[:space:]]+)?$1=" .env; }
if [ -z "${DATABASE_URL:-}" ] && ! from_dotenv DATABASE_URL; then
  ensure_postgres target/pg-dev 54328
  psql_url=${PG_URL%/postgres}
  if ! "$(pg_bin psql)" "$PG_URL" -Atqc "SELECT 1 FROM pg_database WHERE datname = 'todo_dev'" | grep -q 1; then
    "$(pg_bin psql)" "$PG_URL" -qc "CREATE DATABASE todo_dev"
  fi
  export DATABASE_URL=$psql_url/todo_dev
  echo "using the local database $DATABASE_URL" >&2
fi
if [ -z "${BETTER_AUTH_SECRET:-}" ] && ! from_dotenv BETTER_AUTH_SECRET; then
  mkdir -p target
  [ -s target/dev-secret ] || openssl rand -hex 32 >target/dev-secret
  BETTER_AUTH_SECRET=$(cat target/dev-secret)
  export BETTER_AUTH_SECRET
  echo "using the development secret in target/dev-secret" >&2
fi
cargo build --release --quiet
exec target/release/todo-api "$@"
