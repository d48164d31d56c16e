// Command failover measures aagtm's failover detection and failback times
// end to end, with real processes on loopback: three redis-server members
// (us-east, eu-west, ap-south), one `aagtm probe` agent per region and two
// `aagtm serve` nodes, all from one config (bench/failover/run.sh builds
// the binary and runs this).
//
// For each probe setting it kills the us-east member N times (SIGKILL, at a
// random phase of the probe round) and restarts it (again at a random phase). Per node, a poller asks every 10ms, as
// a us-east client (EDNS Client Subnet), for the database's A record:
//
//   - detection = kill → first answer that is no longer the us-east member;
//   - failback  = the member's restart (it answers PING) → first answer
//     that is the us-east member again; it includes failback_hold.
//
// It prints p50/p99/max per setting and node, and compares the detection
// p99 with the theoretical bound fall × interval + timeout + 100ms (the
// baseline, printed in the same run): the ratio p99/bound is the figure.
// With N samples p99 is the nearest-rank percentile, the maximum when N < 100.
//
// It does not measure client reconnection or resolver caching (the answer
// TTL): only what the GTM decides and serves.
package main

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/aagtm/aagtm/bench/internal/benchenv"
	"github.com/miekg/dns"
)

// setting is one probe configuration under test.
type setting struct {
	interval, timeout time.Duration
	fall, rise        int
}

func (s setting) String() string {
	return fmt.Sprintf("interval %s, fall %d, timeout %s", s.interval, s.fall, s.timeout)
}

// bound is the detection target: fall × interval + timeout + 100ms.
func (s setting) bound() time.Duration {
	return time.Duration(s.fall)*s.interval + s.timeout + 100*time.Millisecond
}

var settings = []setting{
	{interval: 250 * time.Millisecond, timeout: 200 * time.Millisecond, fall: 2, rise: 2},
	{interval: time.Second, timeout: 500 * time.Millisecond, fall: 3, rise: 2},
}

