#!/usr/bin/env bash
# Compare how fast a client recovers through DNS and through the Sentinel
# endpoint, in one run (e2e TestSentinelBench, on loopback): three
# redis-server members, three `aagtm probe` agents, two `aagtm serve`
# nodes with nodes[].sentinel, unbound in front of the nodes (TTL 1s), and
# the same go-redis writer (a SET every 20ms, 300ms timeouts) twice: once
# resolving cache.gtm.test through unbound, once as a FailoverClient of
# the Sentinel endpoints. The us-east member is killed, then hung
# (SIGSTOP); each fault is followed by its recovery and failback.
#
# Prints per fault and client: detection (fault → every node answers the
# next member), the longest write gap, gap − detection, and how long after
# the failback hold's end every pooled connection was back on the member.
# Target: Sentinel gap ≤ detection + 150ms, failback within one interval
# (250ms). Takes about a minute. Needs redis-server, unbound and Go.
set -euo pipefail
cd "$(dirname "$0")/../.."
GO=$(command -v go || echo /usr/local/go/bin/go)
for tool in redis-server unbound; do
  command -v "$tool" >/dev/null || { echo "run.sh: $tool not found (apt-get install -y $tool)" >&2; exit 1; }
done
AAGTM_BENCH_SENTINEL=1 "$GO" test ./e2e -run '^TestSentinelBench$' -count=1 -v -timeout 5m 2>&1 |
  grep -E '^(bench/sentinel|\(a new|fault|kill|hang|--- |FAIL|ok)|sentinel_bench_test'
