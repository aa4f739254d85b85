#!/usr/bin/env bash
# Extracts the Chaos Mesh CRDs (config/crd/bases) of the pinned Chaos Mesh
# module into .tools/chaos-mesh-crds, once per pin. The tests install them in
# the harness's kube-apiserver to check chaos/mesh against the real schemas.
#
# The pin is here, not in tools/chaos-mesh-validate/go.mod: requiring the main
# module there would pull its whole dependency graph into the validator's
# build (and it requires chaos-mesh/api v0.0.0, replaced by ./api in its own
# repository). The Go checksum database verifies the download all the same.
# Only @latest pseudo-versions are served by the proxy here; to move the pin:
# `go list -m github.com/chaos-mesh/chaos-mesh@latest`.
set -euo pipefail
version=v0.9.1-0.20260902003049-47411975a8cb
root="$(cd "$(dirname "$0")/.." && pwd)"
out="$root/.tools/chaos-mesh-crds"
if [ "$(cat "$out/.version" 2>/dev/null)" = "$version" ]; then
  exit 0
fi
command -v go >/dev/null || { echo "tools/chaos-mesh-crds.sh: Go is needed to download the Chaos Mesh module (https://go.dev/dl)" >&2; exit 1; }
echo "extracting the Chaos Mesh CRDs ($version) ..." >&2
# Outside any module, so no go.mod around decides what is downloaded.
dir="$(cd / && go mod download -json "github.com/chaos-mesh/chaos-mesh@$version" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')"
[ -d "$dir/config/crd/bases" ] || { echo "tools/chaos-mesh-crds.sh: no config/crd/bases in the module (Dir: '$dir')" >&2; exit 1; }
rm -rf "$out.tmp"
mkdir -p "$out.tmp"
cp "$dir"/config/crd/bases/chaos-mesh.org_*.yaml "$out.tmp/"
chmod u+w "$out.tmp"/* # the module cache is read-only
echo "$version" > "$out.tmp/.version"
rm -rf "$out"
mv "$out.tmp" "$out"
