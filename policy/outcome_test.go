package policy

import (
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aagtm/aagtm/config"
	"pgregory.net/rapid"
)

func TestRoundOutcome(t *testing.T) {
	pass := CheckResult{Check: "ping", Outcome: OutcomePass, OK: true}
	nm := CheckResult{Check: "keyspace", Outcome: OutcomeNotMeasured}
	loading := CheckResult{Check: "keyspace", Outcome: OutcomeLoading, Error: "LOADING"}
	tests := []struct {
		name   string
		checks []CheckResult
		want   Outcome
	}{
		{"no checks", nil, OutcomeError},
		{"all pass", []CheckResult{pass, pass}, OutcomePass},
		{"not measured beside passes", []CheckResult{pass, nm}, OutcomeNotMeasured},
		{"a failure wins over not measured", []CheckResult{nm, loading, pass}, OutcomeLoading},
		{"first failure names the round", []CheckResult{{Check: "ping", Outcome: OutcomeTimeout}, loading}, OutcomeTimeout},
		{"no outcome: OK decides", []CheckResult{{Check: "ping", OK: true}}, OutcomePass},
		{"no outcome, not OK: error", []CheckResult{{Check: "ping"}}, OutcomeError},
		{"unknown outcome: OK decides", []CheckResult{{Check: "ping", Outcome: "brand_new", OK: true}}, OutcomePass},
		{"outcome wins over OK", []CheckResult{{Check: "ping", Outcome: OutcomeAuth, OK: true}}, OutcomeAuth},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := Observation{Checks: tt.checks}
			if got := o.Outcome(); got != tt.want {
				t.Errorf("Outcome = %s, want %s", got, tt.want)
			}
			if o.Passed() != (tt.want == OutcomePass) {
				t.Errorf("Passed = %v", o.Passed())
			}
		})
	}
	for o := range outcomeVotes {
		if o == "" {
			t.Error("the empty outcome is in the table")
		}
	}
}

func TestDownOutcome(t *testing.T) {
	h := newHarness(t, testConfig())
	h.rounds(2)
	seqObs := func(agent string, out Outcome) {
		h.seq[agent]++
		h.e.Observe(Observation{Agent: agent, Member: euw, Seq: h.seq[agent], Time: h.now,
			Checks: []CheckResult{{Check: "keyspace", Outcome: out, Error: string(out) + " text"}}})
	}
	for range 2 {
		h.now = h.now.Add(time.Second)
		seqObs("us-east", OutcomeLoading)
		seqObs("eu-west", OutcomeLoading)
		seqObs("ap-south", OutcomeTimeout)
		h.evaluate()
	}
	st := h.snap.Members[euw]
	if st.Verdict != Down || st.DownOutcome != OutcomeLoading || st.DownVotes != 3 || st.Voting != 3 {
		t.Fatalf("status %+v", st)
	}
	if st.Reason != "down: loading (3/3 vantages)" {
		t.Errorf("member reason %q", st.Reason)
	}
	if st.Vantages[0].LastOutcome != OutcomeTimeout || st.Vantages[0].LastError != "keyspace: timeout text" {
		t.Errorf("ap-south vantage %+v", st.Vantages[0])
	}
	if r := h.answer("eu-west").Reason; !strings.HasSuffix(r, "cache-euw down: loading (3/3 vantages)") {
		t.Errorf("reason %q", r)
	}
	if evs := h.snap.Recent; len(evs) == 0 || !strings.Contains(evs[len(evs)-1].Reason, "cache-euw down: loading (3/3 vantages)") {
		t.Errorf("events %+v", evs)
	}
}

func TestFailStaticVisible(t *testing.T) {
	h := newHarness(t, testConfig())
	h.rounds(3)
	last := h.now
	for _, a := range regions {
		h.silent[a] = true
	}
	h.rounds(2)
	if st := h.snap.Members[euw]; st.FailStatic {
		t.Fatalf("fail-static before stale_after: %+v", st)
	}
	h.rounds(1) // stale_after since the last reports
	st := h.snap.Members[euw]
	if !st.FailStatic || !st.NoFreshSince.Equal(last.Add(2*time.Second)) || st.Voting != 0 || st.Verdict != Up {
		t.Fatalf("status %+v", st)
	}
	if want := "up, no fresh vantage since 2026-11-25T19:00:05Z: last verdict kept"; st.Reason != want {
		t.Errorf("member reason %q, want %q", st.Reason, want)
	}
	want := "cache-euw (eu-west) up, no fresh vantage since 2026-11-25T19:00:05Z: last verdict kept, nearest for eu-west"
	if r := h.answer("eu-west").Reason; !strings.HasPrefix(r, want) {
		t.Errorf("reason %q\nwant prefix %q", r, want)
	}
	for _, a := range regions {
		h.silent[a] = false
	}
	h.rounds(2)
	if st := h.snap.Members[euw]; st.FailStatic || !st.NoFreshSince.IsZero() || st.Voting != 3 {
		t.Fatalf("after the agents came back: %+v", st)
	}
}

