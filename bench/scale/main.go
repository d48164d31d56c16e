// Command scale measures aagtm with many databases, end to end, with real
// processes on loopback: three redis-servers (one per region: us-east,
// eu-west, ap-south), N databases with one member in each region, three
// `aagtm probe` agents (N × 3 members each; -agents runs fewer) and one
// `aagtm serve` node with DNS, all from one config (bench/scale/run.sh
// builds the binary and runs this).
//
// Endpoints. A Redis Software user with N databases has N endpoints per
// cluster (a port per database), so an agent cannot share connections
// between databases. N redis-servers per region would measure the servers,
// not aagtm, so by default (-endpoints db) every database uses its own
// logical database number on its region's server (redis://host:port/<i>,
// the server started with `databases N`): distinct endpoints as far as the
// agent is concerned — one connection and one client per member, no
// sharing — while one SIGSTOP still hangs every member of a region.
// -endpoints shared gives every member of a region the same URL instead
// (the case of many members naming one endpoint: one pool per region).
//
// Phases, printed as they end:
//
//  1. start: servers, node, then the agents; for -duration (60s) from the
//     agents' start it scrapes the node's /metrics every 5s, about as often
//     as a Prometheus server would (members whose aagtm_policy_member_up was
//     ever 0; aagtm_policy_failovers_total; the node's log is the complete
//     record, a scrape can miss a short down), and
//     sweeps every name over DNS as a us-east client once a second (names
//     whose answer ever left the us-east member). On a healthy deployment
//     every such member, failover and moved answer is a false verdict. It
//     also counts the agents' "not measured" warnings.
//  2. resources: peak RSS (VmHWM) and CPU (user+system over phase 1) of
//     each agent and of the node.
//  3. DNS QPS over all N names: dnsperf for -qps-duration when installed
//     (max rate, 4 clients), else a Go loop of UDP queries; response rate
//     limiting is off (every query comes from 127.0.0.1).
//  4. answer move: SIGSTOP of the us-east server; sweeps all N names as a
//     us-east client until each answer has left the us-east member; prints
//     the time until every answer moved (p50, p99, max) against the bound
//     fall × interval + timeout + 1s. A name counts as moved at the time
//     its first moved answer was asked for; the sweep's duration is the
//     resolution (the answer may have moved up to one sweep earlier).
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/aagtm/aagtm/bench/internal/benchenv"
	"github.com/miekg/dns"
)

type bench struct {
	bin, dir  string
	n         int
	endpoints string
	interval  time.Duration
	timeout   time.Duration
	fall      int
	checks    string
	agentGOGC string
	// agents are the regions (short names) whose agents run; the config
	// lists all three, and a missing agent's vantage abstains.
	agents []string

	servers []*exec.Cmd
	addrs   []string // redis-server address per region
	procs   map[string]*exec.Cmd
	names   []string // every database's DNS name
	dnsAddr string
	admin   string
}

