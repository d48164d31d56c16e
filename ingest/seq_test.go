package ingest

import (
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/aagtm/aagtm/api"
	"github.com/aagtm/aagtm/internal/testenv"
	"github.com/aagtm/aagtm/policy"
)

// booted returns report(...) with the given boot id.
func booted(boot string, seq uint64, ok bool) *api.Report {
	r := report(agentU, use, seq, "cache-use")
	r.BootId = boot
	if !ok {
		r.Members[0].Checks[0] = &api.CheckResult{Name: "ping", Ok: false, Outcome: "timeout", Error: "i/o timeout"}
	}
	return r
}

func TestIngestSequence(t *testing.T) {
	cfg := testenv.ReportConfig(testenv.Member("cache-use", use, "redis://127.0.0.1:1"))
	reg := prometheus.NewRegistry()
	in, rec, addr := startIngest(t, cfg, WithRegisterer(reg))
	c := dialStream(t, addr, insecure.NewCredentials(), "")

	steps := []struct {
		name   string
		rep    *api.Report
		accept bool
		ackSeq uint64 // the last accepted seq of the current boot
		errHas string
	}{
		{"first report", booted("boot-a", 1, true), true, 1, ""},
		{"next", booted("boot-a", 2, true), true, 2, ""},
		{"repeat", booted("boot-a", 2, true), false, 2, "stale seq 2"},
		{"regression", booted("boot-a", 1, true), false, 2, "already reported seq 2"},
		{"huge seq", booted("boot-a", 1<<62, true), true, 1 << 62, ""},
		{"normal seq after the huge one", booted("boot-a", 3, true), false, 1 << 62, "a seq must advance within a boot"},
		{"and the next", booted("boot-a", 4, true), false, 1 << 62, "stale seq 4"},
		{"restart: new boot id", booted("boot-b", 1, true), true, 1, ""},
		{"after the restart", booted("boot-b", 2, true), true, 2, ""},
		{"seq 0 is never accepted", booted("boot-c", 0, true), false, 0, "stale seq 0"},
	}
	var lastObs uint64
	for _, s := range steps {
		before := len(rec.All())
		ack, err := c.send(s.rep)
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if ack.GetAccepted() != s.accept || ack.GetSeq() != s.ackSeq || !strings.Contains(ack.GetError(), s.errHas) || (s.errHas == "") != (ack.GetError() == "") {
			t.Errorf("%s: ack accepted %v seq %d error %q; want %v, %d, %q", s.name, ack.GetAccepted(), ack.GetSeq(), ack.GetError(), s.accept, s.ackSeq, s.errHas)
		}
		obs := rec.All()[before:]
		if (len(obs) > 0) != s.accept {
			t.Errorf("%s: %d observations reached the sink, accepted %v", s.name, len(obs), s.accept)
		}
		for _, o := range obs {
			if o.Seq <= lastObs {
				t.Errorf("%s: observation seq %d does not advance past %d", s.name, o.Seq, lastObs)
			}
			lastObs = o.Seq
		}
	}
	if got := counter(t, reg, "aagtm_ingest_reports_total", "result", "stale_seq"); got != 5 {
		t.Errorf("aagtm_ingest_reports_total{result=stale_seq} = %v, want 5", got)
	}
	if got := counter(t, reg, "aagtm_ingest_reports_total", "result", "accepted"); got != 5 {
		t.Errorf("aagtm_ingest_reports_total{result=accepted} = %v, want 5 (refused reports are never counted as accepted)", got)
	}
	st := in.Agents()
	if len(st) != 1 || st[0].Accepted != 5 || st[0].Refused != 5 || st[0].BootID != "boot-b" || st[0].LastSeq != 2 ||
		!strings.Contains(st[0].LastRefusal, "stale seq 0") {
		t.Errorf("status %+v", st)
	}
}

