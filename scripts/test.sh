#!/usr/bin/env bash
# Runs Quartet's whole test suite: unit, integration (pion clients),
# fuzz seeds and end-to-end browser tests, with the race detector.
# It installs the tools the tests need (Debian's chromium, coturn for its
# turnutils_* clients, and iproute2's tc and util-linux's unshare for the
# shaped-link browser test) when missing.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v turnutils_uclient >/dev/null 2>&1 || missing+=(coturn)
command -v tc >/dev/null 2>&1 || missing+=(iproute2)
command -v unshare >/dev/null 2>&1 || missing+=(util-linux)
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

# Installing coturn may start its turnserver service (on systemd hosts) on
# port 3478. The tests use random ports, but a TURN server nobody asked for
# should not keep running: stop the package's service, and only that.
if [[ " ${missing[*]} " == *" coturn "* ]]; then
  sudo=()
  [ "$(id -u)" = 0 ] || sudo=(sudo)
  if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet coturn 2>/dev/null; then
    "${sudo[@]}" systemctl disable --now coturn || true
  elif [ -x /etc/init.d/coturn ]; then
    "${sudo[@]}" /etc/init.d/coturn stop >/dev/null 2>&1 || true
  fi
fi

# Type-check the browser SDK and app (web/jsconfig.json) with the
# typescript pinned in web/package-lock.json. Node and npm come from
# Debian's nodejs and npm packages when missing; npm ci runs again when
# the lockfile is newer than the install.
if ! command -v npm >/dev/null 2>&1; then
  as_root=()
  if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null 2>&1 || { echo "missing test tools: nodejs npm (install them with apt-get)" >&2; exit 1; }
    as_root=(sudo)
  fi
  echo "installing test tools: nodejs npm"
  "${as_root[@]}" apt-get update -qq
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi
if [ ! -e web/node_modules/.package-lock.json ] || [ web/package-lock.json -nt web/node_modules/.package-lock.json ]; then
  (cd web && npm ci --no-audit --no-fund)
fi
(cd web && npm run --silent typecheck)

go vet ./...
go test -race -count=1 -timeout 20m ./...
# Allocation tests need a build without the race detector.
go test -count=1 -run Allocations ./...
