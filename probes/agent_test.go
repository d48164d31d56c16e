package probes

import (
	"context"
	"fmt"
	"maps"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/redis/go-redis/v9"

	"github.com/aagtm/aagtm/api"
	"github.com/aagtm/aagtm/config"
	"github.com/aagtm/aagtm/internal/testenv"
)

func TestStoppedMemberDoesNotDelayOthers(t *testing.T) {
	const timeout = 300 * time.Millisecond
	healthy1 := testenv.StartRedis(t)
	stopped := testenv.StartRedis(t)
	healthy2 := testenv.StartRedis(t)
	cfg := testenv.ReportConfig(
		testenv.Member("h1", use, healthy1.URL()),
		testenv.Member("stopped", use, stopped.URL()),
		testenv.Member("h2", euw, healthy2.URL()),
	)
	cfg.Probes.Interval = time.Second
	cfg.Probes.Timeout = timeout
	cfg.Probes.Checks = []config.Check{config.CheckPing, config.CheckEcho, config.CheckKeyspace, config.CheckLag}
	a, err := NewAgent(cfg, agentU, testenv.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	// Warm up connections, then hang one member.
	if _, err := a.ProbeOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	stopped.Stop()

	for round := 0; round < 2; round++ { // the second round reconnects after the reset
		start := time.Now()
		rep, err := a.ProbeOnce(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		took := time.Since(start)
		if took > timeout+roundSlack+50*time.Millisecond {
			t.Errorf("round %d took %s with one hung member; want at most timeout %s + slack", round, took, timeout)
		}
		for _, name := range []string{"h1", "h2"} {
			m := memberOf(rep, name)
			for _, c := range m.GetChecks() {
				if !c.GetOk() {
					t.Errorf("round %d: %s/%s failed: %s", round, name, c.GetName(), c.GetError())
				}
				if d := c.GetDuration().AsDuration(); d > timeout/3 {
					t.Errorf("round %d: %s/%s took %s; a hung member must not slow the others", round, name, c.GetName(), d)
				}
			}
			if m.GetRtt().AsDuration() <= 0 {
				t.Errorf("round %d: %s has no RTT", round, name)
			}
		}
		m := memberOf(rep, "stopped")
		if len(m.GetChecks()) != 4 {
			t.Fatalf("round %d: stopped member has %d check results, want 4", round, len(m.GetChecks()))
		}
		var total time.Duration
		for _, c := range m.GetChecks() {
			if c.GetOk() || c.GetOutcome() != string(OutcomeTimeout) {
				t.Errorf("round %d: stopped/%s = ok %v outcome %s (%s), want a timeout", round, c.GetName(), c.GetOk(), c.GetOutcome(), c.GetError())
			}
			total += c.GetDuration().AsDuration()
		}
		if total < timeout-20*time.Millisecond || total > timeout+roundSlack {
			t.Errorf("round %d: stopped member's checks took %s in all, want about the %s timeout", round, total, timeout)
		}
	}

	// It recovers on the very next round after SIGCONT.
	stopped.Cont()
	rep, _ := a.ProbeOnce(context.Background())
	for _, c := range memberOf(rep, "stopped").GetChecks() {
		if !c.GetOk() {
			t.Errorf("after SIGCONT: %s failed: %s", c.GetName(), c.GetError())
		}
	}
}

// replicator copies heartbeat keys from one server to another after a
// fixed delay. It simulates Active-Active replication between two members
// (plain redis-servers here), with a known lag, and can be paused like a
// broken replication link.
type replicator struct {
	from, to *redis.Client
	key      string
	delay    time.Duration
	paused   atomic.Bool
}

func (r *replicator) run(ctx context.Context) {
	type pending struct {
		value string
		due   time.Time
	}
	var queue []pending
	last := ""
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if r.paused.Load() {
			continue
		}
		if v, err := r.from.Get(ctx, r.key).Result(); err == nil && v != last {
			queue = append(queue, pending{v, time.Now().Add(r.delay)})
			last = v
		}
		for len(queue) > 0 && time.Now().After(queue[0].due) {
			r.to.Set(ctx, r.key, queue[0].value, 0)
			queue = queue[1:]
		}
	}
}

// TestHeartbeatWrittenEveryHeartbeatInterval runs an agent whose probe
// interval is long and checks that its heartbeat on the local member still
// advances every heartbeat interval.
func TestHeartbeatWrittenEveryHeartbeatInterval(t *testing.T) {
	srv := testenv.StartRedis(t)
	cfg := testenv.ReportConfig(testenv.Member("cache-use", use, srv.URL()))
	cfg.Probes.Interval = 2 * time.Second
	cfg.Probes.Timeout = time.Second
	cfg.Probes.HeartbeatInterval = 20 * time.Millisecond
	cfg.Probes.Checks = []config.Check{config.CheckPing, config.CheckLag}
	a, err := NewAgent(cfg, agentU, testenv.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	runAgent(t, a)
	read := func() heartbeat {
		v, err := srv.Do("GET", "aagtm:hb:{us-east}")
		if err != nil {
			return heartbeat{}
		}
		hb, _ := parseHeartbeat(fmt.Sprint(v))
		return hb
	}
	testenv.WaitFor(t, 2*time.Second, "a first heartbeat", func() bool { return read().writer == agentU })
	first := read()
	time.Sleep(300 * time.Millisecond)
	second := read()
	if n := second.seq - first.seq; n < 5 {
		t.Fatalf("heartbeat advanced %d times in 300ms, want ≥ 5 at a 20ms heartbeat interval (probe interval 2s)", n)
	}
	if d := time.Duration(second.ts - first.ts); d < 200*time.Millisecond {
		t.Fatalf("heartbeat timestamp advanced %s in 300ms", d)
	}
}

func TestLagFromReplicatedHeartbeats(t *testing.T) {
	const (
		interval = 100 * time.Millisecond
		delay    = 250 * time.Millisecond
		slack    = 60 * time.Millisecond
	)
	a1, b1 := testenv.StartRedis(t), testenv.StartRedis(t)
	cfg := testenv.ReportConfig(testenv.Member("cache-use", use, a1.URL()), testenv.Member("cache-euw", euw, b1.URL()))
	cfg.Probes.Interval = interval
	cfg.Probes.Timeout = 80 * time.Millisecond
	cfg.Probes.Checks = []config.Check{config.CheckPing, config.CheckLag}

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	from := redis.NewClient(&redis.Options{Addr: a1.Addr()})
	to := redis.NewClient(&redis.Options{Addr: b1.Addr()})
	t.Cleanup(func() { from.Close(); to.Close() })
	repl := &replicator{from: from, to: to, key: "aagtm:hb:{us-east}", delay: delay}
	wg.Add(1)
	go func() { defer wg.Done(); repl.run(ctx) }()

	var reps reports
	a, err := NewAgent(cfg, agentU, testenv.Logger(t), WithReportHook(reps.hook))
	if err != nil {
		t.Fatal(err)
	}
	runAgent(t, a)

	// lags returns cache-euw's lag behind us-east in every report since
	// report index from.
	lags := func(from int) []time.Duration {
		var out []time.Duration
		for _, rep := range reps.all()[from:] {
			if d, ok := memberOf(rep, "cache-euw").GetLag()[use]; ok {
				out = append(out, d.AsDuration())
			}
		}
		return out
	}
	testenv.WaitFor(t, 3*time.Second, "8 lag samples", func() bool { return len(lags(0)) >= 8 })
	// A heartbeat is written every heartbeat interval (20ms), so the
	// measured lag is the true one rounded to that interval, not to the
	// probe interval: within [delay-hb, delay], plus scheduling slack.
	hb := cfg.Probes.HeartbeatInterval
	got := lags(0)
	got = got[len(got)-6:]
	t.Logf("lag samples (replication delay %s, heartbeat interval %s): %v", delay, hb, got)
	for _, d := range got {
		if d < delay-hb-slack || d > delay+slack {
			t.Errorf("lag %s outside [%s, %s] (replication delay %s, heartbeat interval %s); samples %v",
				d, delay-hb-slack, delay+slack, delay, hb, got)
		}
	}
	// The local member has no lag behind its own region, and no source
	// eu-west exists (no agent writes it).
	last := reps.all()[len(reps.all())-1]
	if l := memberOf(last, "cache-use").GetLag(); len(l) != 0 {
		t.Errorf("cache-use lag = %v, want none", l)
	}
	if hb := memberOf(last, "cache-euw").GetHeartbeats()[use]; hb.GetWriter() != agentU {
		t.Errorf("heartbeat read from cache-euw = %v, want one written by %s", hb, agentU)
	}

	// Break replication: the lag grows by about one interval per round.
	repl.paused.Store(true)
	mark := len(reps.all())
	time.Sleep(700 * time.Millisecond)
	grown := lags(mark)
	if len(grown) < 4 {
		t.Fatalf("only %d lag samples while paused", len(grown))
	}
	t.Logf("lag samples while paused: %v", grown)
	if !slices.IsSorted(grown) {
		t.Errorf("lag did not grow monotonically while replication was paused: %v", grown)
	}
	if final := grown[len(grown)-1]; final < delay+500*time.Millisecond {
		t.Errorf("lag %s after 700ms of paused replication, want at least %s; samples %v", final, delay+500*time.Millisecond, grown)
	}

	// Resume: it falls back to the replication delay.
	repl.paused.Store(false)
	mark = len(reps.all())
	testenv.WaitFor(t, 3*time.Second, "lag back to normal", func() bool {
		l := lags(mark)
		return len(l) > 0 && l[len(l)-1] <= delay+slack
	})
}

func TestComputeLag(t *testing.T) {
	hb := func(ts int64, writer string) heartbeat { return heartbeat{seq: uint64(ts), ts: ts, writer: writer} }
	ms := func(n int64) int64 { return n * int64(time.Millisecond) }
	cases := []struct {
		name string
		in   []lagInput
		want map[string]map[string]time.Duration
	}{
		{
			name: "two regions both ways",
			in: []lagInput{
				{member: "a", database: "db", region: "r1", heartbeats: map[string]heartbeat{"r1": hb(ms(1000), "x"), "r2": hb(ms(700), "y")}},
				{member: "b", database: "db", region: "r2", heartbeats: map[string]heartbeat{"r1": hb(ms(800), "x"), "r2": hb(ms(900), "y")}},
			},
			want: map[string]map[string]time.Duration{
				"a": {"r2": 200 * time.Millisecond},
				"b": {"r1": 200 * time.Millisecond},
			},
		},
		{
			name: "source member unreadable: source omitted",
			in: []lagInput{
				{member: "a", database: "db", region: "r1", heartbeats: nil},
				{member: "b", database: "db", region: "r2", heartbeats: map[string]heartbeat{"r1": hb(ms(800), "x")}},
			},
			want: map[string]map[string]time.Duration{},
		},
		{
			name: "different writers are not compared",
			in: []lagInput{
				{member: "a", database: "db", region: "r1", heartbeats: map[string]heartbeat{"r1": hb(ms(1000), "x2")}},
				{member: "b", database: "db", region: "r2", heartbeats: map[string]heartbeat{"r1": hb(ms(800), "x")}},
			},
			want: map[string]map[string]time.Duration{},
		},
		{
			name: "negative difference is zero; databases are separate",
			in: []lagInput{
				{member: "a", database: "db", region: "r1", heartbeats: map[string]heartbeat{"r1": hb(ms(1000), "x")}},
				{member: "b", database: "db", region: "r2", heartbeats: map[string]heartbeat{"r1": hb(ms(1100), "x")}},
				{member: "c", database: "other", region: "r2", heartbeats: map[string]heartbeat{"r1": hb(ms(100), "x")}},
			},
			want: map[string]map[string]time.Duration{"b": {"r1": 0}},
		},
		{
			name: "several members in the source region: freshest is the reference",
			in: []lagInput{
				{member: "a1", database: "db", region: "r1", heartbeats: map[string]heartbeat{"r1": hb(ms(900), "x")}},
				{member: "a2", database: "db", region: "r1", heartbeats: map[string]heartbeat{"r1": hb(ms(1000), "x")}},
				{member: "b", database: "db", region: "r2", heartbeats: map[string]heartbeat{"r1": hb(ms(600), "x")}},
			},
			want: map[string]map[string]time.Duration{"b": {"r1": 400 * time.Millisecond}},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := computeLag(tc.in)
			if len(got) != len(tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
			for m, w := range tc.want {
				for s, d := range w {
					if g, ok := got[m][s]; !ok || g != d {
						t.Errorf("lag(%s→%s) = %v (%v), want %v", s, m, g, ok, d)
					}
				}
			}
		})
	}
	if h, ok := parseHeartbeat(heartbeat{seq: 7, ts: 123, writer: "agent x"}.String()); !ok || h.seq != 7 || h.ts != 123 || h.writer != "agent x" {
		t.Errorf("heartbeat round trip = %+v %v", h, ok)
	}
	for _, bad := range []string{"", "1 2", "x 2 w", "1 y w", "1 2 "} {
		if _, ok := parseHeartbeat(bad); ok {
			t.Errorf("parseHeartbeat(%q) ok", bad)
		}
	}
}

// TestMailboxMerges: reports not yet sent are merged, newest last: the
// newest header (seq, boot id, config hash, sent) and, per member, the
// newest entry, so a round's chunks are never lost to the next chunk and
// an unreachable node costs one round's entries; a report put back under
// a newer one gives way to it.
func TestMailboxMerges(t *testing.T) {
	entry := func(member, outcome string) *api.MemberReport {
		return &api.MemberReport{Member: member, Checks: []*api.CheckResult{{Name: "ping", Outcome: outcome}}}
	}
	report := func(seq uint64, entries ...*api.MemberReport) *api.Report {
		return &api.Report{AgentId: "a", Region: "r", Seq: seq, BootId: fmt.Sprint("boot", seq), ConfigHash: fmt.Sprint("hash", seq),
			Sent: timestamppb.New(time.Unix(int64(seq), 0)), Members: entries}
	}
	outcomes := func(r *api.Report) map[string]string {
		out := map[string]string{}
		for _, m := range r.GetMembers() {
			out[m.GetMember()] = m.GetChecks()[0].GetOutcome()
		}
		return out
	}
	m := newMailbox()
	first := report(1, entry("a1", "pass"), entry("a2", "pass"))
	m.put(first)
	m.put(report(2, entry("b1", "pass")))
	m.put(report(3, entry("a1", "timeout")))
	r, _ := m.take()
	want := map[string]string{"a1": "timeout", "a2": "pass", "b1": "pass"}
	if got := outcomes(r); !maps.Equal(got, want) {
		t.Errorf("merged entries %v, want %v", got, want)
	}
	if r.GetSeq() != 3 || r.GetBootId() != "boot3" || r.GetConfigHash() != "hash3" || r.GetSent().GetSeconds() != 3 || r.GetAgentId() != "a" {
		t.Errorf("merged header %v, want report 3's", r)
	}
	if len(first.GetMembers()) != 2 || first.GetMembers()[0].GetChecks()[0].GetOutcome() != "pass" {
		t.Errorf("merging modified a report put earlier: %v", first)
	}
	if r, _ := m.take(); r != nil {
		t.Fatalf("mailbox not empty after take: %v", r)
	}

	m.put(report(5, entry("a1", "pass")))
	m.putBack(report(4, entry("a1", "timeout"), entry("a2", "timeout")), time.Now())
	r, _ = m.take()
	want = map[string]string{"a1": "pass", "a2": "timeout"}
	if got := outcomes(r); !maps.Equal(got, want) || r.GetSeq() != 5 {
		t.Errorf("put back under a newer report: seq %d entries %v, want seq 5 entries %v", r.GetSeq(), got, want)
	}
}

// TestReportSlots: a sender sends reportBurst reports at once, then one
// every 1/reportRate; idle time refills at most reportBurst.
func TestReportSlots(t *testing.T) {
	now := time.Now()
	b := &reportSlots{tokens: reportBurst, at: now}
	for i := range reportBurst {
		if wait := b.take(now); wait != 0 {
			t.Fatalf("report %d of the burst waits %s", i+1, wait)
		}
	}
	gap := time.Second / reportRate
	if wait := b.take(now); wait <= 0 || wait > gap {
		t.Fatalf("report past the burst waits %s, want (0, %s]", wait, gap)
	}
	if wait := b.take(now.Add(gap)); wait != 0 {
		t.Fatalf("a slot later, the report waits %s", wait)
	}
	now = now.Add(time.Hour)
	sent := 0
	for b.take(now) == 0 {
		sent++
	}
	if sent != reportBurst {
		t.Errorf("after an idle hour %d reports at once, want %d", sent, reportBurst)
	}
}

func TestConfigHash(t *testing.T) {
	base := func() *config.Config {
		return testenv.ReportConfig(testenv.Member("a", use, "redis://:secret@10.0.0.1:6379"), testenv.Member("b", euw, "redis://10.0.0.2:6379"))
	}
	h := ConfigHash(base())
	same := base()
	same.Nodes = []config.Node{{Name: "ns1", Report: "x:1", Admin: "127.0.0.1:9"}}
	same.Security.TLS.Cert = "/other/host/cert.pem"
	same.Databases[0].Members[0].Redis = "redis://:rotated@10.0.0.1:6379"
	if got := ConfigHash(same); got != h {
		t.Errorf("node-local settings and passwords changed the hash")
	}
	diff := base()
	diff.Databases[0].Members[1].Region = use
	if ConfigHash(diff) == h {
		t.Errorf("a member's region change kept the hash")
	}
	diff = base()
	diff.Probes.Timeout++
	if ConfigHash(diff) == h {
		t.Errorf("a probe setting change kept the hash")
	}
}

func TestNewAgentErrors(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(*config.Config)
		id     string
		errHas string
	}{
		{"unknown agent", func(*config.Config) {}, "nobody", `agent "nobody" is not in the config`},
		{"unknown check", func(c *config.Config) { c.Probes.Checks = []config.Check{"telepathy"} }, agentU, "unknown check"},
		{"bad URL", func(c *config.Config) { c.Databases[0].Members[0].Redis = "http://x" }, agentU, "member m1"},
		{"no protection", func(c *config.Config) { c.Security.Insecure = false }, agentU, "security.insecure: true"},
		{"missing token file", func(c *config.Config) { c.Agents[1].TokenFile = "/nonexistent/token" }, agentU, "agents[id=agent-use].token_file"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testenv.ReportConfig(testenv.Member("m1", use, "redis://127.0.0.1:1"))
			tc.mutate(cfg)
			_, err := NewAgent(cfg, tc.id, testenv.Logger(t))
			if err == nil || !strings.Contains(err.Error(), tc.errHas) {
				t.Fatalf("err = %v, want one containing %q", err, tc.errHas)
			}
		})
	}
	t.Run("TLS without client certificate or token", func(t *testing.T) {
		ca := testenv.NewCA(t, "ca")
		cfg := testenv.ReportConfig(testenv.Member("m1", use, "redis://127.0.0.1:1"))
		cfg.Security = config.Security{TLS: config.TLS{CA: ca.Path}}
		_, err := NewAgent(cfg, agentU, testenv.Logger(t))
		if err == nil || !strings.Contains(err.Error(), "needs cert and key (mTLS) or its own agents[].token_file") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("certificate CN is not the agent id", func(t *testing.T) {
		ca := testenv.NewCA(t, "ca")
		cert, key := ca.Client(t, "someone-else")
		cfg := testenv.ReportConfig(testenv.Member("m1", use, "redis://127.0.0.1:1"))
		cfg.Security = config.Security{TLS: config.TLS{Cert: cert, Key: key, CA: ca.Path}}
		_, err := NewAgent(cfg, agentU, testenv.Logger(t))
		if err == nil || !strings.Contains(err.Error(), "CN=agent-use") {
			t.Fatalf("err = %v, want a CN mismatch naming the fix", err)
		}
	})
}

func TestAgentReconfigure(t *testing.T) {
	s1, s2 := testenv.StartRedis(t), testenv.StartRedis(t)
	cfg := testenv.ReportConfig(testenv.Member("m1", use, s1.URL()))
	var reps reports
	a, err := NewAgent(cfg, agentU, testenv.Logger(t), WithReportHook(reps.hook))
	if err != nil {
		t.Fatal(err)
	}
	runAgent(t, a)
	testenv.WaitFor(t, 2*time.Second, "a report", func() bool { return len(reps.all()) > 0 })

	bad := testenv.ReportConfig(testenv.Member("m1", use, s1.URL()))
	bad.Probes.Checks = []config.Check{"nope"}
	if err := a.Reconfigure(bad); err == nil {
		t.Fatal("Reconfigure accepted an unknown check")
	}
	if err := a.Reconfigure(testenv.ReportConfig(testenv.Member("m1", use, s1.URL()), testenv.Member("m2", euw, s2.URL()))); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 2*time.Second, "a report with m2", func() bool {
		r := reps.all()
		m := memberOf(r[len(r)-1], "m2")
		return m != nil && len(m.GetChecks()) == 1 && m.GetChecks()[0].GetOk()
	})
	seqs := []uint64{}
	boots := map[string]bool{}
	for _, r := range reps.all() {
		seqs = append(seqs, r.GetSeq())
		boots[r.GetBootId()] = true
	}
	if !slices.IsSorted(seqs) || seqs[0] != 1 {
		t.Errorf("sequence numbers %v: want increasing from 1 across a reconfigure", seqs)
	}
	if len(boots) != 1 || boots[""] {
		t.Errorf("boot ids %v: want one non-empty boot id per agent process", boots)
	}
}

// silentNode is a real gRPC ReportService that reads reports and never
// acknowledges them, as a node behind a path that drops its replies would
// look to the agent.
type silentNode struct {
	api.UnimplementedReportServiceServer
	streams atomic.Int32
}

func (s *silentNode) Stream(st grpc.BidiStreamingServer[api.Report, api.Ack]) error {
	s.streams.Add(1)
	for {
		if _, err := st.Recv(); err != nil {
			return err
		}
	}
}

// TestSenderDropsStreamWithoutAcks checks the ack watchdog: a stream on
// which nothing is acknowledged for the ack timeout (3s at a 100ms
// interval) is ended and opened again, instead of looking healthy until
// keepalive gives up.
func TestSenderDropsStreamWithoutAcks(t *testing.T) {
	srv := testenv.StartRedis(t)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	node := &silentNode{}
	gs := grpc.NewServer()
	api.RegisterReportServiceServer(gs, node)
	go func() { _ = gs.Serve(lis) }()
	t.Cleanup(gs.Stop)

	cfg := testenv.ReportConfig(testenv.Member("cache-use", use, srv.URL()))
	cfg.Nodes = []config.Node{{Name: "silent", Report: lis.Addr().String()}}
	a, err := NewAgent(cfg, agentU, testenv.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	runAgent(t, a)
	testenv.WaitFor(t, 2*time.Second, "a first stream", func() bool { return node.streams.Load() >= 1 })
	testenv.WaitFor(t, 6*time.Second, "the stream to be reopened after 3s without acks", func() bool { return node.streams.Load() >= 2 })
}
