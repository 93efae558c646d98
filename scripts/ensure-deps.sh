#!/usr/bin/env bash
# Installs what Kiln needs to build and test, when it is missing: hiredis (headers + library),
# redis-server, pkg-config; with --hosts also iproute2 (`ip netns`, for make test-hosts). Safe to run
# repeatedly; does nothing when all is present.
set -euo pipefail

missing=()
{ [ -f /usr/include/hiredis/hiredis.h ] || pkg-config --exists hiredis 2>/dev/null; } || missing+=(libhiredis-dev)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v redis-benchmark >/dev/null 2>&1 || missing+=(redis-tools)
command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
if [ "${1:-}" = --hosts ]; then command -v ip >/dev/null 2>&1 || missing+=(iproute2); fi

[ ${#missing[@]} -eq 0 ] && exit 0

echo "installing: ${missing[*]}" >&2
SUDO=""
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    echo "error: need root (or sudo) to install ${missing[*]}; install them and re-run" >&2; exit 1
  fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
# The Debian package starts a system redis on 6379; Kiln's demo and tests start their own.
