#!/usr/bin/env bash
# Checks Cargo.lock against the RustSec advisory database with cargo-audit (installed first if
# missing). Without arguments cargo-audit fetches the database from GitHub.
#
#   scripts/audit.sh                 # fetch the database, then audit
#   scripts/audit.sh --db DIR        # use a local clone of rustsec/advisory-db, no fetch
#
# Further arguments go to `cargo audit` unchanged (e.g. `--stale` for an old local clone).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! cargo audit --version >/dev/null 2>&1; then
  cargo install cargo-audit --locked
fi

if [ "${1:-}" = "--db" ]; then
  if [ -z "${2:-}" ]; then
    echo "usage: $0 [--db DIR] [cargo-audit options]" >&2
    exit 2
  fi
  db=$2
  shift 2
  exec cargo audit --db "$db" --no-fetch "$@"
fi
exec cargo audit "$@"