func main() {
	b := &bench{procs: map[string]*exec.Cmd{}}
	flag.StringVar(&b.bin, "aagtm", "", "path of the aagtm binary (required)")
	flag.IntVar(&b.n, "n", 334, "databases (members per agent: 3 × n)")
	flag.StringVar(&b.endpoints, "endpoints", "db", "db: an endpoint per database (a logical database number each); shared: one endpoint per region")
	flag.DurationVar(&b.interval, "interval", time.Second, "probes.interval")
	flag.DurationVar(&b.timeout, "timeout", 500*time.Millisecond, "probes.timeout")
	flag.IntVar(&b.fall, "fall", 2, "probes.fall (and rise)")
	flag.StringVar(&b.checks, "checks", "ping", "probes.checks, comma-separated")
	flag.StringVar(&b.agentGOGC, "agent-gogc", "", "GOGC for the agent processes only (empty: aagtm probe's own default, 50)")
	agents := flag.String("agents", "use,euw,aps", "the agents to run, by region (use, euw, aps), comma-separated: on a machine too small for three agents at a size, fewer show what one agent does with the CPU it needs (the others' vantages abstain)")
	duration := flag.Duration("duration", 60*time.Second, "observation from the agents' start")
	qpsFor := flag.Duration("qps-duration", 10*time.Second, "DNS load duration")
	keep := flag.Bool("keep", false, "keep the work folder (config, logs)")
	flag.Parse()
	if b.bin == "" {
		fatal(fmt.Errorf("-aagtm is required"))
	}
	if b.endpoints != "db" && b.endpoints != "shared" {
		fatal(fmt.Errorf("-endpoints: want db or shared, not %q", b.endpoints))
	}
	for _, a := range strings.Split(*agents, ",") {
		if !slices.ContainsFunc(benchenv.Regions, func(r benchenv.Region) bool { return r.Short == a }) || slices.Contains(b.agents, a) {
			fatal(fmt.Errorf("-agents: %q is not one of use, euw, aps, or is listed twice", a))
		}
		b.agents = append(b.agents, a)
	}
	dir, err := os.MkdirTemp("", "aagtm-bench-scale-")
	if err != nil {
		fatal(err)
	}
	b.dir = dir
	defer func() {
		b.stopAll()
		if *keep {
			fmt.Println("work folder:", dir)
		} else {
			os.RemoveAll(dir)
		}
	}()
	if err := b.run(*duration, *qpsFor); err != nil {
		b.stopAll()
		fmt.Fprintln(os.Stderr, "scale:", err, "(logs in", dir+"; -keep keeps them)")
		if !*keep {
			os.RemoveAll(dir)
		}
		os.Exit(1)
	}
}

// regions returns the regions whose agents run.
func (b *bench) regions() []benchenv.Region {
	var rs []benchenv.Region
	for _, r := range benchenv.Regions {
		if slices.Contains(b.agents, r.Short) {
			rs = append(rs, r)
		}
	}
	return rs
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "scale:", err)
	os.Exit(1)
}

