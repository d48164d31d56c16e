#!/usr/bin/env bash
# Benchmark the aagtm DNS server against a bare miekg/dns server with dnsperf.
#
# Builds and starts gtmserver (package dnsserver, 1,000 database hostnames,
# metrics on, rate limiting off: every query comes from one address) and
# baseline (a static-map miekg/dns handler, same names) on loopback, then:
#   1. ROUNDS rounds of DURATION seconds at maximum rate, interleaved
#      gtm, base | base, gtm | ... (ABBA: the machine is shared, and
#      interleaving in alternating order spreads noise and drift over both);
#   2. DURATION seconds against each at half the GTM's mean peak rate (-Q),
#      with per-query latencies (dnsperf -v) for p50/p99.
# Prints QPS, lost queries, latency and the GTM/baseline QPS ratio.
# With PIN=1 (the default when taskset exists and there are 2+ CPUs) the
# servers run on CPU 1 and dnsperf on CPU 0, so that they do not compete for
# one core and the QPS measures a server's capacity on one core.
# Needs dnsperf (Debian: apt-get install -y dnsperf) and Go.
#
# Settings (environment): ROUNDS=2 DURATION=10 WARMUP=2 HOSTS=1000
#   DNSPERF_ARGS="-c 4 -q 100" GTM_PORT=15300 BASE_PORT=15301
#   GTM_ARGS="" (extra gtmserver flags, e.g. "-reuseport 2") PIN=1
#   Both servers inherit the environment, GOGC and GOMAXPROCS included.
set -euo pipefail

ROUNDS=${ROUNDS:-2}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
HOSTS=${HOSTS:-1000}
DNSPERF_ARGS=${DNSPERF_ARGS:-"-c 4 -q 100"}
GTM_PORT=${GTM_PORT:-15300}
BASE_PORT=${BASE_PORT:-15301}
GTM_ARGS=${GTM_ARGS:-}
PIN=${PIN:-auto}
if [ "$PIN" = auto ]; then
	PIN=0
	if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then
		PIN=1
	fi
fi
on_server=()
on_client=()
if [ "$PIN" = 1 ]; then
	on_server=(taskset -c 1)
	on_client=(taskset -c 0)
fi

cd "$(dirname "$0")/../.."
GO=$(command -v go || echo /usr/local/go/bin/go)
command -v dnsperf >/dev/null || { echo "run.sh: dnsperf not found (apt-get install -y dnsperf)" >&2; exit 1; }

