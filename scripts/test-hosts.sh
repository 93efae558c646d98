#!/usr/bin/env bash
# make test-hosts (docs/multi-host.md): Kiln workers on four network-namespace "hosts" drain one
# queue against a Redis in a namespace of its own, while one host is cut off and another stalled.
#
# This script is the plumbing: namespaces, veth pairs, a bridge, Redis, cleanup. The run and its
# check are `kiln-chaos hosts run` (Sources/KilnChaos/Hosts*.swift), started in the "ctl" namespace.
#
# Network: everything lives in namespaces named kh<pid>-*. The bridge is inside kh<pid>-br (no
# address: a plain switch); every other namespace has one veth to it, an address in 10.213.7.0/24
# and no other route. The root namespace gets no interface and no address on that network, so
# nothing outside these namespaces can reach it, and nothing in them can reach anything else.
#
#   redis 10.213.7.1   ctl (producer, driver, check) 10.213.7.10   h1..h4 (workers) 10.213.7.11-14
#
# HOSTS_KEEP=1 keeps the ledger and logs of a passing run too (a failing run always keeps them);
# HOSTS_JOBS, HOSTS_SEED and HOSTS_CONCURRENCY (I/O slots per worker) change the run.
#
# Skips (one line, exit 0; with --preflight exit 3, and make then exits 0) only where namespaces cannot be created:
# not root, or `ip netns add` fails.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${HOSTS_BIN:-$PWD/.build/release/kiln-chaos}
NET=10.213.7
HOSTS=(h1 h2 h3 h4)
ID="kh$$"

# --preflight (make test-hosts, before it builds): 0 go on, 3 skipped (one line printed), else error.
# Without it a skip exits 0.
PREFLIGHT=$([ "${1:-}" = --preflight ] && echo 1 || echo 0)
skip() { echo "test-hosts: SKIP — $1 (network namespaces cannot be created here)"; [ "$PREFLIGHT" = 1 ] && exit 3; exit 0; }
die() { echo "test-hosts: error: $1" >&2; exit 2; }

[ "$(id -u)" = 0 ] || skip "not running as root"
scripts/ensure-deps.sh --hosts
IP=$(command -v ip) || die "no 'ip' command after installing iproute2"
if ! err=$("$IP" netns add "$ID-probe" 2>&1); then skip "ip netns add failed: ${err//$'\n'/ }"; fi
"$IP" netns del "$ID-probe"
[ "$PREFLIGHT" = 1 ] && exit 0
[ -x "$BIN" ] || die "$BIN not built (make test-hosts builds it)"
DIR=$(mktemp -d "${TMPDIR:-/tmp}/kiln-hosts-XXXXXX")

# Every process in a namespace, then the namespace (its veth ends and the bridge go with it).
drop_ns() {
  local ns=$1 pids
  pids=$("$IP" netns pids "$ns" 2>/dev/null || true)
  if [ -n "$pids" ]; then
    # shellcheck disable=SC2086
    kill -CONT $pids 2>/dev/null || true
    # shellcheck disable=SC2086
    kill -KILL $pids 2>/dev/null || true
    for _ in $(seq 50); do [ -z "$("$IP" netns pids "$ns" 2>/dev/null || true)" ] && break; sleep 0.1; done
  fi
  "$IP" netns del "$ns" 2>/dev/null || true
}

# Leftovers of earlier runs whose script is gone (a crash, a kill -9): kh<pid>-* with a dead pid,
# and anything already carrying this run's names.
for ns in $("$IP" netns list 2>/dev/null | awk '{print $1}' | grep -E '^kh[0-9]+-' || true); do
  owner=${ns%%-*}; owner=${owner#kh}
  if [ "$owner" = "$$" ] || ! kill -0 "$owner" 2>/dev/null; then
    echo "test-hosts: removing leftover namespace $ns"
    drop_ns "$ns"
  fi
done

NAMESPACES=()
status=1
cleanup() {
  trap - EXIT INT TERM
  for ns in "${NAMESPACES[@]}"; do drop_ns "$ns"; done
  if [ "$status" = 0 ] && [ -z "${HOSTS_KEEP:-}" ]; then rm -rf "$DIR"; else echo "test-hosts: ledger and logs kept in $DIR"; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

"$IP" netns add "$ID-br"
NAMESPACES+=("$ID-br")
"$IP" -n "$ID-br" link set lo up
"$IP" -n "$ID-br" link add br0 type bridge
"$IP" -n "$ID-br" link set br0 up

# One "machine": a namespace with loopback and eth0 (the other veth end is port $name on br0).
add_host() {
  local name=$1 addr=$2 ns="$ID-$1"
  "$IP" netns add "$ns"
  NAMESPACES+=("$ns")
  "$IP" netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1 || true
  "$IP" link add name eth0 netns "$ns" type veth peer name "$name" netns "$ID-br"
  "$IP" -n "$ID-br" link set "$name" master br0 up
  "$IP" -n "$ns" addr add "$addr/24" dev eth0
  "$IP" -n "$ns" link set lo up
  "$IP" -n "$ns" link set eth0 up
}
add_host redis "$NET.1"
add_host ctl "$NET.10"
n=11
for h in "${HOSTS[@]}"; do add_host "$h" "$NET.$n"; n=$((n + 1)); done

# The network must exist only in the namespaces: the root namespace has no address on it.
if "$IP" -4 addr show | grep -q " $NET\."; then die "the root namespace has an address in $NET.0/24; pick another test network"; fi

# Redis on its namespace's address only, protected mode off (nothing else can reach it), no disk.
"$IP" netns exec "$ID-redis" redis-server --bind "$NET.1" --port 6379 --protected-mode no --save "" \
  --appendonly no --dir "$DIR" --logfile "$DIR/redis.log" &
disown $!  # killed with its namespace at the end; no job-control notice then
deadline=$((SECONDS + 30))
until [ "$("$IP" netns exec "$ID-ctl" redis-cli -h "$NET.1" -p 6379 ping 2>/dev/null)" = PONG ]; do
  [ $SECONDS -lt $deadline ] || die "redis did not answer on $NET.1:6379 from the ctl namespace within 30 s (see $DIR/redis.log)"
  sleep 0.1
done

args=(hosts run --ip "$IP" --redis "redis://$NET.1:6379" --bridge "$ID-br" --dir "$DIR")
for h in "${HOSTS[@]}"; do args+=(--host "$h=$ID-$h"); done
# In the background and waited for, so a SIGTERM/SIGINT to this script runs the cleanup at once.
"$IP" netns exec "$ID-ctl" "$BIN" "${args[@]}" &
set +e
wait $!
status=$?
set -e
exit $status