func main() {
	bin := flag.String("aagtm", "", "path of the aagtm binary (required)")
	kills := flag.Int("kills", 20, "kills of the us-east member per setting")
	hold := flag.Duration("hold", time.Second, "failback_hold of the database")
	only := flag.Int("setting", 0, "run only setting 1 or 2 (0: both)")
	keep := flag.Bool("keep", false, "keep the work folder (config, logs)")
	flag.Parse()
	if *bin == "" {
		fmt.Fprintln(os.Stderr, "failover: -aagtm is required (bench/failover/run.sh builds it)")
		os.Exit(2)
	}
	if _, err := exec.LookPath("redis-server"); err != nil {
		fmt.Fprintln(os.Stderr, "failover: redis-server not found (apt-get install -y redis-server)")
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	dir, err := os.MkdirTemp("", "aagtm-bench-failover-")
	if err != nil {
		fatal(err)
	}
	if *keep {
		fmt.Println("work folder:", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	b := &bench{bin: *bin, dir: dir, hold: *hold, kills: *kills}
	defer b.stopAll()

	var results []result
	for i, s := range settings {
		if *only != 0 && *only != i+1 {
			continue
		}
		r, err := b.run(ctx, i+1, s)
		if err != nil {
			b.stopAll()
			fatal(err)
		}
		results = append(results, r)
	}
	report(results, *hold)
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "failover:", err)
	os.Exit(1)
}

// bench owns the processes.
type bench struct {
	bin   string
	dir   string
	hold  time.Duration
	kills int

	members map[string]*redisProc
	procs   []*exec.Cmd // nodes and agents of the current setting
	dnsAddr []string
}

// result is one setting's samples, per node.
type result struct {
	s        setting
	nodes    []string
	detect   [][]time.Duration // [node][kill]
	failback [][]time.Duration
	missed   []int // per node: kills whose change was not seen in time
}

// run deploys setting s and measures b.kills failovers and failbacks.
func (b *bench) run(ctx context.Context, n int, s setting) (result, error) {
	res := result{s: s, nodes: []string{"ns1", "ns2"}}
	res.detect = make([][]time.Duration, 2)
	res.failback = make([][]time.Duration, 2)
	res.missed = make([]int, 2)

	if b.members == nil {
		b.members = map[string]*redisProc{}
		for _, r := range benchenv.Regions {
			m, err := startRedis(r.Bind, filepath.Join(b.dir, "cache-"+r.Short))
			if err != nil {
				return res, err
			}
			b.members["cache-"+r.Short] = m
		}
	}
	if err := b.deploy(n, s); err != nil {
		return res, err
	}
	defer b.stopProcs()
	fmt.Printf("\n== setting %d: %s, rise %d, failback_hold %s; detection bound %s ==\n", n, s, s.rise, b.hold, s.bound())

	use := b.members["cache-use"]
	useAddr, euwAddr := benchenv.Regions[0].Bind, benchenv.Regions[1].Bind
	if err := b.waitAnswer(ctx, useAddr, 20*time.Second); err != nil {
		return res, fmt.Errorf("setting %d: deployment not ready: %w", n, err)
	}
	detectCap := 5 * s.bound()
	failbackCap := 10*s.interval + b.hold + 10*time.Second
	for k := 1; k <= b.kills; k++ {
		if ctx.Err() != nil {
			return res, ctx.Err()
		}
		// Steady state: both nodes answer the us-east member (so its
		// failback hold is over); then a random phase of the probe round.
		if err := b.waitAnswer(ctx, useAddr, failbackCap); err != nil {
			return res, fmt.Errorf("kill %d: not back to steady state: %w", k, err)
		}
		time.Sleep(s.interval + rand.N(s.interval))

		killed := time.Now()
		use.kill()
		seen := b.pollUntil(ctx, killed, func(a string) bool { return a == euwAddr }, detectCap)
		line := fmt.Sprintf("setting %d kill %2d/%d: detection", n, k, b.kills)
		for i, d := range seen {
			if d < 0 {
				res.missed[i]++
				line += fmt.Sprintf(" %s MISSED(>%s)", res.nodes[i], detectCap)
				continue
			}
			res.detect[i] = append(res.detect[i], d)
			line += fmt.Sprintf(" %s %s", res.nodes[i], ms(d))
		}

		// Restart at a random phase too, so failback samples the round.
		time.Sleep(200*time.Millisecond + rand.N(s.interval))
		if err := use.start(); err != nil {
			return res, err
		}
		restarted := time.Now()
		seen = b.pollUntil(ctx, restarted, func(a string) bool { return a == useAddr }, failbackCap)
		line += ";  failback"
		for i, d := range seen {
			if d < 0 {
				res.missed[i]++
				line += fmt.Sprintf(" %s MISSED(>%s)", res.nodes[i], failbackCap)
				continue
			}
			res.failback[i] = append(res.failback[i], d)
			line += fmt.Sprintf(" %s %s", res.nodes[i], ms(d))
		}
		fmt.Println(line)
	}
	return res, nil
}

// deploy writes setting s's config and starts the nodes and agents.
func (b *bench) deploy(n int, s setting) error {
	var c strings.Builder
	benchenv.WriteZoneAndRegions(&c)
	fmt.Fprintf(&c, "databases:\n  cache:\n    mode: nearest\n    ttl: 1s\n    failback_hold: %s\n    members:\n", b.hold)
	for _, r := range benchenv.Regions {
		fmt.Fprintf(&c, "      - {name: %s, region: %s, addresses: [%s], redis: \"redis://%s\"}\n", "cache-"+r.Short, r.Name, r.Bind, b.members["cache-"+r.Short].addr)
	}
	stale := max(3*s.interval, time.Second)
	fmt.Fprintf(&c, "probes:\n  interval: %s\n  timeout: %s\n  rise: %d\n  fall: %d\n  stale_after: %s\n  checks: [ping, echo, keyspace]\n  keyspace_keys: 4\n",
		s.interval, s.timeout, s.rise, s.fall, stale)
	c.WriteString("nodes:\n")
	b.dnsAddr = nil
	for i := 1; i <= 2; i++ {
		dnsAddr := fmt.Sprintf("127.0.0.1:%d", freePort("127.0.0.1"))
		fmt.Fprintf(&c, "  - {name: ns%d, report: \"127.0.0.1:%d\", dns: [%q], admin: \"127.0.0.1:%d\", state_file: %q}\n",
			i, freePort("127.0.0.1"), dnsAddr, freePort("127.0.0.1"), filepath.Join(b.dir, fmt.Sprintf("s%d-ns%d.state", n, i)))
		b.dnsAddr = append(b.dnsAddr, dnsAddr)
	}
	c.WriteString("security:\n  insecure: true\n")
	cfg := filepath.Join(b.dir, fmt.Sprintf("setting%d.yaml", n))
	if err := os.WriteFile(cfg, []byte(c.String()), 0o600); err != nil {
		return err
	}
	for i := 1; i <= 2; i++ {
		if err := b.startProc(fmt.Sprintf("s%d-ns%d", n, i), "serve", "-c", cfg, "--node", fmt.Sprintf("ns%d", i)); err != nil {
			return err
		}
	}
	for _, r := range benchenv.Regions {
		if err := b.startProc(fmt.Sprintf("s%d-probe-%s", n, r.Name), "probe", "-c", cfg, "--agent", r.Name); err != nil {
			return err
		}
	}
	return nil
}

func (b *bench) startProc(name string, args ...string) error {
	log := filepath.Join(b.dir, name+".log")
	f, err := os.Create(log)
	if err != nil {
		return err
	}
	defer f.Close()
	cmd := exec.Command(b.bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", name, err)
	}
	b.procs = append(b.procs, cmd)
	return nil
}

// stopProcs stops the nodes and agents (SIGTERM, then SIGKILL after 5s).
func (b *bench) stopProcs() {
	for _, p := range b.procs {
		_ = p.Process.Signal(syscall.SIGTERM)
	}
	for _, p := range b.procs {
		done := make(chan struct{})
		go func() { _ = p.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = p.Process.Kill()
			<-done
		}
	}
	b.procs = nil
}

func (b *bench) stopAll() {
	b.stopProcs()
	for _, m := range b.members {
		m.kill()
	}
}

// waitAnswer waits until every node answers want to us-east clients.
func (b *bench) waitAnswer(ctx context.Context, want string, timeout time.Duration) error {
	seen := b.pollUntil(ctx, time.Now(), func(a string) bool { return a == want }, timeout)
	for i, d := range seen {
		if d < 0 {
			got := answerA(b.dnsAddr[i])
			return fmt.Errorf("ns%d answers %q to us-east, want %s (logs in %s)", i+1, got, want, b.dir)
		}
	}
	return nil
}

// pollUntil polls every node every 10ms until its answer satisfies ok and
// returns, per node, the time from since to that answer (its arrival), or
// -1 when it was not seen within timeout.
func (b *bench) pollUntil(ctx context.Context, since time.Time, ok func(string) bool, timeout time.Duration) []time.Duration {
	out := make([]time.Duration, len(b.dnsAddr))
	var wg sync.WaitGroup
	for i, addr := range b.dnsAddr {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i] = -1
			tick := time.NewTicker(10 * time.Millisecond)
			defer tick.Stop()
			for {
				if ok(answerA(addr)) {
					out[i] = time.Since(since)
					return
				}
				if time.Since(since) > timeout {
					return
				}
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
			}
		}()
	}
	wg.Wait()
	return out
}