func (b *bench) run(duration, qpsFor time.Duration) error {
	fmt.Printf("scale: %d databases × 3 regions = %d members per agent, agents %s, endpoints %s, interval %s, timeout %s, fall %d, checks [%s], agent GOGC %q\n",
		b.n, 3*b.n, strings.Join(b.agents, ","), b.endpoints, b.interval, b.timeout, b.fall, b.checks, b.agentGOGC)
	for _, r := range benchenv.Regions {
		addr, cmd, err := startRedis(r.Bind, filepath.Join(b.dir, "redis-"+r.Name), b.n)
		if err != nil {
			return err
		}
		b.addrs = append(b.addrs, addr)
		b.servers = append(b.servers, cmd)
	}
	cfg, err := b.writeConfig()
	if err != nil {
		return err
	}
	if err := b.start("node", "serve", "-c", cfg, "--node", "ns1"); err != nil {
		return err
	}
	if err := waitHTTP("http://"+b.admin+"/healthz", 30*time.Second); err != nil {
		return fmt.Errorf("node: %w", err)
	}

	// Phase 1: start the agents and watch for false verdicts.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cpu0 := map[string]int64{}
	cpu0["node"] = cpuTicks(b.procs["node"].Process.Pid)
	begin := time.Now()
	for _, r := range b.regions() {
		if err := b.start("agent-"+r.Short, "probe", "-c", cfg, "--agent", r.Name); err != nil {
			return err
		}
		cpu0["agent-"+r.Short] = cpuTicks(b.procs["agent-"+r.Short].Process.Pid)
	}
	var (
		mu         sync.Mutex
		everDown   = map[string]bool{}
		moved      = map[string]bool{}
		failovers  float64
		seen       bool
		upReported int
		scrapeErrs int
		scrapesOK  int
	)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		// A full scrape of 10,000 members is some 44,000 samples (2.5 MB,
		// 0.2–0.5s to serve while the node is busy): a scrape every second
		// would be a good part of the node's CPU.
		tick := time.NewTicker(5 * time.Second)
		defer tick.Stop()
		for ctx.Err() == nil {
			down, fo, up, err := scrape("http://" + b.admin + "/metrics")
			if err != nil {
				mu.Lock()
				scrapeErrs++
				mu.Unlock()
			} else {
				mu.Lock()
				for _, m := range down {
					everDown[m] = true
				}
				failovers = max(failovers, fo)
				seen, upReported = true, up
				scrapesOK++
				mu.Unlock()
			}
			select {
			case <-ctx.Done():
			case <-tick.C:
			}
		}
	}()
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			next := time.Now().Add(time.Second)
			ans := b.sweep(ctx, 8)
			mu.Lock()
			for i, a := range ans {
				if a != "" && a != benchenv.Regions[0].Bind {
					moved[b.names[i]] = true
				}
			}
			mu.Unlock()
			select {
			case <-ctx.Done():
			case <-time.After(time.Until(next)):
			}
		}
	}()
	time.Sleep(time.Until(begin.Add(duration)))
	wall := time.Since(begin)
	cancel()
	wg.Wait()
	notMeasured := 0
	for _, r := range b.regions() {
		notMeasured += countInFile(filepath.Join(b.dir, "agent-"+r.Short+".log"), "not measured")
	}
	// The node's log is the complete record (a scrape can miss a down
	// that recovered in between, or fail when the node is loaded); the
	// metrics are a cross-check that does not depend on log wording.
	logDown, logFailovers := nodeLogVerdicts(filepath.Join(b.dir, "node.log"))
	for m := range logDown {
		everDown[m] = true
	}
	fmt.Printf("\n1. false verdicts in the first %s (nothing failed):\n", duration)
	fmt.Printf("   members ever down: %d of %d (node log: %d; metrics scrapes: %d, %d failed, last one listed %d members)\n",
		len(everDown), 3*b.n, len(logDown), scrapesOK+scrapeErrs, scrapeErrs, upReported)
	fmt.Printf("   failover events:   %d (node log; metrics: %.0f)\n", logFailovers, failovers)
	if !seen {
		fmt.Println("   (no metrics scrape succeeded)")
	}
	fmt.Printf("   names whose us-east answer ever left the us-east member: %d of %d\n", len(moved), b.n)
	fmt.Printf("   agent warnings about members not measured: %d (each covers up to 10s)\n", notMeasured)
	if len(everDown) > 0 {
		ex := slices.Sorted(func(yield func(string) bool) {
			for m := range everDown {
				if !yield(m) {
					return
				}
			}
		})
		fmt.Printf("   e.g. %s\n", strings.Join(ex[:min(5, len(ex))], ", "))
	}

	// Phase 2: resources.
	fmt.Printf("\n2. resources over those %s:\n", wall.Round(time.Second))
	for _, name := range []string{"agent-use", "agent-euw", "agent-aps", "node"} {
		p, ok := b.procs[name]
		if !ok {
			continue // an agent not run (-agents)
		}
		rss, peak := memKiB(p.Process.Pid)
		cpu := float64(cpuTicks(p.Process.Pid)-cpu0[name]) / 100 / wall.Seconds()
		fmt.Printf("   %-9s RSS now %4d MB, peak %4d MB, CPU %5.1f%% of one core\n", name, rss/1024, peak/1024, 100*cpu)
	}

	// Phase 3: DNS QPS.
	qps, how := b.qps(qpsFor)
	fmt.Printf("\n3. DNS over all %d names (%s): %.0f queries/s\n", b.n, how, qps)

	// Phase 4: hang us-east; every answer must move.
	bound := time.Duration(b.fall)*b.interval + b.timeout + time.Second
	fmt.Printf("\n4. SIGSTOP of the us-east server: time until each of the %d answers left it (bound fall × interval + timeout + 1s = %s)\n", b.n, bound)
	_ = b.servers[0].Process.Signal(syscall.SIGSTOP)
	stopped := time.Now()
	movedAt := make([]time.Duration, len(b.names))
	left := len(b.names)
	var sweeps int
	var worstSweep time.Duration
	for left > 0 && time.Since(stopped) < bound+20*time.Second {
		s0 := time.Now()
		ans, sent := b.sweepAt(context.Background(), 16)
		sweeps++
		worstSweep = max(worstSweep, time.Since(s0))
		for i, a := range ans {
			if movedAt[i] == 0 && a != "" && a != benchenv.Regions[0].Bind {
				movedAt[i] = sent[i].Sub(stopped) // when the moved answer was asked for
				left--
			}
		}
	}
	_ = b.servers[0].Process.Signal(syscall.SIGCONT)
	var ds []time.Duration
	for _, d := range movedAt {
		if d > 0 {
			ds = append(ds, d)
		}
	}
	slices.Sort(ds)
	if left > 0 {
		fmt.Printf("   %d answers never moved within %s\n", left, bound+20*time.Second)
	}
	if len(ds) > 0 {
		verdict := "within"
		if ds[len(ds)-1] > bound {
			verdict = "OVER"
		}
		fmt.Printf("   moved: p50 %s, p99 %s, all %s (%s the bound); each name asked every %s at most (%d sweeps)\n",
			ms(pct(ds, 50)), ms(pct(ds, 99)), ms(ds[len(ds)-1]), verdict, ms(worstSweep), sweeps)
	}
	return nil
}

