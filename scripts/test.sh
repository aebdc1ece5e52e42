#!/usr/bin/env bash
# Runs Quartet's whole test suite: unit, integration (pion clients),
# fuzz seeds and end-to-end browser tests, with the race detector.
# It installs the tools the tests need (Debian's chromium) when missing.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "installing test tools: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  elif command -v sudo >/dev/null 2>&1; then
    sudo apt-get update -qq
    sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "missing test tools: ${missing[*]} (install them with apt-get)" >&2
  fi
fi

go vet ./...
go test -race -count=1 -timeout 20m ./...
# Allocation tests need a build without the race detector.
go test -count=1 -run Allocations ./...
