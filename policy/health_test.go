package policy

import (
	"fmt"
	"testing"
	"time"

	"github.com/aagtm/aagtm/config"
)

func TestInitialSnapshot(t *testing.T) {
	h := newHarness(t, testConfig())
	h.wantFirsts(nearest...)
	if h.snap.Serial != 1 {
		t.Errorf("Serial = %d, want 1", h.snap.Serial)
	}
	for _, name := range []string{use, euw, aps} {
		st := h.snap.Members[name]
		if st.Verdict != Up || !st.Settled || st.LagKnown || len(st.Vantages) != 3 {
			t.Errorf("%s: initial status %+v", name, st)
		}
	}
	if len(h.snap.Hosts[host].ByRegion) != len(regions) {
		t.Errorf("ByRegion has %d regions, want %d", len(h.snap.Hosts[host].ByRegion), len(regions))
	}
	if _, ok := h.snap.Lookup("CACHE.gtm.Example.com.", "eu-west"); !ok {
		t.Error("Lookup is case-sensitive")
	}
	if _, ok := h.snap.Lookup("other.gtm.example.com.", "eu-west"); ok {
		t.Error("Lookup of an unknown host succeeded")
	}
}

func TestRiseFall(t *testing.T) {
	tests := []struct {
		name string
		// script: true = a failing round of euw from every vantage.
		script      []bool
		wantVerdict Verdict
		wantFirst   string // for eu-west
	}{
		{"single lost probe does not fail over", []bool{true, false, false}, Up, euw},
		{"one lost probe then pass then loss", []bool{true, false, true, false}, Up, euw},
		{"fall consecutive failures fail over", []bool{true, true}, Down, use},
		{"one pass after down is not enough (rise 2)", []bool{true, true, false}, Down, use},
		{"rise consecutive passes bring it up", []bool{true, true, false, false}, Up, use /* failback hold */},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, testConfig())
			for _, f := range tt.script {
				if f {
					h.fail(euw)
				} else {
					h.heal(euw)
				}
				h.round()
			}
			if got := h.verdict(euw); got != tt.wantVerdict {
				t.Errorf("verdict = %s, want %s", got, tt.wantVerdict)
			}
			if got := h.first("eu-west"); got != tt.wantFirst {
				t.Errorf("eu-west first = %s, want %s (%s)", got, tt.wantFirst, h.answer("eu-west").Reason)
			}
		})
	}
}

func TestQuorum(t *testing.T) {
	tests := []struct {
		quorum config.Quorum
		// downFrom lists the vantages that see euw failing.
		downFrom []string
		want     Verdict
	}{
		{config.Quorum{Kind: "majority"}, []string{"us-east"}, Up},
		{config.Quorum{Kind: "majority"}, []string{"us-east", "ap-south"}, Down},
		{config.Quorum{Kind: "majority"}, []string{"us-east", "ap-south", "eu-west"}, Down},
		{config.Quorum{Kind: "any"}, nil, Up},
		{config.Quorum{Kind: "any"}, []string{"ap-south"}, Down},
		{config.Quorum{Kind: "all"}, []string{"us-east", "ap-south"}, Up},
		{config.Quorum{Kind: "all"}, []string{"us-east", "ap-south", "eu-west"}, Down},
		{config.Quorum{Kind: "count", Count: 2}, []string{"us-east"}, Up},
		{config.Quorum{Kind: "count", Count: 2}, []string{"us-east", "eu-west"}, Down},
		// A numeric quorum N decides only with N voting vantages: with
		// three, a quorum of 5 never decides (fail-static, up).
		{config.Quorum{Kind: "count", Count: 5}, []string{"us-east", "eu-west"}, Up},
		{config.Quorum{Kind: "count", Count: 5}, []string{"us-east", "eu-west", "ap-south"}, Up},
	}
	for _, tt := range tests {
		t.Run(tt.quorum.String()+"/"+string(tt.want)+"/"+itoa(len(tt.downFrom)), func(t *testing.T) {
			cfg := testConfig()
			cfg.Probes.Quorum = tt.quorum
			h := newHarness(t, cfg)
			if len(tt.downFrom) > 0 {
				h.fail(euw, tt.downFrom...)
			}
			h.rounds(3)
			if got := h.verdict(euw); got != tt.want {
				t.Fatalf("verdict = %s, want %s", got, tt.want)
			}
			wantFirst := euw
			if tt.want == Down {
				wantFirst = use
			}
			if got := h.first("eu-west"); got != wantFirst {
				t.Errorf("eu-west first = %s, want %s", got, wantFirst)
			}
		})
	}
}