func TestLagByQuorum(t *testing.T) {
	lagObs := func(h *harness, agent string, lag time.Duration) {
		h.seq[agent]++
		h.e.Observe(Observation{Agent: agent, Member: euw, Seq: h.seq[agent], Time: h.now,
			Checks: []CheckResult{{Check: "lag", Outcome: OutcomePass, OK: true}},
			Lag:    map[string]time.Duration{"us-east": lag}})
	}
	tests := []struct {
		name    string
		lags    map[string]time.Duration // by agent
		want    time.Duration
		lagging bool
	}{
		{"one outlier high", map[string]time.Duration{"us-east": time.Hour, "eu-west": 10 * time.Millisecond, "ap-south": 20 * time.Millisecond}, 20 * time.Millisecond, false},
		{"one outlier low", map[string]time.Duration{"us-east": 0, "eu-west": 900 * time.Millisecond, "ap-south": time.Second}, 900 * time.Millisecond, true},
		{"two of two must agree", map[string]time.Duration{"us-east": time.Hour, "eu-west": 10 * time.Millisecond}, 10 * time.Millisecond, false},
		{"one alone counts", map[string]time.Duration{"us-east": time.Second}, time.Second, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, testConfig())
			h.now = h.now.Add(time.Second)
			for _, a := range slices.Sorted(maps.Keys(tt.lags)) {
				lagObs(h, a, tt.lags[a])
			}
			h.evaluate()
			st := h.snap.Members[euw]
			if st.Lag != tt.want || st.LagBySource["us-east"] != tt.want || st.Lagging != tt.lagging {
				t.Fatalf("status %+v", st)
			}
		})
	}
	t.Run("samples expire after stale_after", func(t *testing.T) {
		h := newHarness(t, testConfig())
		h.now = h.now.Add(time.Second)
		lagObs(h, "us-east", time.Second)
		h.evaluate()
		h.now = h.now.Add(3 * time.Second)
		h.evaluate()
		if st := h.snap.Members[euw]; st.LagKnown || len(st.LagBySource) != 0 || !st.Lagging {
			t.Fatalf("status %+v, want lag unknown and the lagging state kept", st)
		}
	})
	t.Run("RPO estimate uses the robust value", func(t *testing.T) {
		h := newHarness(t, testConfig())
		h.lag[use] = map[string]time.Duration{"eu-west": 30 * time.Millisecond}
		h.fail(euw)
		h.rounds(1)
		h.seq["ap-south"]++
		h.e.Observe(Observation{Agent: "ap-south", Member: use, Seq: h.seq["ap-south"], Time: h.now.Add(time.Second),
			Checks: []CheckResult{{Check: "lag", OK: true}}, Lag: map[string]time.Duration{"eu-west": time.Hour}})
		evs := h.rounds(1)
		if len(evs) != 1 || !evs[0].RPOKnown || evs[0].RPOEstimate != 30*time.Millisecond {
			t.Fatalf("events %+v", evs)
		}
	})
}

// TestPropertyOneLagVantageChangesNothing: with three agents, any single
// vantage's lag reports, however extreme or missing, change no answer
// while the other two agree (same health, same lag for every source).
func TestPropertyOneLagVantageChangesNothing(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		cfg := testConfig(func(d *config.Database) {
			d.Mode = rapid.SampledFrom([]config.Mode{config.ModeNearest, config.ModeFailover, config.ModeAll}).Draw(t, "mode")
			d.FailbackHold = time.Duration(rapid.IntRange(0, 3).Draw(t, "hold")) * time.Second
		})
		hostile := rapid.SampledFrom(regions).Draw(t, "hostile")
		members := []string{use, euw, aps}
		honest, attacked := New(cfg), New(cfg)
		now := t0
		var seq uint64
		for range rapid.IntRange(1, 30).Draw(t, "rounds") {
			now = now.Add(time.Duration(rapid.IntRange(500, 2500).Draw(t, "advance_ms")) * time.Millisecond)
			seq++
			for _, m := range members {
				ok := rapid.IntRange(0, 4).Draw(t, "ok") > 0
				lag := map[string]time.Duration{}
				for _, src := range regions {
					lag[src] = time.Duration(rapid.IntRange(0, 1200).Draw(t, "lag_ms")) * time.Millisecond
				}
				evil := map[string]time.Duration{}
				for _, src := range regions {
					switch rapid.IntRange(0, 3).Draw(t, "evil") {
					case 0:
					case 1:
						evil[src] = 0
					case 2:
						evil[src] = time.Hour
					default:
						evil[src] = time.Duration(rapid.IntRange(0, 1200).Draw(t, "evil_ms")) * time.Millisecond
					}
				}
				for _, a := range regions {
					o := Observation{Agent: a, Member: m, Seq: seq, Time: now,
						Checks: []CheckResult{{Check: "ping", OK: ok}}, Lag: lag}
					honest.Observe(o)
					if a == hostile {
						o.Lag = evil
					}
					attacked.Observe(o)
				}
			}
			a, b := honest.Evaluate(now, Overrides{}), attacked.Evaluate(now, Overrides{})
			if answersChanged(a.Hosts, b.Hosts) {
				t.Fatalf("the %s vantage's lag moved an answer:\nhonest   %s\nattacked %s", hostile,
					a.Hosts[host].ByRegion["eu-west"].Reason, b.Hosts[host].ByRegion["eu-west"].Reason)
			}
		}
	})
}
