package probes

import (
	"context"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/aagtm/aagtm/api"
	"github.com/aagtm/aagtm/config"
	"github.com/aagtm/aagtm/ingest"
	"github.com/aagtm/aagtm/internal/testenv"
)

// Region and agent names used throughout the tests.
const (
	use    = testenv.RegionUse
	euw    = testenv.RegionEuw
	agentU = testenv.AgentUse
	agentE = testenv.AgentEuw
)

// startIngest serves an ingest for cfg on addr ("127.0.0.1:0" for any
// port) until the returned stop is called (or the test ends).
func startIngest(t testing.TB, cfg *config.Config, addr string, opts ...ingest.Option) (*ingest.Ingest, *testenv.Recorder, string, func()) {
	t.Helper()
	rec := &testenv.Recorder{}
	in := ingest.New(cfg, testenv.Logger(t), rec.Sink, opts...)
	var lis net.Listener
	var err error
	// A restarted node rebinds its port; retry briefly if the kernel has
	// not released it yet.
	for i := 0; i < 50; i++ {
		if lis, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("listen %s: %v", addr, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- in.Serve(ctx, lis) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Serve: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return in, rec, lis.Addr().String(), stop
}

// runAgent runs a until the returned stop is called (or the test ends).
func runAgent(t testing.TB, a *Agent) func() {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(5 * time.Second):
				t.Errorf("Run did not return within 5s of cancellation")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// reports collects the agent's reports through WithReportHook.
type reports struct {
	mu   sync.Mutex
	reps []*api.Report
}

func (r *reports) hook(rep *api.Report) {
	r.mu.Lock()
	r.reps = append(r.reps, rep)
	r.mu.Unlock()
}

func (r *reports) all() []*api.Report {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*api.Report(nil), r.reps...)
}

// memberOf returns the named member's entry of rep.
func memberOf(rep *api.Report, name string) *api.MemberReport {
	for _, m := range rep.GetMembers() {
		if m.GetMember() == name {
			return m
		}
	}
	return nil
}

// soloTarget is a target for m on an endpoint of its own, dials
// unbounded, probing from agentU in us-east; its clients are closed when
// the test ends.
func soloTarget(t testing.TB, m config.Member, p config.Probes) *target {
	t.Helper()
	tg, err := newTarget(m, p, agentU, use, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		tg.ep.close()
		if tg.http != nil {
			tg.http.CloseIdleConnections()
		}
	})
	return tg
}

// dbPerMember starts a redis-server with n logical databases and returns
// a config of n members in us-east, each on a database of its own (an
// endpoint each, as a Redis Software user has a port per database), with
// interval 1s, timeout 500ms and the given checks.
func dbPerMember(t testing.TB, n int, checks ...config.Check) *config.Config {
	t.Helper()
	srv := testenv.StartRedis(t, testenv.WithArgs("--databases", fmt.Sprint(n), "--maxclients", fmt.Sprint(n+1000)))
	var members []config.Member
	for i := range n {
		members = append(members, testenv.Member(fmt.Sprintf("m%d", i), use, fmt.Sprintf("%s/%d", srv.URL(), i)))
	}
	cfg := testenv.ReportConfig(members...)
	cfg.Probes.Interval = time.Second
	cfg.Probes.Timeout = 500 * time.Millisecond
	cfg.Probes.Checks = checks
	return cfg
}

// newTestAgent is NewAgent for agentU, for ProbeOnce (never Run): the
// clients it opens are closed when the test ends.
func newTestAgent(t testing.TB, cfg *config.Config) *Agent {
	t.Helper()
	a, err := NewAgent(cfg, agentU, testenv.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, e := range a.pending.endpoints {
			e.close()
		}
	})
	return a
}