var dnsClient = &dns.Client{Net: "udp", Timeout: 200 * time.Millisecond}

// answerA asks server for cache.gtm.bench. A as a us-east client and
// returns the addresses joined by commas, or an error text.
func answerA(server string) string {
	m := new(dns.Msg)
	m.SetQuestion("cache.gtm.bench.", dns.TypeA)
	o := &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT}}
	o.SetUDPSize(1232)
	o.Option = append(o.Option, &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1,
		SourceNetmask: uint8(benchenv.UsEastClient.Bits()), Address: benchenv.UsEastClient.Addr().AsSlice()})
	m.Extra = append(m.Extra, o)
	r, _, err := dnsClient.Exchange(m, server)
	if err != nil {
		return "error: " + err.Error()
	}
	if r.Rcode != dns.RcodeSuccess {
		return "rcode: " + dns.RcodeToString[r.Rcode]
	}
	var ips []string
	for _, rr := range r.Answer {
		if a, ok := rr.(*dns.A); ok {
			ips = append(ips, a.A.String())
		}
	}
	return strings.Join(ips, ",")
}

// report prints the summary table.
func report(results []result, hold time.Duration) {
	fmt.Printf("\n== summary (p99 = nearest rank; with fewer than 100 samples it is the max) ==\n")
	fmt.Printf("%-38s %-4s %3s | %8s %8s %8s | %8s %9s %-7s | %8s %8s %8s\n",
		"setting", "node", "n", "det p50", "det p99", "det max", "bound", "p99/bound", "target", "fb p50", "fb p99", "fb max")
	for _, r := range results {
		for i, node := range r.nodes {
			d, f := r.detect[i], r.failback[i]
			met := "met"
			if len(d) == 0 || pct(d, 0.99) > r.s.bound() || r.missed[i] > 0 {
				met = "NOT met"
			}
			ratio := 0.0
			if len(d) > 0 {
				ratio = float64(pct(d, 0.99)) / float64(r.s.bound())
			}
			fmt.Printf("%-38s %-4s %3d | %8s %8s %8s | %8s %9.2f %-7s | %8s %8s %8s\n",
				r.s, node, len(d), ms(pct(d, 0.5)), ms(pct(d, 0.99)), ms(pct(d, 1)),
				ms(r.s.bound()), ratio, met, ms(pct(f, 0.5)), ms(pct(f, 0.99)), ms(pct(f, 1)))
			if r.missed[i] > 0 {
				fmt.Printf("%-38s %-4s %d changes not seen in time\n", "", node, r.missed[i])
			}
		}
	}
	fmt.Printf("\nbaseline: detection bound = fall × interval + timeout + 100ms (poll granularity 10ms).\n")
	fmt.Printf("failback: member restart (answers PING) → answer back; includes failback_hold %s and rise × interval.\n", hold)
	for _, r := range results {
		fmt.Printf("  %s: failback expected ≈ hold %s + up to rise × interval %s\n", r.s, hold, time.Duration(r.s.rise)*r.s.interval)
	}
}

