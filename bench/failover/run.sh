#!/usr/bin/env bash
# Measure failover detection and failback times end to end on loopback.
#
# Builds the aagtm binary and bench/failover (main.go), which starts three
# redis-server members, three `aagtm probe` agents and two `aagtm serve`
# nodes, then for each probe setting
#   1. interval 250ms, fall 2, timeout 200ms
#   2. interval 1s,    fall 3, timeout 500ms
# kills the us-east member KILLS times and measures, per node, kill → the
# answer to us-east clients changes (polled every 10ms with ECS), and
# restart → the answer comes back (failback, including failback_hold).
# Prints p50/p99/max per setting and node against the detection bound
# fall × interval + timeout + 100ms. Takes about 4-5 minutes.
# Needs redis-server (Debian: apt-get install -y redis-server) and Go.
#
# Settings (environment): KILLS=20 HOLD=1s SETTING=0 (1 or 2: only that one)
#   KEEP=0 (1: keep the work folder with config and logs)
set -euo pipefail

KILLS=${KILLS:-20}
HOLD=${HOLD:-1s}
SETTING=${SETTING:-0}
KEEP=${KEEP:-0}

cd "$(dirname "$0")/../.."
GO=$(command -v go || echo /usr/local/go/bin/go)
command -v redis-server >/dev/null || { echo "run.sh: redis-server not found (apt-get install -y redis-server)" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

echo "building..."
"$GO" build -o "$tmp/aagtm" ./cmd/aagtm
"$GO" build -o "$tmp/failover" ./bench/failover

keep=()
[ "$KEEP" = 1 ] && keep=(-keep)
"$tmp/failover" -aagtm "$tmp/aagtm" -kills "$KILLS" -hold "$HOLD" -setting "$SETTING" "${keep[@]}"