func itoa(n int) string { return string(rune('0' + n)) }

func TestFailStatic(t *testing.T) {
	tests := []struct {
		name    string
		failEuw bool
		want    Verdict
	}{
		{"down stays down", true, Down},
		{"up stays up", false, Up},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, testConfig())
			if tt.failEuw {
				h.fail(euw)
			}
			h.rounds(3)
			for _, a := range regions {
				h.silent[a] = true
			}
			h.rounds(10) // far beyond stale_after
			st := h.snap.Members[euw]
			if st.Verdict != tt.want {
				t.Fatalf("verdict = %s, want %s", st.Verdict, tt.want)
			}
			for _, v := range st.Vantages {
				if v.Fresh {
					t.Errorf("vantage %s still fresh", v.Agent)
				}
			}
			if tt.want == Down && h.first("eu-west") != use {
				t.Errorf("eu-west first = %s, want %s", h.first("eu-west"), use)
			}
			if tt.want == Down && h.answer("eu-west").Reason == "" {
				t.Error("no reason")
			}
		})
	}
}

func TestStaleVantageIsAbsent(t *testing.T) {
	t.Run("silent vantage does not count as down", func(t *testing.T) {
		h := newHarness(t, testConfig())
		h.silent["us-east"] = true
		h.fail(euw, "eu-west")
		h.rounds(5)
		// Fresh: 2 vantages, one down: majority of 2 needs 2.
		if got := h.verdict(euw); got != Up {
			t.Fatalf("verdict = %s, want up", got)
		}
		h.fail(euw, "ap-south")
		h.rounds(2)
		if got := h.verdict(euw); got != Down {
			t.Fatalf("verdict = %s, want down (2/2 fresh)", got)
		}
	})
	t.Run("a down vantage that goes silent stops voting", func(t *testing.T) {
		cfg := testConfig()
		cfg.Probes.Quorum = config.Quorum{Kind: "any"}
		h := newHarness(t, cfg)
		h.fail(euw, "us-east")
		h.rounds(2)
		if got := h.verdict(euw); got != Down {
			t.Fatalf("verdict = %s, want down (quorum any)", got)
		}
		h.silent["us-east"] = true
		h.rounds(4)
		if got := h.verdict(euw); got != Up {
			t.Fatalf("verdict = %s, want up once the down vantage is stale", got)
		}
	})
}

func TestFailbackHold(t *testing.T) {
	h := newHarness(t, testConfig())
	h.fail(euw)
	h.rounds(2)
	h.wantFirsts(aps, use, use)

	// Recovers, but is lagging 900ms behind the others.
	h.heal(euw)
	h.setLag(euw, 900*time.Millisecond)
	h.rounds(2)
	if h.verdict(euw) != Up {
		t.Fatal("euw not up after rise")
	}
	h.rounds(60)
	h.wantFirsts(aps, use, use) // never failed back to while lagging
	st := h.snap.Members[euw]
	if st.Settled || !st.Lagging || !st.HealthySince.IsZero() {
		t.Fatalf("lagging recovering member: %+v", st)
	}

	// Catches up: the hold starts now.
	h.setLag(euw, 10*time.Millisecond)
	h.round()
	start := h.now
	for h.now.Sub(start) < 29*time.Second {
		h.round()
		h.wantFirsts(aps, use, use)
	}
	// A lag spike restarts the hold clock.
	h.setLag(euw, 900*time.Millisecond)
	h.round()
	h.setLag(euw, 10*time.Millisecond)
	h.round()
	start = h.now
	for h.now.Sub(start) < 29*time.Second {
		h.round()
		h.wantFirsts(aps, use, use)
	}
	// And a lost probe-round pair (down) restarts it too.
	h.fail(euw)
	h.rounds(2)
	h.heal(euw)
	h.rounds(2)
	start = h.now
	var evs []Event
	for h.now.Sub(start) < 30*time.Second {
		evs = append(evs, h.round().Events...)
	}
	h.wantFirsts(aps, euw, use)
	if len(evs) != 1 || evs[0].Kind != Failback || evs[0].From != use || evs[0].To != euw || evs[0].Region != "eu-west" {
		t.Fatalf("events = %+v, want one failback use→euw in eu-west", evs)
	}
	if !h.snap.Members[euw].Settled {
		t.Error("euw not settled after the hold")
	}
}