// An agent restarted with its clock an hour behind (a new boot id, seq
// from 1, reports stamped an hour in the past) counts again at once: the
// engine takes its observations, which reach the sink within two intervals.
func TestIngestClockSteppedRestart(t *testing.T) {
	cfg := testenv.ReportConfig(testenv.Member("cache-use", use, "redis://127.0.0.1:1"))
	// Long enough that a loaded test machine's RPC latency does not eat
	// the two-interval bound.
	cfg.Probes.Interval, cfg.Probes.Timeout = 500*time.Millisecond, 400*time.Millisecond
	interval := cfg.Probes.Interval
	var mu sync.Mutex
	engine := policy.New(cfg)
	type arrival struct {
		seq uint64
		at  time.Time
	}
	var arrivals []arrival
	// The node's clock, injected: it runs from a fixed start.
	start := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	began := time.Now()
	clock := func() time.Time { return start.Add(time.Since(began)) }
	in := New(cfg, testenv.Logger(t), func(obs []policy.Observation) {
		mu.Lock()
		defer mu.Unlock()
		for _, o := range obs {
			engine.Observe(o)
			arrivals = append(arrivals, arrival{o.Seq, time.Now()})
		}
	}, WithClock(clock))
	addr := serve(t, in)
	vantage := func() policy.VantageState {
		mu.Lock()
		defer mu.Unlock()
		snap := engine.Evaluate(clock(), policy.Overrides{})
		for _, v := range snap.Members["cache-use"].Vantages {
			if v.Agent == agentU {
				return v
			}
		}
		return policy.VantageState{}
	}

	// Boot A, clock right: seq 1000..1002, passing.
	agentClock := clock()
	a := dialStream(t, addr, insecure.NewCredentials(), "")
	for seq := uint64(1000); seq < 1003; seq++ {
		r := booted("boot-a", seq, true)
		r.Sent = timestamppb.New(agentClock)
		if ack, err := a.send(r); err != nil || !ack.GetAccepted() {
			t.Fatalf("boot A seq %d: ack %v, error %v", seq, ack, err)
		}
	}
	before := vantage()

	// Boot B, the agent's clock stepped back an hour, seq from 1, failing:
	// sent one interval apart, as an agent would.
	b := dialStream(t, addr, insecure.NewCredentials(), "")
	restarted := time.Now()
	for seq := uint64(1); seq <= 2; seq++ {
		r := booted("boot-b", seq, false)
		r.Sent = timestamppb.New(agentClock.Add(-time.Hour))
		ack, err := b.send(r)
		if err != nil || !ack.GetAccepted() {
			t.Fatalf("boot B seq %d: ack %v, error %v; want accepted", seq, ack, err)
		}
		if seq == 1 {
			time.Sleep(interval)
		}
	}
	after := vantage()
	mu.Lock()
	last := arrivals[len(arrivals)-1]
	mu.Unlock()
	if d := last.at.Sub(restarted); d > 2*interval {
		t.Errorf("the restarted agent's observations reached the sink %s after its restart, want within 2 intervals (%s)", d, 2*interval)
	}
	if after.LastSeq <= before.LastSeq || after.Failures != 2 {
		t.Errorf("engine's vantage before %+v, after %+v: want its seq advanced and 2 failures counted", before, after)
	}
}

// Two streams of one agent delivering at once cannot hand the sink its
// observations out of order.
func TestIngestConcurrentStreamsKeepOrder(t *testing.T) {
	cfg := testenv.ReportConfig(testenv.Member("cache-use", use, "redis://127.0.0.1:1"))
	var mu sync.Mutex
	var seqs []uint64
	in := New(cfg, testenv.Logger(t), func(obs []policy.Observation) {
		mu.Lock()
		defer mu.Unlock()
		for _, o := range obs {
			seqs = append(seqs, o.Seq)
		}
	}, WithRateLimit(0))
	addr := serve(t, in)
	var next atomic.Uint64
	var wg sync.WaitGroup
	for range 2 {
		c := dialStream(t, addr, insecure.NewCredentials(), "")
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				if _, err := c.send(booted("boot-a", next.Add(1), true)); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	if len(seqs) == 0 {
		t.Fatal("nothing accepted")
	}
	for i := 1; i < len(seqs); i++ {
		if seqs[i] <= seqs[i-1] {
			t.Fatalf("the sink got seq %d after %d", seqs[i], seqs[i-1])
		}
	}
	t.Logf("%d of 200 reports accepted in order (the rest arrived after a higher seq)", len(seqs))
}

// An agent removed from the config and added again reports with numbers
// above those it had: the engine does not ignore it.
func TestIngestSequenceSurvivesAgentRemoval(t *testing.T) {
	cfg := testenv.ReportConfig(testenv.Member("cache-use", use, "redis://127.0.0.1:1"))
	in, rec, addr := startIngest(t, cfg)
	c := dialStream(t, addr, insecure.NewCredentials(), "")
	for seq := uint64(1); seq <= 3; seq++ {
		if ack, err := c.send(booted("boot-a", seq, true)); err != nil || !ack.GetAccepted() {
			t.Fatalf("seq %d: ack %v, error %v", seq, ack, err)
		}
	}
	last := rec.All()[2].Seq
	without := testenv.ReportConfig(testenv.Member("cache-use", use, "redis://127.0.0.1:1"))
	without.Agents = without.Agents[:1] // agent-euw only
	if err := in.Reconfigure(without); err != nil {
		t.Fatal(err)
	}
	if err := in.Reconfigure(cfg); err != nil {
		t.Fatal(err)
	}
	if ack, err := c.send(booted("boot-a", 1, true)); err != nil || !ack.GetAccepted() {
		t.Fatalf("after re-adding the agent: ack %v, error %v; want a fresh baseline", ack, err)
	}
	if got := rec.All()[3].Seq; got <= last {
		t.Errorf("observation seq %d after re-adding the agent, want above %d", got, last)
	}
}
