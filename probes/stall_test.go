package probes

import (
	"context"
	"testing"
	"time"

	"github.com/aagtm/aagtm/config"
	"github.com/aagtm/aagtm/internal/testenv"
)

// TestStallWatchStalledAt: wake-ups more than a tick late are stalls, and
// at a moment inside one the agent has been stalled since its start.
func TestStallWatchStalledAt(t *testing.T) {
	const tick = 10 * time.Millisecond
	base := time.Now().Add(-time.Hour) // long past: nothing is pending now
	at := func(ms int) time.Time { return base.Add(time.Duration(ms) * time.Millisecond) }
	// Wakes at 0, 10, 20 (on time), 300 (a stall from 30), 310, 335 (a
	// stall from 320), then the watch stops.
	wakes := []int{0, 10, 20, 300, 310, 335}
	tests := []struct {
		name string
		at   int
		want time.Duration
	}{
		{"running, before any stall", 25, 0},
		{"early in the long stall", 40, 10 * time.Millisecond},
		{"late in the long stall", 290, 260 * time.Millisecond},
		{"running between stalls", 315, 0},
		{"in the short stall", 330, 10 * time.Millisecond},
		{"running after every stall", 900, 0},
	}
	w := newStallWatch(tick)
	for _, ms := range wakes {
		w.woke(at(ms))
	}
	w.woke(time.Time{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := w.stalledAt(at(tt.at)); got != tt.want {
				t.Errorf("stalledAt(%d ms) = %s, want %s", tt.at, got, tt.want)
			}
		})
	}
}

// TestStalledAgentTimeoutNotMeasured: a hung member's probe is a timeout
// when the agent ran throughout, and not measured when the agent itself
// was not running at the probe's deadline (its stall watch has not woken
// since long before, as in a stopped or starved process): the reply may
// have come while nobody read it; that round leaves the member's last
// evidence (the timeout) in place.
func TestStalledAgentTimeoutNotMeasured(t *testing.T) {
	const timeout = 300 * time.Millisecond
	srv := testenv.StartRedis(t)
	cfg := testenv.ReportConfig(testenv.Member("m1", use, srv.URL()))
	cfg.Probes.Interval = time.Second
	cfg.Probes.Timeout = timeout
	cfg.Probes.Checks = []config.Check{config.CheckPing}
	a := newTestAgent(t, cfg)
	if _, err := a.ProbeOnce(context.Background()); err != nil { // connect
		t.Fatal(err)
	}
	srv.Stop()
	t.Cleanup(srv.Cont)
	tests := []struct {
		name    string
		stalled bool
		want    Outcome
	}{
		{"agent running", false, OutcomeTimeout},
		{"agent stalled", true, OutcomeNotMeasured},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.stalled {
				a.stalls.woke(time.Now().Add(-time.Minute)) // and not since
			}
			rep, err := a.ProbeOnce(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			c := rep.GetMembers()[0].GetChecks()[0]
			if c.GetOutcome() != string(tt.want) {
				t.Errorf("outcome = %s (%s), want %s", c.GetOutcome(), c.GetError(), tt.want)
			}
			// The round that measured nothing keeps the member's last
			// evidence: a dial finding no slot still fails like it.
			ep := a.pending.targets[0].ep
			ep.mu.Lock()
			failed := ep.failed
			ep.mu.Unlock()
			if failed != OutcomeTimeout {
				t.Errorf("endpoint's last failure = %q, want %q", failed, OutcomeTimeout)
			}
		})
	}
}
