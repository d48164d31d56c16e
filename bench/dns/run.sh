#!/usr/bin/env bash
# Benchmark the aagtm DNS server against gdnsd and a bare miekg/dns server
# with dnsperf, in one run.
#
# Builds and starts, on loopback:
#   gtm    gtmserver (package dnsserver, HOSTS database hostnames, metrics
#          on, rate limiting off: dnsperf sends from one address, and
#          gdnsd has no rate limiting);
#   gdnsd  gdnsd (Debian package, installed with apt-get when missing)
#          serving the same names from a generated zone file, its defaults
#          otherwise: two UDP sockets per address (SO_REUSEPORT), each
#          served by its own thread looping on blocking recvmmsg/sendmmsg,
#          up to 16 datagrams per recvmmsg ("udp_threads and tcp_threads
#          parameters, which default to 2. There's exactly one I/O thread
#          per listening socket", /usr/share/doc/gdnsd/Manual.md.gz;
#          "udp_recv_width - Fixed at 16", VERSION3.md.gz). gtm runs one
#          socket (dns.reuse_port 1, the default; rate limiting is per
#          socket): on this 2-core machine neither gdnsd's udp_threads 1
#          nor gtm's -reuseport 2 changed QPS beyond the noise;
#   base   baseline, a static-map miekg/dns handler, same names.
# Then, for each CPU layout in LAYOUTS ("pinned": servers on CPU 1,
# dnsperf on CPU 0, so the QPS is a server's capacity on one core; "free":
# no affinity, everything competes for every core):
#   1. ROUNDS rounds of DURATION seconds at maximum rate per server and
#      query mix (A, and A with an ECS option unless ECS=0), interleaved
#      ABBA (gtm gdnsd base | base gdnsd gtm | ...: the machine is shared,
#      and alternating the order spreads noise and drift over all three);
#   2. DURATION seconds against each at FIXED_QPS (-Q), with per-query
#      latencies (dnsperf -v) for p50/p99.
# Prints QPS, lost queries, the ratio to gdnsd, and the latencies, and the
# load average before and after (other work on the machine skews QPS).
# Needs dnsperf (Debian: apt-get install -y dnsperf) and Go.
#
# Settings (environment): ROUNDS=2 DURATION=10 WARMUP=2 HOSTS=1000
#   DNSPERF_ARGS="-c 4 -q 100" FIXED_QPS=40000 ECS=1 LAYOUTS="pinned free"
#   GTM_PORT=15300 BASE_PORT=15301 GDNSD_PORT=15302
#   GTM_ARGS="" (extra gtmserver flags, e.g. "-reuseport 2")
#   All servers inherit the environment, GOGC and GOMAXPROCS included.
set -euo pipefail

ROUNDS=${ROUNDS:-2}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
HOSTS=${HOSTS:-1000}
DNSPERF_ARGS=${DNSPERF_ARGS:-"-c 4 -q 100"}
FIXED_QPS=${FIXED_QPS:-40000}
ECS=${ECS:-1}
LAYOUTS=${LAYOUTS:-"pinned free"}
GTM_PORT=${GTM_PORT:-15300}
BASE_PORT=${BASE_PORT:-15301}
GDNSD_PORT=${GDNSD_PORT:-15302}
GTM_ARGS=${GTM_ARGS:-}
if ! command -v taskset >/dev/null || [ "$(nproc)" -lt 2 ]; then
	LAYOUTS=free
fi

cd "$(dirname "$0")/../.."
GO=$(command -v go || echo /usr/local/go/bin/go)
command -v dnsperf >/dev/null || { echo "run.sh: dnsperf not found (apt-get install -y dnsperf)" >&2; exit 1; }
GDNSD=$(command -v gdnsd || echo /usr/sbin/gdnsd)
if [ ! -x "$GDNSD" ]; then
	echo "installing gdnsd..."
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gdnsd >/dev/null
fi

