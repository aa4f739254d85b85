#!/usr/bin/env bash
# Installs the Debian packages the local stack runs, only those missing.
set -euo pipefail
declare -A need=(
  [redis-server]=redis-server
  [redis-sentinel]=redis-sentinel
  [prometheus]=prometheus
  [prometheus-alertmanager]=prometheus-alertmanager
  [chromium]=chromium
  [openssl]=openssl
)
missing=()
for bin in "${!need[@]}"; do command -v "$bin" >/dev/null 2>&1 || missing+=("${need[$bin]}"); done
ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || missing+=(postgresql)
[ ${#missing[@]} -eq 0 ] && exit 0
if ! command -v apt-get >/dev/null; then
  echo "missing packages: ${missing[*]}; install them with your package manager (Debian names)" >&2
  exit 1
fi
sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "installing Debian packages: ${missing[*]}" >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