// pct returns the nearest-rank percentile p (0.5, 0.99, 1) of ds.
func pct(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return -1
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(float64(len(s))*p+0.999999) - 1
	return s[min(max(i, 0), len(s)-1)]
}

func ms(d time.Duration) string {
	if d < 0 {
		return "-"
	}
	return strconv.FormatInt(d.Milliseconds(), 10) + "ms"
}

// redisProc is one redis-server member, restartable on the same port.
type redisProc struct {
	bind, addr, dir string
	cmd             *exec.Cmd
	done            chan struct{}
}

func startRedis(bind, dir string) (*redisProc, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	r := &redisProc{bind: bind, dir: dir}
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		r.addr = net.JoinHostPort(bind, strconv.Itoa(freePort(bind)))
		if err = r.start(); err == nil {
			return r, nil
		}
	}
	return nil, err
}

// start runs redis-server and returns once it answers PING with PONG.
func (r *redisProc) start() error {
	_, port, _ := net.SplitHostPort(r.addr)
	r.cmd = exec.Command("redis-server", "--bind", r.bind, "--port", port, "--save", "", "--appendonly", "no", "--dir", r.dir)
	log, err := os.OpenFile(filepath.Join(r.dir, "redis.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer log.Close()
	r.cmd.Stdout, r.cmd.Stderr = log, log
	if err := r.cmd.Start(); err != nil {
		return fmt.Errorf("start redis-server on %s: %w", r.addr, err)
	}
	r.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) { _ = cmd.Wait(); close(done) }(r.cmd, r.done)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if benchenv.Ping(r.addr) {
			return nil
		}
		select {
		case <-r.done:
			return fmt.Errorf("redis-server on %s exited at start (see %s/redis.log)", r.addr, r.dir)
		case <-time.After(5 * time.Millisecond):
		}
	}
	r.kill()
	return fmt.Errorf("redis-server on %s does not answer PING", r.addr)
}

// kill sends SIGKILL and waits until the process is reaped.
func (r *redisProc) kill() {
	if r.cmd == nil {
		return
	}
	_ = r.cmd.Process.Kill()
	<-r.done
	r.cmd = nil
}

// freePort returns a port benchenv.FreePort has not handed out before.
func freePort(host string) int {
	port, err := benchenv.FreePort(host)
	if err != nil {
		fatal(err)
	}
	return port
}
