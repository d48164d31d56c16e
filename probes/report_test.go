package probes

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aagtm/aagtm/api"
	"github.com/aagtm/aagtm/config"
	"github.com/aagtm/aagtm/ingest"
	"github.com/aagtm/aagtm/internal/testenv"
)

// withNode returns a copy of cfg whose agents report to addr.
func withNode(cfg *config.Config, addr string) *config.Config {
	c := *cfg
	c.Nodes = []config.Node{{Name: "ns1", Report: addr}}
	return &c
}

func TestAgentReportsToIngestOverMTLS(t *testing.T) {
	srv := testenv.StartRedis(t)
	p := testenv.NewPKI(t, agentU)
	base := testenv.ReportConfig(testenv.Member("cache-use", use, srv.URL()))
	base.Probes.Checks = []config.Check{config.CheckPing, config.CheckEcho}

	nodeCfg := *base
	nodeCfg.Security = p.NodeSecurity()
	in, rec, addr, _ := startIngest(t, &nodeCfg, "127.0.0.1:0", ingest.WithNodeName("ns1"))

	agentCfg := withNode(base, addr)
	agentCfg.Security = p.AgentSecurity()
	var mu sync.Mutex
	var acks []*api.Ack
	a, err := NewAgent(agentCfg, agentU, testenv.Logger(t), WithAckHook(func(node string, ack *api.Ack) {
		mu.Lock()
		acks = append(acks, ack)
		mu.Unlock()
	}))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	runAgent(t, a)
	testenv.WaitFor(t, 3*time.Second, "3 observations", func() bool { return len(rec.All()) >= 3 })

	obs := rec.All()
	for i, o := range obs {
		if o.Agent != agentU || o.Region != use || o.Member != "cache-use" {
			t.Errorf("observation %d: agent %s region %s member %s", i, o.Agent, o.Region, o.Member)
		}
		if !o.Passed() || len(o.Checks) != 2 || o.Checks[0].Check != "ping" || o.Checks[1].Check != "echo" {
			t.Errorf("observation %d: checks %+v", i, o.Checks)
		}
		if o.RTT <= 0 || o.RTT > 50*time.Millisecond {
			t.Errorf("observation %d: RTT %s", i, o.RTT)
		}
		if o.Time.Before(start) || o.Time.After(time.Now()) {
			t.Errorf("observation %d: time %s not the node's receive time", i, o.Time)
		}
		if i > 0 && o.Seq <= obs[i-1].Seq {
			t.Errorf("observation %d: seq %d not above %d", i, o.Seq, obs[i-1].Seq)
		}
	}
	st := in.Agents()
	if len(st) != 1 || st[0].ID != agentU || st[0].LastSeq < uint64(len(obs)) || !st[0].Connected || st[0].BootID == "" ||
		st[0].LastSeen.IsZero() || st[0].Accepted < 3 || st[0].ConfigHash != ConfigHash(base) {
		t.Errorf("agent status %+v", st)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(acks) == 0 {
		t.Fatal("no acks")
	}
	ack := acks[0]
	if ack.GetError() != "" || !ack.GetAccepted() || ack.GetNode() != "ns1" || ack.GetConfigHash() != ConfigHash(base) || ack.GetSeq() != 1 {
		t.Errorf("ack %v", ack)
	}
}

// dialRaw opens a report stream with the given transport credentials and

func TestAgentReportingForAnotherRegionIsRejected(t *testing.T) {
	srv := testenv.StartRedis(t)
	p := testenv.NewPKI(t, agentU)
	nodeCfg := testenv.ReportConfig(testenv.Member("cache-use", use, srv.URL()))
	nodeCfg.Security = p.NodeSecurity()
	_, rec, addr, _ := startIngest(t, nodeCfg, "127.0.0.1:0")

	// The agent's (stale) config puts it in eu-west; the node's in us-east.
	agentCfg := withNode(testenv.ReportConfig(testenv.Member("cache-use", use, srv.URL())), addr)
	agentCfg.Agents = []config.Agent{{ID: agentU, Region: euw}}
	agentCfg.Security = p.AgentSecurity()
	acks := make(chan *api.Ack, 100)
	a, err := NewAgent(agentCfg, agentU, testenv.Logger(t), WithAckHook(func(_ string, ack *api.Ack) {
		select {
		case acks <- ack:
		default:
		}
	}))
	if err != nil {
		t.Fatal(err)
	}
	runAgent(t, a)
	select {
	case ack := <-acks:
		if !strings.Contains(ack.GetError(), `bound to region "us-east"`) {
			t.Fatalf("ack error %q, want a region rejection", ack.GetError())
		}
		if ack.GetConfigHash() == ConfigHash(agentCfg) {
			t.Errorf("node and agent configs differ but the ack's hash matches the agent's")
		}
	case <-time.After(3 * time.Second):
		t.Fatal("no ack")
	}
	if n := len(rec.All()); n != 0 {
		t.Fatalf("%d observations of a rejected agent reached the sink", n)
	}
}

func TestAgentReconnectsAfterNodeRestart(t *testing.T) {
	srv := testenv.StartRedis(t)
	cfg := testenv.ReportConfig(testenv.Member("cache-use", use, srv.URL()))
	_, rec1, addr, stop1 := startIngest(t, cfg, "127.0.0.1:0")

	// acks records the report seq of every accepted report, in order.
	var mu sync.Mutex
	var acked []uint64
	a, err := NewAgent(withNode(cfg, addr), agentU, testenv.Logger(t), WithAckHook(func(_ string, ack *api.Ack) {
		if ack.GetAccepted() {
			mu.Lock()
			acked = append(acked, ack.GetSeq())
			mu.Unlock()
		}
	}))
	if err != nil {
		t.Fatal(err)
	}
	ackedSeqs := func() []uint64 {
		mu.Lock()
		defer mu.Unlock()
		return append([]uint64(nil), acked...)
	}
	runAgent(t, a)
	testenv.WaitFor(t, 3*time.Second, "observations before the restart", func() bool { return len(rec1.All()) >= 2 })

	stop1() // node goes down; the agent keeps probing
	down := len(rec1.All())
	before := ackedSeqs()
	time.Sleep(500 * time.Millisecond)
	if n := len(rec1.All()); n != down {
		t.Fatalf("stopped node still received %d observations", n-down)
	}

	_, rec2, _, _ := startIngest(t, cfg, addr) // same address
	restarted := time.Now()
	testenv.WaitFor(t, 5*time.Second, "observations after the restart", func() bool { return len(rec2.All()) >= 2 })
	t.Logf("reports resumed %s after the node came back", time.Since(restarted).Round(time.Millisecond))
	// Only the latest report was kept while the node was away: the first
	// one after reconnecting is recent, not a backlog.
	after := ackedSeqs()[len(before):]
	if len(after) == 0 || len(before) == 0 {
		t.Fatalf("acks before %v, after %v", before, after)
	}
	if gap := after[0] - before[len(before)-1]; gap < 5 {
		t.Errorf("first report after the restart has seq +%d; want a fresh one, not a backlog", gap)
	}
}

func TestAgentSendsItsOwnToken(t *testing.T) {
	srv := testenv.StartRedis(t)
	p := testenv.NewPKI(t, agentU)
	dir := t.TempDir()
	cfg := testenv.ReportConfig(testenv.Member("cache-use", use, srv.URL()))
	for i, a := range cfg.Agents {
		f := filepath.Join(dir, a.ID+".token")
		if err := os.WriteFile(f, []byte("token-of-"+a.ID+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg.Agents[i].TokenFile = f
	}
	// Token auth over server-only TLS: the node has a certificate, agents
	// verify it against the CA and present their own token.
	nodeCfg := *cfg
	nodeCfg.Security = config.Security{TLS: config.TLS{Cert: p.NodeCert, Key: p.NodeKey}}
	in, rec, addr, _ := startIngest(t, &nodeCfg, "127.0.0.1:0")

	agentCfg := withNode(cfg, addr)
	agentCfg.Security = config.Security{TLS: config.TLS{CA: p.CA.Path}}
	a, err := NewAgent(agentCfg, agentU, testenv.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	runAgent(t, a)
	testenv.WaitFor(t, 3*time.Second, "observations from a token agent", func() bool { return len(rec.All()) > 0 })
	st := in.Agents()
	if len(st) != 1 || st[0].ID != agentU || !st[0].Connected {
		t.Fatalf("status %+v, want agent-use connected", st)
	}

	// Rotation: a new token in the file, the node reloads and ends the old
	// stream; the agent reconnects with the token now in the file.
	if err := os.WriteFile(cfg.Agents[1].TokenFile, []byte("rotated\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	reloaded := time.Now()
	if err := in.Reconfigure(&nodeCfg); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 5*time.Second, "agent-use back on a new stream with the rotated token", func() bool {
		st := in.Agents()
		return len(st) == 1 && st[0].Connected && st[0].StreamSince.After(reloaded) && st[0].LastSeen.After(st[0].StreamSince)
	})
}

// TestSenderPacesAndMergesReports: 60 reports put into a sender 10 ms
// apart once its stream is open (chunks of one member each, faster than a
// large round sends them) reach a real node over gRPC as at most
// reportBurst + reportRate a second reports, merged, and every member's
// entry arrives: none is lost to the chunk after it.
func TestSenderPacesAndMergesReports(t *testing.T) {
	const chunks = 60
	var members []config.Member
	for i := range chunks {
		members = append(members, testenv.Member(fmt.Sprintf("m%d", i), use, "redis://127.0.0.1:1"))
	}
	cfg := testenv.ReportConfig(members...)
	_, rec, addr, _ := startIngest(t, cfg, "127.0.0.1:0")
	agentCfg := withNode(cfg, addr)
	d, err := newDialSettings(agentCfg, agentU)
	if err != nil {
		t.Fatal(err)
	}
	var accepted atomic.Int64
	s := startSender(context.Background(), agentCfg.Nodes[0], d, time.Second, testenv.Logger(t), func(_ string, ack *api.Ack) {
		if ack.GetAccepted() {
			accepted.Add(1)
		}
	})
	t.Cleanup(s.stop)
	put := func(i int) {
		s.box.put(&api.Report{AgentId: agentU, Region: use, BootId: "b", Seq: uint64(i + 1),
			Members: []*api.MemberReport{{Member: members[i].Name, Checks: []*api.CheckResult{{Name: "ping", Ok: true, Outcome: "pass"}}}}})
	}
	put(0)
	testenv.WaitFor(t, 5*time.Second, "the stream open and a first report accepted", func() bool { return accepted.Load() == 1 })
	accepted.Store(0)
	start := time.Now()
	for i := 1; i < chunks; i++ {
		put(i)
		time.Sleep(10 * time.Millisecond)
	}
	seen := func() map[string]bool {
		m := map[string]bool{}
		for _, o := range rec.All() {
			m[o.Member] = true
		}
		return m
	}
	testenv.WaitFor(t, 5*time.Second, "every member's entry at the node", func() bool { return len(seen()) == chunks })
	took := time.Since(start)
	if max := reportBurst + int64(took.Seconds()*reportRate) + 1; accepted.Load() > max {
		t.Errorf("%d reports in %s, want at most %d (burst %d, %d a second)", accepted.Load(), took, max, reportBurst, reportRate)
	}
	if accepted.Load() >= chunks-1 {
		t.Errorf("%d reports for %d chunks: none was merged", accepted.Load(), chunks-1)
	}
}