// writeConfig writes the deployment's config and returns its path.
func (b *bench) writeConfig() (string, error) {
	var c strings.Builder
	benchenv.WriteZoneAndRegions(&c)
	c.WriteString("databases:\n")
	for i := range b.n {
		name := fmt.Sprintf("db%05d", i)
		b.names = append(b.names, name+".gtm.bench.")
		fmt.Fprintf(&c, "  %s:\n    mode: nearest\n    ttl: 1s\n    members:\n", name)
		for j, r := range benchenv.Regions {
			url := "redis://" + b.addrs[j]
			if b.endpoints == "db" {
				url += "/" + strconv.Itoa(i)
			}
			fmt.Fprintf(&c, "      - {name: %s-%s, region: %s, addresses: [%s], redis: %q}\n", name, r.Short, r.Name, r.Bind, url)
		}
	}
	stale := max(3*b.interval, 3*time.Second)
	fmt.Fprintf(&c, "probes:\n  interval: %s\n  timeout: %s\n  rise: %d\n  fall: %d\n  stale_after: %s\n  checks: [%s]\n",
		b.interval, b.timeout, b.fall, b.fall, stale, b.checks)
	b.dnsAddr = fmt.Sprintf("127.0.0.1:%d", freePort("127.0.0.1"))
	b.admin = fmt.Sprintf("127.0.0.1:%d", freePort("127.0.0.1"))
	fmt.Fprintf(&c, "nodes:\n  - {name: ns1, report: \"127.0.0.1:%d\", dns: [%q], admin: %q, state_file: %q}\n",
		freePort("127.0.0.1"), b.dnsAddr, b.admin, filepath.Join(b.dir, "ns1.state"))
	// Insecure: the bench measures scale, not authentication, and so does
	// not depend on how agent credentials are configured. Response rate
	// limiting off: dnsperf and the sweeps ask from one address, and the
	// limit (200 a second per name) would cap phase 3 at 200 × N.
	c.WriteString("security:\n  insecure: true\ndns:\n  rate_limit:\n    responses_per_second: 0\n")
	path := filepath.Join(b.dir, "aagtm.yaml")
	return path, os.WriteFile(path, []byte(c.String()), 0o600)
}

