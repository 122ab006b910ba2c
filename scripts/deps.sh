#!/usr/bin/env bash
# Installs the OS packages the local run and the tests need (PostgreSQL and
# Redis servers) when they are missing. Debian/Ubuntu only; needs root (or
# sudo) when something must be installed. Does nothing when all is present.
set -euo pipefail

have_postgres() {
  command -v postgres >/dev/null 2>&1 && command -v initdb >/dev/null 2>&1 && return 0
  compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null && compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null
}
have_redis() { command -v redis-server >/dev/null 2>&1; }

missing=()
have_postgres || missing+=(postgresql)
have_redis || missing+=(redis-server)
[ ${#missing[@]} -eq 0 ] && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
  echo "deps: missing ${missing[*]} and no apt-get here; install them with your package manager" >&2
  exit 1
fi
SUDO=
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO=sudo; else
    echo "deps: missing ${missing[*]}; run 'make deps' as root to install them" >&2
    exit 1
  fi
fi
echo "deps: installing ${missing[*]} from the OS packages" >&2
export DEBIAN_FRONTEND=noninteractive
# Stop the packages from starting their own system-wide servers: we start
# our own, on our own ports (policy-rc.d answers "not allowed").
policy=/usr/sbin/policy-rc.d
created_policy=
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
  $SUDO chmod +x "$policy"
  created_policy=1
fi
cleanup() { if [ -n "$created_policy" ]; then $SUDO rm -f "$policy"; fi; }
trap cleanup EXIT
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
have_postgres || { echo "deps: postgresql installed but its binaries were not found" >&2; exit 1; }
have_redis || { echo "deps: redis-server installed but not found" >&2; exit 1; }
echo "deps: ok" >&2
