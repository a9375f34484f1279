#!/usr/bin/env bash
# Checks the Dockerfile's steps on a machine without a Docker engine: builds the binary the
# way the build stage does, from a copy of exactly what the Dockerfile COPYs, and checks
# that every shared library it needs comes from a package the runtime stage installs
# (libssl3) or that Debian slim already has (libc6, libgcc-s1, zlib1g).
set -euo pipefail
cd "$(dirname "$0")/.."

context=$(mktemp -d)
trap 'rm -rf "$context"' EXIT
grep -E '^COPY [^-]' Dockerfile | awk '{ for (i = 2; i < NF; i++) print $i }' | while read -r path; do
  mkdir -p "$context/$(dirname "$path")"
  cp -r "$path" "$context/$path"
done
build=$(grep -E '^RUN cargo build' Dockerfile | sed 's/^RUN //')
echo "context: $(cd "$context" && find . -type f | wc -l) files; running: $build"
(cd "$context" && CARGO_TARGET_DIR="$PWD/target" $build)
binary=$context/target/release/todo-api

allowed="libssl3 libc6 libgcc-s1 zlib1g"
status=0
for lib in $(ldd "$binary" | awk '/=>/ { print $3 }'); do
  package=$( { dpkg -S "$lib" || dpkg -S "$(readlink -f "$lib")" || true; } 2>/dev/null | cut -d: -f1 | head -1)
  case " $allowed " in
    *" ${package:-none} "*) echo "ok: $lib ($package)" ;;
    *) echo "MISSING from the runtime image: $lib (${package:-unknown package})"; status=1 ;;
  esac
done
"$binary" healthcheck >/dev/null 2>&1 && { echo "healthcheck answered 0 with no server"; status=1; }
echo "healthcheck without a server exits non-zero: ok"
[ $status = 0 ] && echo "Dockerfile build steps: ok"
exit $status