tmp=$(mktemp -d)
declare -A pid
cleanup() {
	for p in "${pid[@]}"; do
		kill "$p" 2>/dev/null || true
	done
	for p in "${pid[@]}"; do
		wait "$p" 2>/dev/null || true
	done
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "building..."
"$GO" build -o "$tmp/gtmserver" ./bench/dns/gtmserver
"$GO" build -o "$tmp/baseline" ./bench/dns/baseline

# The gdnsd zone: the same names and default-region addresses as
# gtmserver (10.1.i/250.i%250+1, TTL 5).
mkdir -p "$tmp/gdnsd/zones" "$tmp/gdnsd/run" "$tmp/gdnsd/state"
cat >"$tmp/gdnsd/config" <<EOF
options => {
  listen => [ 127.0.0.1:$GDNSD_PORT ]
  run_dir => "$tmp/gdnsd/run"
  state_dir => "$tmp/gdnsd/state"
}
EOF
{
	printf '$TTL 3600\n@ SOA ns1 hostmaster.example.com. 1 3600 600 86400 5\n@ NS ns1\nns1 A 127.0.0.1\n'
	for i in $(seq 0 $((HOSTS - 1))); do
		printf 'db%04d 5 A 10.1.%d.%d\n' "$i" $((i / 250)) $((i % 250 + 1))
	done
} >"$tmp/gdnsd/zones/gtm.example.com"
"$GDNSD" -c "$tmp/gdnsd" checkconf >"$tmp/gdnsd.check" 2>&1 || { cat "$tmp/gdnsd.check" >&2; exit 1; }

for i in $(seq 0 $((HOSTS - 1))); do
	printf 'db%04d.gtm.example.com A\n' "$i"
done >"$tmp/queries"

declare -A port=([gtm]=$GTM_PORT [gdnsd]=$GDNSD_PORT [base]=$BASE_PORT)

# start LAYOUT: (re)start the three servers with the layout's affinity.
start() {
	local on=()
	[ "$1" = pinned ] && on=(taskset -c 1)
	for p in "${pid[@]}"; do
		kill "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	# shellcheck disable=SC2086
	"${on[@]}" "$tmp/gtmserver" -listen "127.0.0.1:$GTM_PORT" -hosts "$HOSTS" $GTM_ARGS 2>"$tmp/gtm.log" &
	pid[gtm]=$!
	"${on[@]}" "$GDNSD" -c "$tmp/gdnsd" start 2>"$tmp/gdnsd.log" &
	pid[gdnsd]=$!
	"${on[@]}" "$tmp/baseline" -listen "127.0.0.1:$BASE_PORT" -hosts "$HOSTS" 2>"$tmp/base.log" &
	pid[base]=$!
	for srv in gtm gdnsd base; do
		for _ in $(seq 100); do
			if dnsperf -s 127.0.0.1 -p "${port[$srv]}" -d "$tmp/queries" -n 1 -t 1 2>/dev/null | grep -q 'Queries lost: *0 '; then
				continue 2
			fi
			sleep 0.1
		done
		echo "run.sh: $srv on port ${port[$srv]} does not answer" >&2
		cat "$tmp"/*.log >&2
		exit 1
	done
}

# field FILE LABEL: the first number after LABEL in dnsperf's summary.
field() { sed -n "s/^ *$2 *\([0-9.]*\).*/\1/p" "$1" | head -1; }
lostpct() { sed -n 's/^ *Queries lost: *[0-9]* (\([0-9.]*\)%).*/\1/p' "$1"; }
mean() { echo "$@" | awk '{s=0; for(i=1;i<=NF;i++) s+=$i; printf "%.0f", s/NF}'; }

mixes="A"
[ "$ECS" = 1 ] && mixes="A ECS"
# ECS option 8: family 1, source /24, scope 0, 10.2.3.0 (the eu-west region
# for gtmserver; gdnsd answers its static zone and echoes scope 0).
ecs_args="-E 8:000118000a0203"

echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
summary=()
for layout in $LAYOUTS; do
	client=()
	[ "$layout" = pinned ] && client=(taskset -c 0)
	start "$layout"
	for srv in gtm gdnsd base; do # warm up: runtime, caches, socket buffers
		# shellcheck disable=SC2086
		"${client[@]}" dnsperf -s 127.0.0.1 -p "${port[$srv]}" -d "$tmp/queries" -l "$WARMUP" $DNSPERF_ARGS >/dev/null 2>&1
	done
	for mix in $mixes; do
		extra=""
		[ "$mix" = ECS ] && extra=$ecs_args
		declare -A qps=()
		printf '\n%s, %s queries, max rate (%s rounds of %ss):\n' "$layout" "$mix" "$ROUNDS" "$DURATION"
		printf '%-6s %-6s %12s %10s %12s\n' round srv QPS lost% avg_lat_ms
		for r in $(seq "$ROUNDS"); do
			order="gtm gdnsd base"
			[ $((r % 2)) = 0 ] && order="base gdnsd gtm"
			for srv in $order; do
				f=$tmp/$layout-$mix-$srv-$r
				# shellcheck disable=SC2086
				"${client[@]}" dnsperf -s 127.0.0.1 -p "${port[$srv]}" -d "$tmp/queries" -l "$DURATION" $DNSPERF_ARGS $extra >"$f" 2>&1
				q=$(field "$f" 'Queries per second:')
				qps[$srv]="${qps[$srv]:-} $q"
				printf '%-6s %-6s %12.0f %10s %12.3f\n' "$r" "$srv" "$q" "$(lostpct "$f")" \
					"$(echo "$(field "$f" 'Average Latency (s):')*1000" | bc -l)"
			done
		done
		g=$(mean ${qps[gtm]})
		d=$(mean ${qps[gdnsd]})
		b=$(mean ${qps[base]})
		line=$(printf '%-7s %-4s QPS  gtm %7s  gdnsd %7s  base %7s  gtm/gdnsd %.2f  base/gdnsd %.2f' \
			"$layout" "$mix" "$g" "$d" "$b" "$(echo "$g/$d" | bc -l)" "$(echo "$b/$d" | bc -l)")
		echo "$line"
		summary+=("$line")
	done

	printf '\n%s, A queries at -Q %s, %ss each:\n' "$layout" "$FIXED_QPS" "$DURATION"
	printf '%-6s %10s %8s %10s %10s %10s\n' srv QPS lost% p50_ms p99_ms max_ms
	declare -A p99=()
	for srv in gtm gdnsd base; do
		f=$tmp/$layout-fixed-$srv
		# shellcheck disable=SC2086
		"${client[@]}" dnsperf -s 127.0.0.1 -p "${port[$srv]}" -d "$tmp/queries" -l "$DURATION" -Q "$FIXED_QPS" -v $DNSPERF_ARGS >"$f" 2>&1
		awk '/^> / && $2 != "T" {print $NF}' "$f" | sort -g >"$tmp/lat"
		n=$(wc -l <"$tmp/lat")
		pct() { sed -n "$(awk -v n="$n" -v p="$1" 'BEGIN{i=int(n*p+0.999999); if(i<1)i=1; print i}')p" "$tmp/lat"; }
		ms() { echo "$1*1000" | bc -l; }
		p99[$srv]=$(ms "$(pct 0.99)")
		printf '%-6s %10.0f %8s %10.3f %10.3f %10.3f\n' "$srv" "$(field "$f" 'Queries per second:')" "$(lostpct "$f")" \
			"$(ms "$(pct 0.50)")" "${p99[$srv]}" "$(ms "$(tail -1 "$tmp/lat")")"
	done
	line=$(printf '%-7s p99 at %s qps: gtm %.3f ms, gdnsd %.3f ms, base %.3f ms, gtm/gdnsd %.2f' \
		"$layout" "$FIXED_QPS" "${p99[gtm]}" "${p99[gdnsd]}" "${p99[base]}" "$(echo "${p99[gtm]}/${p99[gdnsd]}" | bc -l)")
	echo "$line"
	summary+=("$line")
done

lost_any=$(cat "$tmp"/*-gtm-* | sed -n 's/^ *Queries lost: *\([0-9]*\).*/\1/p' | awk '{s+=$1} END {print s+0}')
printf '\nsummary (%s; GTM_ARGS="%s"):\n' "$DNSPERF_ARGS" "$GTM_ARGS"
printf '%s\n' "${summary[@]}"
echo "gtm lost queries over all runs: $lost_any"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "targets (issue 13): QPS gtm/gdnsd >= 1.0 for A, >= 0.9 with ECS; p99 gtm/gdnsd <= 1.5"
