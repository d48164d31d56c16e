#!/usr/bin/env bash
# Measure aagtm with many databases: false verdicts at start, agent and node
# memory and CPU, DNS QPS over every name, and how fast every answer moves
# when a region's server hangs.
#
# Builds the aagtm binary and bench/scale (main.go), which starts three
# redis-servers (one per region), N databases × 3 members (one per region;
# by default each database on its own logical database number, i.e. its
# own endpoint as with a port per database on Redis Software), three
# `aagtm probe` agents and one `aagtm serve` node, then prints:
#   1. members ever down, failover events and answers that moved in the
#      first DURATION from the agents' start (all false: nothing failed);
#   2. peak RSS and CPU of each agent and of the node;
#   3. DNS queries/s over all N names (dnsperf, or a Go loop without it);
#   4. SIGSTOP of the us-east server: time until every us-east answer left
#      it, against fall × interval + timeout + 1s.
# Targets at 10,000 members per agent (N=3334): 0 false verdicts, agent RSS
# ≤ 200 MB, node RSS ≤ 300 MB, every answer moved within the bound.
# Needs redis-server and Go; dnsperf if installed. Each size takes about
# DURATION + QPS_DURATION + 15s.
#
# Settings (environment): N="334 1000 3334" (one run per value)
#   DURATION=60s QPS_DURATION=10s INTERVAL=1s TIMEOUT=500ms FALL=2
#   CHECKS=ping ENDPOINTS=db (or shared) AGENTS=use,euw,aps (the agents
#   run, by region; the others' vantages abstain) AGENT_GOGC= (GOGC of the agents only; default: aagtm probe's own, 50)
#   KEEP=0 (1: keep config and logs)
set -euo pipefail

N=${N:-"334 1000 3334"}
DURATION=${DURATION:-60s}
QPS_DURATION=${QPS_DURATION:-10s}
INTERVAL=${INTERVAL:-1s}
TIMEOUT=${TIMEOUT:-500ms}
FALL=${FALL:-2}
CHECKS=${CHECKS:-ping}
ENDPOINTS=${ENDPOINTS:-db}
AGENTS=${AGENTS:-use,euw,aps}
AGENT_GOGC=${AGENT_GOGC:-}
KEEP=${KEEP:-0}

cd "$(dirname "$0")/../.."
GO=$(command -v go || echo /usr/local/go/bin/go)
command -v redis-server >/dev/null || { echo "run.sh: redis-server not found (apt-get install -y redis-server)" >&2; exit 1; }
# 10,000 members per agent: each agent and each server holds ~10k sockets.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

echo "building..."
"$GO" build -o "$tmp/aagtm" ./cmd/aagtm
"$GO" build -o "$tmp/scale" ./bench/scale

keep=()
[ "$KEEP" = 1 ] && keep=(-keep)
for n in $N; do
  echo
  "$tmp/scale" -aagtm "$tmp/aagtm" -n "$n" -duration "$DURATION" -qps-duration "$QPS_DURATION" \
    -interval "$INTERVAL" -timeout "$TIMEOUT" -fall "$FALL" -checks "$CHECKS" -endpoints "$ENDPOINTS" -agents "$AGENTS" -agent-gogc "$AGENT_GOGC" "${keep[@]}"
done