func TestRecoveringServesWhenNothingSettled(t *testing.T) {
	h := newHarness(t, testConfig())
	for _, m := range []string{use, euw, aps} {
		h.fail(m)
	}
	h.rounds(2)
	h.heal(aps)
	h.rounds(2)
	// aps is up but serving its hold: it is still the only one up.
	h.wantFirsts(aps, aps, aps)
	if st := h.snap.Members[aps]; st.Settled {
		t.Fatalf("aps settled too early: %+v", st)
	}
	h.heal(use)
	h.rounds(2)
	// Both recovering: the one healthy longest keeps the traffic; the
	// nearer use must not take it back before its own failback hold.
	h.wantFirsts(aps, aps, aps)
	// aps settles first (30s hold), then use settles and gets its regions.
	h.rounds(29)
	if !h.snap.Members[aps].Settled || h.snap.Members[use].Settled {
		t.Fatalf("want aps settled and use still holding: aps %+v use %+v", h.snap.Members[aps], h.snap.Members[use])
	}
	h.wantFirsts(aps, aps, aps)
	h.rounds(3)
	h.wantFirsts(aps, use, use)
}

func TestRecoveringRanksAfterLagging(t *testing.T) {
	h := newHarness(t, testConfig())
	h.fail(euw)
	h.rounds(2)
	h.heal(euw)
	h.setLag(use, time.Second)
	h.setLag(aps, time.Second)
	h.rounds(2)
	// eu-west: euw (recovering) < use (lagging, settled): use serves.
	h.wantFirsts(aps, use, use)
	if !h.snap.Members[use].Lagging || h.snap.Members[euw].Settled {
		t.Fatal("setup: use should lag and euw be recovering")
	}
}

func TestLagging(t *testing.T) {
	t.Run("ranks after in-sync members", func(t *testing.T) {
		h := newHarness(t, testConfig())
		h.setLag(euw, 900*time.Millisecond)
		evs := h.rounds(1)
		h.wantFirsts(aps, use, use)
		if len(evs) != 1 || evs[0].Kind != Failover || evs[0].Detection != 0 {
			t.Fatalf("events = %+v, want one lag failover without detection time", evs)
		}
		st := h.snap.Members[euw]
		if !st.Lagging || !st.LagKnown || st.Lag != 900*time.Millisecond || !st.Settled {
			t.Fatalf("status = %+v", st)
		}
		// Back in sync: a settled member returns once its lag has stayed
		// within the tolerance for rise × interval (2 × 1s).
		h.setLag(euw, 100*time.Millisecond)
		if evs = h.rounds(2); len(evs) != 0 {
			t.Fatalf("events = %+v, want none while the lag settles", evs)
		}
		h.wantFirsts(aps, use, use)
		evs = h.rounds(1)
		h.wantFirsts(aps, euw, use)
		if len(evs) != 1 || evs[0].Kind != Failback {
			t.Fatalf("events = %+v, want one failback", evs)
		}
	})
	t.Run("lag around the tolerance does not flap answers", func(t *testing.T) {
		h := newHarness(t, testConfig())
		var evs []Event
		for i := range 10 {
			lag := 900 * time.Millisecond
			if i%2 == 1 {
				lag = 100 * time.Millisecond
			}
			h.setLag(euw, lag)
			evs = append(evs, h.rounds(1)...)
		}
		if len(evs) != 1 || evs[0].Kind != Failover {
			t.Fatalf("events = %+v, want the one lag failover and no failback while the lag flaps", evs)
		}
		h.wantFirsts(aps, use, use)
	})
	t.Run("serves when it is the only one up", func(t *testing.T) {
		h := newHarness(t, testConfig())
		h.setLag(euw, 900*time.Millisecond)
		h.fail(use)
		h.fail(aps)
		h.rounds(2)
		h.wantFirsts(euw, euw, euw)
	})
	t.Run("own-region lag is ignored", func(t *testing.T) {
		h := newHarness(t, testConfig())
		h.lag[euw] = map[string]time.Duration{"eu-west": time.Hour, "us-east": time.Millisecond, "nowhere": time.Hour}
		h.round()
		st := h.snap.Members[euw]
		if st.Lagging || st.Lag != time.Millisecond {
			t.Fatalf("status = %+v", st)
		}
		if _, ok := st.LagBySource["nowhere"]; ok {
			t.Error("lag of an undeclared source region kept")
		}
	})
	t.Run("latest observation wins across vantages", func(t *testing.T) {
		h := newHarness(t, testConfig())
		h.now = h.now.Add(time.Second)
		// ap-south's report is older but applied after eu-west's (agent order).
		old := Observation{Agent: "ap-south", Member: euw, Seq: 1, Time: h.now.Add(-time.Second),
			Checks: []CheckResult{{Check: "lag", OK: true}}, Lag: map[string]time.Duration{"us-east": time.Second}}
		cur := Observation{Agent: "eu-west", Member: euw, Seq: 1, Time: h.now,
			Checks: []CheckResult{{Check: "lag", OK: true}}, Lag: map[string]time.Duration{"us-east": 5 * time.Millisecond}}
		h.e.Observe(cur)
		h.e.Observe(old)
		h.snap = h.e.Evaluate(h.now, h.ov)
		if got := h.snap.Members[euw].Lag; got != 5*time.Millisecond {
			t.Fatalf("lag = %s, want 5ms", got)
		}
	})
}