func (b *bench) start(name string, args ...string) error {
	f, err := os.Create(filepath.Join(b.dir, name+".log"))
	if err != nil {
		return err
	}
	defer f.Close()
	cmd := exec.Command(b.bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	if b.agentGOGC != "" && strings.HasPrefix(name, "agent-") {
		cmd.Env = append(os.Environ(), "GOGC="+b.agentGOGC)
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", name, err)
	}
	b.procs[name] = cmd
	return nil
}

// stopAll stops the agents and the node (SIGTERM, then SIGKILL after 5s)
// and kills the servers.
func (b *bench) stopAll() {
	for _, s := range b.servers {
		_ = s.Process.Signal(syscall.SIGCONT)
	}
	for _, p := range b.procs {
		_ = p.Process.Signal(syscall.SIGTERM)
	}
	for name, p := range b.procs {
		done := make(chan struct{})
		go func() { _ = p.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = p.Process.Kill()
			<-done
		}
		delete(b.procs, name)
	}
	for _, s := range b.servers {
		_ = s.Process.Kill()
		_ = s.Wait()
	}
	b.servers = nil
}

// sweep asks the node for every name's A record as a us-east client, with
// workers concurrent queries, and returns the first address of each answer
// ("" on error).
func (b *bench) sweep(ctx context.Context, workers int) []string {
	out, _ := b.sweepAt(ctx, workers)
	return out
}

// sweepAt is sweep that also returns when each query was sent.
func (b *bench) sweepAt(ctx context.Context, workers int) ([]string, []time.Time) {
	out := make([]string, len(b.names))
	at := make([]time.Time, len(b.names))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// One socket per worker, not one per query: the sweep's
			// duration is the resolution of the answer-move times.
			c := &dns.Client{Timeout: 500 * time.Millisecond}
			var conn *dns.Conn
			defer func() {
				if conn != nil {
					conn.Close()
				}
			}()
			for ctx.Err() == nil {
				i := int(next.Add(1)) - 1
				if i >= len(b.names) {
					return
				}
				at[i] = time.Now()
				out[i], conn = answerA(c, conn, b.dnsAddr, b.names[i])
			}
		}()
	}
	wg.Wait()
	return out, at
}

// answerA asks server for name's A record as a us-east client over conn
// (dialed when nil) and returns the first address ("" on error) and the
// connection to use next (nil after an error: a late reply must not be
// taken for the next query's).
func answerA(c *dns.Client, conn *dns.Conn, server, name string) (string, *dns.Conn) {
	m := new(dns.Msg)
	m.SetQuestion(name, dns.TypeA)
	o := &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT}}
	o.SetUDPSize(1232)
	o.Option = append(o.Option, &dns.EDNS0_SUBNET{
		Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: uint8(benchenv.UsEastClient.Bits()),
		Address: benchenv.UsEastClient.Addr().AsSlice(),
	})
	m.Extra = append(m.Extra, o)
	if conn == nil {
		var err error
		if conn, err = c.Dial(server); err != nil {
			return "", nil
		}
	}
	r, _, err := c.ExchangeWithConn(m, conn)
	if err != nil || r == nil {
		conn.Close()
		return "", nil
	}
	for _, rr := range r.Answer {
		if a, ok := rr.(*dns.A); ok {
			return a.A.String(), conn
		}
	}
	return "", conn
}

var dnsperfQPS = regexp.MustCompile(`Queries per second:\s+([0-9.]+)`)

// qps loads the node with queries for every name for d and returns the
// rate achieved and how it was measured.
func (b *bench) qps(d time.Duration) (float64, string) {
	var q strings.Builder
	for _, n := range b.names {
		q.WriteString(n + " A\n")
	}
	file := filepath.Join(b.dir, "queries.txt")
	if err := os.WriteFile(file, []byte(q.String()), 0o644); err == nil {
		if path, err := exec.LookPath("dnsperf"); err == nil {
			host, port, _ := net.SplitHostPort(b.dnsAddr)
			out, err := exec.Command(path, "-s", host, "-p", port, "-d", file, "-l", strconv.Itoa(int(d.Seconds())), "-c", "4", "-T", "2").CombinedOutput()
			if m := dnsperfQPS.FindSubmatch(out); err == nil && m != nil {
				v, _ := strconv.ParseFloat(string(m[1]), 64)
				return v, fmt.Sprintf("dnsperf, %s, 4 clients, 2 threads", d)
			}
		}
	}
	var n atomic.Int64
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &dns.Client{Timeout: 500 * time.Millisecond}
			for i := w; ctx.Err() == nil; i += 16 {
				m := new(dns.Msg)
				m.SetQuestion(b.names[i%len(b.names)], dns.TypeA)
				if _, _, err := c.Exchange(m, b.dnsAddr); err == nil {
					n.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	return float64(n.Load()) / d.Seconds(), fmt.Sprintf("Go loop, 16 sequential clients, %s (dnsperf not found)", d)
}

// scrape reads the node's metrics: members whose aagtm_policy_member_up is
// 0, the sum of aagtm_policy_failovers_total{kind="failover"}, and how many
// members it reports.
func scrape(url string) (down []string, failovers float64, members int, err error) {
	c := &http.Client{Timeout: 20 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return nil, 0, 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "aagtm_policy_member_up{"):
			members++
			if strings.HasSuffix(line, " 0") {
				down = append(down, label(line, "member"))
			}
		case strings.HasPrefix(line, "aagtm_policy_failovers_total{") && strings.Contains(line, `kind="failover"`):
			f := strings.Fields(line)
			v, _ := strconv.ParseFloat(f[len(f)-1], 64)
			failovers += v
		}
	}
	return down, failovers, members, sc.Err()
}

