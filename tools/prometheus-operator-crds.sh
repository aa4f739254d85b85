#!/usr/bin/env bash
# Copies the PrometheusRule CRD of the pinned Prometheus Operator module into
# .tools/prometheus-operator-crds, once per pin. gateway/test/deploy.test.ts
# installs it in the harness's kube-apiserver, so the PrometheusRule of
# gateway/deploy/base is admitted by the operator's real schema.
#
# Only the main module carries the CRDs (example/prometheus-operator-crd/);
# one file of it is taken, nothing is built.
# v0.85.0 is the newest version of the main module the Go module proxy serves
# here; to move the pin: `go list -m -versions github.com/prometheus-operator/prometheus-operator`.
set -euo pipefail
version=v0.85.0
root="$(cd "$(dirname "$0")/.." && pwd)"
out="$root/.tools/prometheus-operator-crds"
if [ "$(cat "$out/.version" 2>/dev/null)" = "$version" ]; then
  exit 0
fi
command -v go >/dev/null || { echo "tools/prometheus-operator-crds.sh: Go is needed to download the Prometheus Operator module (https://go.dev/dl)" >&2; exit 1; }
echo "extracting the PrometheusRule CRD (Prometheus Operator $version) ..." >&2
# Outside any module, so no go.mod around decides what is downloaded.
dir="$(cd / && go mod download -json "github.com/prometheus-operator/prometheus-operator@$version" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')"
crd="$dir/example/prometheus-operator-crd/monitoring.coreos.com_prometheusrules.yaml"
[ -f "$crd" ] || { echo "tools/prometheus-operator-crds.sh: no $crd in the module (Dir: '$dir')" >&2; exit 1; }
rm -rf "$out.tmp"
mkdir -p "$out.tmp"
cp "$crd" "$out.tmp/"
chmod u+w "$out.tmp"/* # the module cache is read-only
echo "$version" > "$out.tmp/.version"
rm -rf "$out"
mv "$out.tmp" "$out"
