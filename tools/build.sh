#!/usr/bin/env bash
# Builds one pinned third-party tool from its Go module into .tools/bin.
# Each tools/<name>/go.mod pins the version (a `tool` directive plus go.sum);
# a stamp next to the binary records which go.mod it was built from, so a
# build happens once per version and `task setup` costs nothing afterwards.
set -euo pipefail
name="${1:?usage: tools/build.sh <tool> (one of: $(ls -d "$(dirname "$0")"/*/ | xargs -n1 basename | tr '\n' ' '))}"
root="$(cd "$(dirname "$0")/.." && pwd)"
src="$root/tools/$name"
out="$root/.tools/bin"
[ -f "$src/go.mod" ] || { echo "tools/build.sh: no tool '$name' (expected $src/go.mod)" >&2; exit 2; }
# A tool of the project's own (tools/chaos-mesh-validate) also has its main.go in the stamp.
shopt -s nullglob
sources=("$src"/*.go)
stamp="$(cat "$src/go.mod" "$src/go.sum" "${sources[@]}" | sha256sum | cut -c1-16)"
if [ -x "$out/$name" ] && [ "$(cat "$out/$name.stamp" 2>/dev/null)" = "$stamp" ]; then
  exit 0
fi
command -v go >/dev/null || { echo "tools/build.sh: Go is needed to build $name (https://go.dev/dl)" >&2; exit 1; }
pkg="$(awk '/^tool /{print $2}' "$src/go.mod")"
mkdir -p "$out"
echo "building $name ($pkg) ..." >&2
start=$SECONDS
(cd "$src" && GOFLAGS=-mod=readonly go build -trimpath -o "$out/$name.tmp" "$pkg")
mv "$out/$name.tmp" "$out/$name"
echo "$stamp" > "$out/$name.stamp"
echo "built $name in $((SECONDS - start)) s" >&2
