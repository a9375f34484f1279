#!/usr/bin/env bash
# Coverage-guided fuzzing (cargo-fuzz, libFuzzer) of the token verifier and the request parsers:
# the targets of the crate in tests/fuzz (`jwt`, `body`, `head`). Runs each target for SECONDS (default
# 60), prints per target the number of executions and whether it crashed, and exits 1 if any did.
#
#   scripts/fuzz.sh [SECONDS]
#   FUZZ_TARGETS=jwt scripts/fuzz.sh 600        # one target only
#   FUZZ_SANITIZER=none scripts/fuzz.sh         # no AddressSanitizer: more executions per second
#
# cargo-fuzz is installed if missing. It passes unstable rustc flags; on a stable toolchain
# RUSTC_BOOTSTRAP=1 (set here) lets rustc accept them. Build output goes to $CARGO_TARGET_DIR
# (default tests/fuzz/target). The corpus grows in tests/fuzz/corpus/<target>, starting from the
# seeds in tests/fuzz/seeds/<target>; failing inputs are written to tests/fuzz/artifacts/<target>.
# Both directories are git-ignored. To replay a failing input:
#   RUSTC_BOOTSTRAP=1 cargo fuzz run --fuzz-dir tests/fuzz <target> tests/fuzz/artifacts/<target>/<file>
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

usage() {
  echo "usage: $0 [SECONDS]   (SECONDS per target, a positive integer, default 60)" >&2
  exit 2
}
[ $# -le 1 ] || usage
seconds=${1:-60}
[[ $seconds =~ ^[1-9][0-9]*$ ]] || usage

fuzz_dir=$root/tests/fuzz
targets=${FUZZ_TARGETS:-jwt body head}
sanitizer=${FUZZ_SANITIZER:-address}
target_dir=${CARGO_TARGET_DIR:-$fuzz_dir/target}
case $target_dir in /*) ;; *) target_dir=$root/$target_dir ;; esac
logs=$target_dir/fuzz-logs
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz: installing cargo-fuzz" >&2
  cargo install cargo-fuzz --version "${CARGO_FUZZ_VERSION:-0.13.2}" --locked
fi

fuzz=(cargo fuzz)
common=(--fuzz-dir "$fuzz_dir" --target-dir "$target_dir" --sanitizer "$sanitizer")

# Build everything first, so that a build failure is not mistaken for a crash.
for target in $targets; do
  "${fuzz[@]}" build "${common[@]}" "$target"
done

# Extra libFuzzer flags per target: the jwt target needs inputs past the 8192-byte token limit.
max_len() {
  case $1 in
    jwt) echo 9000 ;;
    *) echo 4096 ;;
  esac
}

mkdir -p "$logs"
summary=()
crashed=0
for target in $targets; do
  corpus=$fuzz_dir/corpus/$target
  artifacts=$fuzz_dir/artifacts/$target
  log=$logs/$target.log
  stamp=$logs/$target.started
  mkdir -p "$corpus" "$artifacts"
  touch "$stamp"
  flags=(
    -max_total_time="$seconds"
    -timeout=10
    -max_len="$(max_len "$target")"
    -print_final_stats=1
    -artifact_prefix="$artifacts/"
  )
  if [ -f "$fuzz_dir/dict/$target.dict" ]; then
    flags+=(-dict="$fuzz_dir/dict/$target.dict")
  fi
  echo "fuzz: $target for ${seconds}s (log: $log)"
  status=0
  started=$SECONDS
  "${fuzz[@]}" run "${common[@]}" "$target" "$corpus" "$fuzz_dir/seeds/$target" -- "${flags[@]}" \
    >"$log" 2>&1 || status=$?
  elapsed=$((SECONDS - started))

  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  if [ -z "$runs" ]; then
    runs=$(sed -n 's/^#\([0-9][0-9]*\)[[:space:]].*/\1/p' "$log" | tail -n 1)
  fi
  runs=${runs:-0}
  found=$(find "$artifacts" -type f -newer "$stamp")
  if [ "$status" -eq 0 ] && [ -z "$found" ]; then
    result="no crash"
  else
    result="CRASHED (exit $status)"
    crashed=1
    echo "---- $target: from $log ----"
    # The panic message, libFuzzer's verdict and the failing input; or the log's end.
    grep -m 1 -A 2 'panicked at' "$log" || true
    grep -E '^(==[0-9]+== ERROR|SUMMARY): ' "$log" || tail -n 40 "$log"
    echo "----"
    for input in $found; do
      echo "failing input: $input"
      echo "replay: RUSTC_BOOTSTRAP=1 cargo fuzz run --fuzz-dir tests/fuzz $target ${input#"$root"/}"
    done
  fi
  summary+=("$(printf '%-6s %12s executions in %3ss  corpus %s files  %s' \
    "$target" "$runs" "$elapsed" "$(find "$corpus" -type f | wc -l)" "$result")")
done

echo
echo "fuzz summary (sanitizer: $sanitizer):"
printf '  %s\n' "${summary[@]}"
exit "$crashed"