func TestSeq(t *testing.T) {
	pass := []CheckResult{{Check: "ping", OK: true}}
	failed := []CheckResult{{Check: "ping", Error: "timeout"}, {Check: "keyspace", OK: false}}
	tests := []struct {
		name string
		obs  []Observation // all of one tick, in arrival order
		want Verdict
	}{
		{"in order", []Observation{
			{Agent: "us-east", Member: euw, Seq: 1, Checks: failed},
			{Agent: "us-east", Member: euw, Seq: 2, Checks: failed},
			{Agent: "eu-west", Member: euw, Seq: 1, Checks: failed},
			{Agent: "eu-west", Member: euw, Seq: 2, Checks: failed},
		}, Down},
		{"reordered within the tick", []Observation{
			{Agent: "eu-west", Member: euw, Seq: 2, Checks: failed},
			{Agent: "us-east", Member: euw, Seq: 2, Checks: failed},
			{Agent: "eu-west", Member: euw, Seq: 1, Checks: failed},
			{Agent: "us-east", Member: euw, Seq: 1, Checks: failed},
		}, Down},
		{"a pass sorted last wins", []Observation{
			{Agent: "us-east", Member: euw, Seq: 3, Checks: pass},
			{Agent: "us-east", Member: euw, Seq: 1, Checks: failed},
			{Agent: "us-east", Member: euw, Seq: 2, Checks: failed},
			{Agent: "eu-west", Member: euw, Seq: 2, Checks: failed},
			{Agent: "eu-west", Member: euw, Seq: 1, Checks: failed},
		}, Down /* us-east down (pass 1 < rise 2), eu-west down */},
		{"duplicate seq counts once", []Observation{
			{Agent: "us-east", Member: euw, Seq: 1, Checks: failed},
			{Agent: "us-east", Member: euw, Seq: 1, Checks: failed},
			{Agent: "eu-west", Member: euw, Seq: 1, Checks: failed},
			{Agent: "eu-west", Member: euw, Seq: 1, Checks: nil},
		}, Up},
		{"unknown agent and member ignored", []Observation{
			{Agent: "mallory", Member: euw, Seq: 1, Checks: failed},
			{Agent: "mallory", Member: euw, Seq: 2, Checks: failed},
			{Agent: "us-east", Member: "cache-xyz", Seq: 1, Checks: failed},
			{Agent: "us-east", Member: "cache-xyz", Seq: 2, Checks: failed},
		}, Up},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, testConfig())
			h.now = h.now.Add(time.Second)
			for _, o := range tt.obs {
				o.Time = h.now
				h.e.Observe(o)
			}
			h.snap = h.e.Evaluate(h.now, h.ov)
			if got := h.verdict(euw); got != tt.want {
				t.Fatalf("verdict = %s, want %s", got, tt.want)
			}
		})
	}

	t.Run("old seq of a later tick ignored", func(t *testing.T) {
		h := newHarness(t, testConfig())
		h.now = h.now.Add(time.Second)
		for _, a := range []string{"us-east", "eu-west"} {
			h.e.Observe(Observation{Agent: a, Member: euw, Seq: 10, Time: h.now, Checks: pass})
		}
		h.e.Evaluate(h.now, h.ov)
		h.now = h.now.Add(time.Second)
		for _, a := range []string{"us-east", "eu-west"} {
			for seq := uint64(5); seq <= 10; seq++ {
				h.e.Observe(Observation{Agent: a, Member: euw, Seq: seq, Time: h.now, Checks: failed})
			}
		}
		h.snap = h.e.Evaluate(h.now, h.ov)
		st := h.snap.Members[euw]
		if st.Verdict != Up || st.Vantages[2].LastSeq != 10 || st.Vantages[2].Failures != 0 {
			t.Fatalf("status = %+v", st)
		}
		if !st.Vantages[2].LastSeen.Equal(h.now.Add(-time.Second)) {
			t.Errorf("LastSeen moved on an ignored observation: %v", st.Vantages[2].LastSeen)
		}
	})
}