tmp=$(mktemp -d)
pids=()
cleanup() {
	for pid in "${pids[@]}"; do
		kill "$pid" 2>/dev/null || true
	done
	for pid in "${pids[@]}"; do
		wait "$pid" 2>/dev/null || true
	done
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "building..."
"$GO" build -o "$tmp/gtmserver" ./bench/dns/gtmserver
"$GO" build -o "$tmp/baseline" ./bench/dns/baseline

"${on_server[@]}" "$tmp/gtmserver" -listen "127.0.0.1:$GTM_PORT" -hosts "$HOSTS" $GTM_ARGS 2>"$tmp/gtm.log" &
pids+=($!)
"${on_server[@]}" "$tmp/baseline" -listen "127.0.0.1:$BASE_PORT" -hosts "$HOSTS" 2>"$tmp/base.log" &
pids+=($!)

for i in $(seq 0 $((HOSTS - 1))); do
	printf 'db%04d.gtm.example.com A\n' "$i"
done >"$tmp/queries"

# Wait until both answer.
for port in "$GTM_PORT" "$BASE_PORT"; do
	for _ in $(seq 50); do
		if dnsperf -s 127.0.0.1 -p "$port" -d "$tmp/queries" -n 1 -t 1 2>/dev/null | grep -q 'Queries lost: *0 '; then
			continue 2
		fi
		sleep 0.1
	done
	echo "run.sh: server on port $port does not answer" >&2
	cat "$tmp"/*.log >&2
	exit 1
done

# field FILE LABEL: the first number after LABEL in dnsperf's summary.
field() { sed -n "s/^ *$2 *\([0-9.]*\).*/\1/p" "$1" | head -1; }

# perf NAME PORT ARGS...: one dnsperf run, summary to $tmp/NAME.
perf() {
	local name=$1 port=$2
	shift 2
	"${on_client[@]}" dnsperf -s 127.0.0.1 -p "$port" -d "$tmp/queries" -l "$DURATION" "$@" >"$tmp/$name" 2>&1
}

# Warm up both (runtime, caches, socket buffers); not measured.
for port in "$GTM_PORT" "$BASE_PORT"; do
	# shellcheck disable=SC2086
	"${on_client[@]}" dnsperf -s 127.0.0.1 -p "$port" -d "$tmp/queries" -l "$WARMUP" $DNSPERF_ARGS >/dev/null 2>&1
done

declare -A qps
printf '\n%-6s %-5s %12s %10s %12s %12s\n' round srv QPS lost% avg_lat_ms stddev_ms
for r in $(seq "$ROUNDS"); do
	order="gtm base"
	[ $((r % 2)) = 0 ] && order="base gtm"
	for srv in $order; do
		port=$GTM_PORT
		[ "$srv" = base ] && port=$BASE_PORT
		# shellcheck disable=SC2086
		perf "$srv-$r" "$port" $DNSPERF_ARGS
		f=$tmp/$srv-$r
		q=$(field "$f" 'Queries per second:')
		qps[$srv]="${qps[$srv]:-} $q"
		lost=$(sed -n 's/^ *Queries lost: *[0-9]* (\([0-9.]*\)%).*/\1/p' "$f")
		avg=$(field "$f" 'Average Latency (s):')
		sd=$(field "$f" 'Latency StdDev (s):')
		printf '%-6s %-5s %12.0f %10s %12.3f %12.3f\n' "$r" "$srv" "$q" "$lost" "$(echo "$avg*1000" | bc -l)" "$(echo "$sd*1000" | bc -l)"
	done
done

mean() { echo "$@" | awk '{s=0; for(i=1;i<=NF;i++) s+=$i; printf "%.0f", s/NF}'; }
gtm_qps=$(mean ${qps[gtm]})
base_qps=$(mean ${qps[base]})
half=$((gtm_qps / 2))
printf '\nmean max QPS: gtm %s, baseline %s, ratio gtm/baseline %.3f (pinned: %s)\n' "$gtm_qps" "$base_qps" "$(echo "$gtm_qps/$base_qps" | bc -l)" "$PIN"

# Latency at half the GTM peak: per-query latencies from dnsperf -v.
printf '\nat -Q %s (half the GTM peak), %ss each:\n' "$half" "$DURATION"
printf '%-5s %10s %8s %10s %10s %10s %10s\n' srv QPS lost% p50_ms p99_ms p99.9_ms max_ms
for srv in gtm base; do
	port=$GTM_PORT
	[ "$srv" = base ] && port=$BASE_PORT
	# shellcheck disable=SC2086
	perf "$srv-half" "$port" -Q "$half" -v $DNSPERF_ARGS
	f=$tmp/$srv-half
	q=$(field "$f" 'Queries per second:')
	lost=$(sed -n 's/^ *Queries lost: *[0-9]* (\([0-9.]*\)%).*/\1/p' "$f")
	awk '/^> / && $2 != "T" {print $NF}' "$f" | sort -g >"$tmp/lat"
	n=$(wc -l <"$tmp/lat")
	pct() { sed -n "$(awk -v n="$n" -v p="$1" 'BEGIN{i=int(n*p+0.999999); if(i<1)i=1; print i}')p" "$tmp/lat"; }
	ms() { echo "$1*1000" | bc -l; }
	p99=$(ms "$(pct 0.99)")
	printf '%-5s %10.0f %8s %10.3f %10.3f %10.3f %10.3f\n' "$srv" "$q" "$lost" \
		"$(ms "$(pct 0.50)")" "$p99" "$(ms "$(pct 0.999)")" "$(ms "$(tail -1 "$tmp/lat")")"
	[ "$srv" = gtm ] && gtm_p99=$p99
done

# Targets: GTM >= 1.0x baseline QPS, no lost queries, GTM p99 < 1 ms at half peak.
verdict() { if [ "$1" = 1 ]; then echo met; else echo "NOT met"; fi; }
lost_any=$(cat "$tmp"/gtm-* "$tmp"/base-* | sed -n 's/^ *Queries lost: *\([0-9]*\).*/\1/p' | awk '{s+=$1} END {print s+0}')
printf '\ntargets: QPS ratio >= 1.0 %s; lost queries %s (%s); gtm p99 < 1 ms %s\n' \
	"$(verdict "$(echo "$gtm_qps >= $base_qps" | bc)")" "$lost_any" "$(verdict "$([ "$lost_any" = 0 ] && echo 1)")" \
	"$(verdict "$(echo "$gtm_p99 < 1" | bc)")"
