package policy

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aagtm/aagtm/config"
)

func TestFailoverEvent(t *testing.T) {
	tests := []struct {
		name string
		// steps run before the failover; each is (vantages that start
		// failing, rounds to run).
		steps   []step
		lag     time.Duration // lag of use behind every region; 0: none reported
		wantDet time.Duration
	}{
		{
			name:    "all vantages at once",
			steps:   []step{{regions, 2}},
			lag:     12 * time.Millisecond,
			wantDet: time.Second,
		},
		{
			// us-east's run does not count: ap-south's completed the
			// quorum, and it started a second before.
			name:    "quorum reached later: detection from the run that completed it",
			steps:   []step{{[]string{"us-east"}, 2}, {[]string{"ap-south"}, 2}},
			wantDet: time.Second,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, testConfig())
			if tt.lag > 0 {
				h.setLag(use, tt.lag)
			}
			var evs []Event
			for _, s := range tt.steps {
				h.fail(euw, s.agents...)
				evs = append(evs, h.rounds(s.rounds)...)
			}
			if len(evs) != 1 {
				t.Fatalf("events = %+v, want 1", evs)
			}
			e := evs[0]
			want := Event{Kind: Failover, Database: "cache", Region: "eu-west", From: euw, To: use, At: h.now,
				Detection: tt.wantDet, RPOEstimate: tt.lag, RPOKnown: tt.lag > 0, Reason: e.Reason}
			if e != want {
				t.Fatalf("event\n got %+v\nwant %+v", e, want)
			}
			if !strings.HasPrefix(e.Reason, "cache-euw → cache-use: cache-euw down: timeout (2/3 vantages)") &&
				!strings.HasPrefix(e.Reason, "cache-euw → cache-use: cache-euw down: timeout (3/3 vantages)") {
				t.Errorf("reason %q", e.Reason)
			}
			if len(h.snap.Recent) != 1 || h.snap.Recent[0] != e {
				t.Errorf("Recent = %+v", h.snap.Recent)
			}
		})
	}
}

type step struct {
	agents []string
	rounds int
}

func TestFailoverModeOneEvent(t *testing.T) {
	h := newHarness(t, testConfig(func(d *config.Database) { d.Mode = config.ModeFailover }))
	h.setLag(euw, 40*time.Millisecond)
	h.fail(use)
	evs := h.rounds(2)
	if len(evs) != 1 {
		t.Fatalf("events = %+v, want exactly one", evs)
	}
	e := evs[0]
	if e.Kind != Failover || e.Region != "" || e.From != use || e.To != euw || e.RPOEstimate != 40*time.Millisecond || !e.RPOKnown {
		t.Fatalf("event = %+v", e)
	}
	// Failback after the hold, again one event.
	h.heal(use)
	evs = h.rounds(40)
	if len(evs) != 1 || evs[0].Kind != Failback || evs[0].Region != "" || evs[0].To != use {
		t.Fatalf("events = %+v, want one failback", evs)
	}
}

func TestRecentCapped(t *testing.T) {
	h := newHarness(t, testConfig())
	var before *Snapshot
	var kept []Event
	for i := range RecentEvents + 10 {
		before, kept = h.snap, slices.Clone(h.snap.Recent)
		h.ov.Drained[euw] = i%2 == 0
		h.round()
	}
	if got := len(h.snap.Recent); got != RecentEvents {
		t.Fatalf("len(Recent) = %d, want %d", got, RecentEvents)
	}
	if len(h.snap.Events) != 1 || h.snap.Recent[RecentEvents-1] != h.snap.Events[0] {
		t.Error("Recent does not end with the latest event")
	}
	if !slices.Equal(before.Recent, kept) {
		t.Error("an earlier snapshot's Recent changed")
	}
}

func TestClassifyChange(t *testing.T) {
	t.Run("member removed by reconfigure", func(t *testing.T) {
		h := newHarness(t, testConfig())
		cfg := testConfig(func(d *config.Database) { d.Members = d.Members[:2] })
		h.e.Reconfigure(cfg)
		h.cfg = cfg
		evs := h.rounds(1)
		if len(evs) != 1 || evs[0].Kind != Change || evs[0].Region != "ap-south" ||
			!strings.Contains(evs[0].Reason, "no longer configured") {
			t.Fatalf("events = %+v", evs)
		}
	})
	t.Run("ranking change", func(t *testing.T) {
		h := newHarness(t, testConfig())
		h.e.SetRanker(func(in RankInput) []string { return []string{aps} })
		evs := h.rounds(1)
		for _, e := range evs {
			if e.Kind != Change || !strings.HasSuffix(e.Reason, "ranking changed") {
				t.Errorf("event %+v", e)
			}
		}
		if len(evs) != 2 {
			t.Errorf("%d events, want 2", len(evs))
		}
	})
}