func TestVantageStatus(t *testing.T) {
	h := newHarness(t, testConfig())
	h.fail(euw, "us-east")
	h.round()
	st := h.snap.Members[euw]
	var got []string
	for _, v := range st.Vantages {
		got = append(got, v.Agent)
	}
	if len(got) != 3 || got[0] != "ap-south" || got[2] != "us-east" {
		t.Fatalf("vantages = %v, want sorted by agent", got)
	}
	v := st.Vantages[2]
	if !v.Fresh || v.Failures != 1 || v.Verdict != Up || v.LastError != "ping: i/o timeout" || v.RTT != time.Millisecond || v.Region != "us-east" {
		t.Fatalf("us-east vantage = %+v", v)
	}
	if st.Vantages[0].Passes != 1 {
		t.Fatalf("ap-south vantage = %+v", st.Vantages[0])
	}
}

func TestFailureText(t *testing.T) {
	tests := []struct {
		checks []CheckResult
		want   string
	}{
		{nil, "no checks ran"},
		{[]CheckResult{{Check: "ping", OK: true}, {Check: "keyspace", Error: "READONLY"}, {Check: "lag"}}, "keyspace: READONLY; lag: failed"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			if got := failureText(tt.checks); got != tt.want {
				t.Errorf("failureText = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestPendingBounded: observations arriving faster than evaluations are
// applied once the buffer holds maxPending, and count exactly as if an
// Evaluate had applied them all.
func TestPendingBounded(t *testing.T) {
	const rounds = 3000 // × 3 agents: over twice minPending
	tests := []struct {
		name   string
		checks []CheckResult
		want   Verdict
	}{
		{"failures", []CheckResult{{Check: "ping", Outcome: OutcomeTimeout, Error: "i/o timeout"}}, Down},
		{"passes", []CheckResult{{Check: "ping", Outcome: OutcomePass, OK: true}}, Up},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, testConfig())
			most := 0
			for seq := uint64(1); seq <= rounds; seq++ {
				h.now = h.now.Add(time.Millisecond)
				for _, a := range regions {
					h.e.Observe(Observation{Agent: a, Member: euw, Seq: seq, Time: h.now, Checks: tt.checks})
					most = max(most, len(h.e.pending))
				}
			}
			if most > h.e.maxPending || h.e.maxPending != minPending {
				t.Errorf("pending grew to %d, bound %d (want %d)", most, h.e.maxPending, minPending)
			}
			h.snap = h.e.Evaluate(h.now, h.ov)
			st := h.snap.Members[euw]
			if st.Verdict != tt.want {
				t.Errorf("verdict = %s, want %s", st.Verdict, tt.want)
			}
			for _, v := range st.Vantages {
				if v.LastSeq != rounds || v.Passes+v.Failures != rounds {
					t.Errorf("vantage %s: last seq %d, passes %d, failures %d; want every one of %d rounds counted",
						v.Agent, v.LastSeq, v.Passes, v.Failures, rounds)
				}
			}
		})
	}
}

// TestSnapshotLagStaysAsPublished: snapshots share a member's lag map while
// it is unchanged (no copy per evaluation); a later change of the lag
// replaces it, so a snapshot already published (served by DNS and the
// admin API) keeps the values it was made with.
func TestSnapshotLagStaysAsPublished(t *testing.T) {
	h := newHarness(t, testConfig())
	h.setLag(euw, 100*time.Millisecond)
	h.rounds(2)
	first := h.snap
	h.rounds(1)
	if a, b := first.Members[euw].LagBySource, h.snap.Members[euw].LagBySource; fmt.Sprint(a) != fmt.Sprint(b) {
		t.Fatalf("unchanged lag: %v, then %v", a, b)
	}
	h.setLag(euw, 900*time.Millisecond)
	h.rounds(2)
	if got := first.Members[euw].LagBySource["us-east"]; got != 100*time.Millisecond {
		t.Fatalf("published snapshot's lag behind us-east became %s, want it to stay 100ms", got)
	}
	if got := h.snap.Members[euw].LagBySource["us-east"]; got != 900*time.Millisecond {
		t.Fatalf("new snapshot's lag behind us-east = %s, want 900ms", got)
	}
}