func label(line, name string) string {
	i := strings.Index(line, name+`="`)
	if i < 0 {
		return "?"
	}
	rest := line[i+len(name)+2:]
	return rest[:strings.IndexByte(rest, '"')]
}

// nodeLogVerdicts reads the node's log: the members it logged as changed
// to down, and how many failovers it logged.
func nodeLogVerdicts(path string) (down map[string]bool, failovers int) {
	down = map[string]bool{}
	data, _ := os.ReadFile(path)
	for _, l := range strings.Split(string(data), "\n") {
		switch {
		case strings.Contains(l, "verdict changed") && strings.Contains(l, "to=down"):
			if i := strings.Index(l, " member="); i >= 0 {
				down[strings.Fields(l[i+8:])[0]] = true
			}
		case strings.Contains(l, "]  aagtm.node: failover:"):
			failovers++
		}
	}
	return down, failovers
}

func countInFile(path, s string) int {
	data, _ := os.ReadFile(path)
	return strings.Count(string(data), s)
}

// memKiB returns a process's resident set now and at its peak (VmHWM).
func memKiB(pid int) (rss, peak int64) {
	data, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, l := range strings.Split(string(data), "\n") {
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		v, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "VmRSS:":
			rss = v
		case "VmHWM:":
			peak = v
		}
	}
	return rss, peak
}

// cpuTicks returns a process's user+system time in clock ticks (1/100 s).
func cpuTicks(pid int) int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(data)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	u, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return u + st
}

func waitHTTP(url string, d time.Duration) error {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s does not answer within %s", url, d)
}

// startRedis starts a redis-server on bind with room for n databases and
// their clients, and returns once it answers PING.
func startRedis(bind, dir string, n int) (string, *exec.Cmd, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", nil, err
	}
	port := freePort(bind)
	addr := net.JoinHostPort(bind, strconv.Itoa(port))
	cmd := exec.Command("redis-server", "--bind", bind, "--port", strconv.Itoa(port), "--save", "", "--appendonly", "no",
		"--dir", dir, "--databases", strconv.Itoa(max(16, n)), "--maxclients", strconv.Itoa(3*n+1000))
	log, err := os.Create(filepath.Join(dir, "redis.log"))
	if err != nil {
		return "", nil, err
	}
	defer log.Close()
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		return "", nil, fmt.Errorf("start redis-server on %s: %w", addr, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if benchenv.Ping(addr) {
			return addr, cmd, nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	return "", nil, fmt.Errorf("redis-server on %s does not answer PING (see %s/redis.log)", addr, dir)
}

// freePort returns a port benchenv.FreePort has not handed out before.
func freePort(host string) int {
	port, err := benchenv.FreePort(host)
	if err != nil {
		fatal(err)
	}
	return port
}

// pct is the nearest-rank percentile of sorted ds.
func pct(ds []time.Duration, p float64) time.Duration {
	i := int(float64(len(ds))*p/100+0.5) - 1
	return ds[min(max(i, 0), len(ds)-1)]
}

func ms(d time.Duration) string { return d.Round(time.Millisecond).String() }
