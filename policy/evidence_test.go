package policy

import (
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aagtm/aagtm/config"
)

// The scenarios of issue 16 ("policy that moves only on evidence"), one
// test per point.

// restart exports h's engine, round-trips the state through JSON and
// restores it into a new engine with h's config, as a restarted node does.
func (h *harness) restart() {
	h.t.Helper()
	raw, err := json.Marshal(h.e.Export())
	if err != nil {
		h.t.Fatal(err)
	}
	var st State
	if err := json.Unmarshal(raw, &st); err != nil {
		h.t.Fatal(err)
	}
	h.e = New(h.cfg)
	h.e.Restore(st)
}

// evaluate evaluates h's engine at the current time without observations.
func (h *harness) evaluate() []Event {
	h.snap = h.e.Evaluate(h.now, h.ov)
	return h.snap.Events
}

func TestVoteOnlyOnEvidence(t *testing.T) {
	t.Run("node starts during an outage", func(t *testing.T) {
		h := newHarness(t, testConfig())
		h.fail(euw)
		h.silent["eu-west"], h.silent["ap-south"] = true, true
		h.rounds(2)
		if h.verdict(euw) != Down {
			t.Fatalf("euw %s, want down (1/1 voting)", h.verdict(euw))
		}
		// The others' first failure is no vote: euw stays down.
		h.silent["eu-west"], h.silent["ap-south"] = false, false
		h.round()
		if st := h.snap.Members[euw]; st.Verdict != Down || st.Voting != 1 || st.DownVotes != 1 {
			t.Fatalf("after the others' first failure: %+v", st)
		}
		h.wantFirsts(aps, use, use)
		h.round()
		if st := h.snap.Members[euw]; st.Verdict != Down || st.Voting != 3 || st.DownVotes != 3 {
			t.Fatalf("after the others' second failure: %+v", st)
		}
	})
	t.Run("reload adding agents during a total outage", func(t *testing.T) {
		cfg := testConfig()
		cfg.Agents = cfg.Agents[2:] // us-east only
		h := newHarness(t, cfg)
		for _, m := range []string{use, euw, aps} {
			h.fail(m)
		}
		h.rounds(2)
		full := testConfig()
		h.e.Reconfigure(full)
		h.cfg = full
		for _, m := range []string{use, euw, aps} {
			h.fail(m)
		}
		evs := h.rounds(1)
		for _, m := range []string{use, euw, aps} {
			if h.verdict(m) != Down {
				t.Errorf("%s revived by the new agents' first failure", m)
			}
		}
		if len(evs) != 0 {
			t.Errorf("events %+v", evs)
		}
	})
	t.Run("restart with euw restored down, then healthy", func(t *testing.T) {
		h := newHarness(t, testConfig())
		h.fail(euw)
		h.rounds(2)
		h.restart()
		h.heal(euw)
		h.silent["eu-west"], h.silent["ap-south"] = true, true
		h.rounds(2) // us-east's rise passes: up, 1/1
		if h.verdict(euw) != Up {
			t.Fatalf("euw %s after us-east's rise passes", h.verdict(euw))
		}
		healthy := h.snap.Members[euw].HealthySince
		h.silent["eu-west"], h.silent["ap-south"] = false, false
		h.round() // the others' first pass: no vote
		st := h.snap.Members[euw]
		if st.Verdict != Up || !st.HealthySince.Equal(healthy) || st.Voting != 1 {
			t.Fatalf("the others' first pass moved euw: %+v", st)
		}
	})
	t.Run("not_measured is no evidence", func(t *testing.T) {
		h := newHarness(t, testConfig())
		h.rounds(2) // every vantage votes up
		h.now = h.now.Add(time.Second)
		for range 5 {
			for _, a := range regions {
				h.seq[a]++
				h.e.Observe(Observation{Agent: a, Member: euw, Seq: h.seq[a], Time: h.now,
					Checks: []CheckResult{{Check: "ping", Outcome: OutcomeNotMeasured}}})
			}
			h.evaluate()
			h.now = h.now.Add(time.Second)
		}
		st := h.snap.Members[euw]
		if st.Verdict != Up || !st.FailStatic || st.Voting != 0 {
			t.Fatalf("only not_measured for 5s: %+v", st)
		}
		for _, v := range st.Vantages {
			if v.Voting || v.Fresh || v.LastOutcome != OutcomeNotMeasured || v.Failures != 0 {
				t.Errorf("vantage %+v", v)
			}
		}
	})
}

func TestNumericQuorumNeedsNVoters(t *testing.T) {
	cfg := testConfig()
	cfg.Probes.Quorum = config.Quorum{Kind: "count", Count: 2}
	h := newHarness(t, cfg)
	h.silent["eu-west"], h.silent["ap-south"] = true, true
	h.fail(euw)
	h.rounds(3)
	st := h.snap.Members[euw]
	if st.Verdict != Up || !st.FailStatic || st.Voting != 1 || st.DownVotes != 1 {
		t.Fatalf("one down vote of one voting vantage under quorum 2: %+v", st)
	}
	if r := h.answer("eu-west").Reason; !strings.Contains(r, "1 voting vantages, quorum 2, yet: last verdict kept") {
		t.Errorf("reason %q", r)
	}
	h.silent["eu-west"] = false
	h.rounds(2)
	if st := h.snap.Members[euw]; st.Verdict != Down || st.FailStatic {
		t.Fatalf("two down votes under quorum 2: %+v", st)
	}
}

func TestStaleAtExactlyStaleAfter(t *testing.T) {
	for _, tt := range []struct {
		after time.Duration
		want  Verdict
	}{
		{3*time.Second - time.Nanosecond, Down},
		{3 * time.Second, Up},
	} {
		t.Run(tt.after.String(), func(t *testing.T) {
			cfg := testConfig()
			cfg.Probes.Quorum = config.Quorum{Kind: "any"}
			h := newHarness(t, cfg)
			h.fail(euw, "us-east")
			h.rounds(2)
			last := h.now
			h.silent["us-east"] = true
			h.round()
			h.now = last.Add(tt.after)
			h.evaluate()
			if got := h.verdict(euw); got != tt.want {
				t.Fatalf("%s after us-east's last report: %s, want %s", tt.after, got, tt.want)
			}
		})
	}
}

func TestHoldNeedsObservedHealth(t *testing.T) {
	h := newHarness(t, testConfig())
	h.fail(euw)
	h.rounds(2)
	h.heal(euw)
	h.rounds(12) // up after 2, then 10s of observed hold
	if st := h.snap.Members[euw]; st.Settled || st.Held != 10*time.Second {
		t.Fatalf("after 10s: %+v", st)
	}
	for _, a := range regions {
		h.silent[a] = true
	}
	h.rounds(60) // a minute with nothing observed
	if st := h.snap.Members[euw]; st.Settled {
		t.Fatalf("hold served while nothing was observed: %+v", st)
	}
	for _, a := range regions {
		h.silent[a] = false
	}
	h.rounds(2) // votes again (rise)
	start := h.snap.Members[euw].Held
	if start > 12*time.Second {
		t.Fatalf("held %s, silence counted", start)
	}
	for h.snap.Members[euw].Held < 29*time.Second {
		h.round()
		h.wantFirsts(aps, use, use)
	}
	h.rounds(1)
	h.wantFirsts(aps, euw, use)
	// The same across a restart: the node's downtime does not count.
	h.fail(euw)
	h.rounds(2)
	h.heal(euw)
	h.rounds(12)
	h.restart()
	h.now = h.now.Add(time.Hour)
	h.rounds(1)
	if st := h.snap.Members[euw]; st.Settled || st.Held != 10*time.Second {
		t.Fatalf("after a restart an hour later: %+v", st)
	}
}

func TestDetectionFromQuorumRun(t *testing.T) {
	h := newHarness(t, testConfig())
	h.fail(euw, "us-east") // us-east cut off from euw for 10 minutes
	h.rounds(600)
	h.fail(euw)
	evs := h.rounds(2)
	if len(evs) != 1 || evs[0].Kind != Failover || evs[0].Detection != time.Second {
		t.Fatalf("events %+v, want one failover detected in 1s", evs)
	}
}

func TestNoFailbackToLagging(t *testing.T) {
	h := newHarness(t, testConfig())
	h.ov.Drained[euw] = true
	h.fail(use)
	h.fail(aps)
	h.rounds(2)
	h.wantFirsts(euw, euw, euw)
	h.heal(aps)
	h.setLag(aps, 900*time.Millisecond)
	evs := h.rounds(2)
	h.wantFirsts(aps, aps, aps)
	if len(evs) != 3 {
		t.Fatalf("events %+v, want one per region", evs)
	}
	for _, e := range evs {
		if e.Kind == Failback {
			t.Errorf("failback to a lagging member: %+v", e)
		}
	}
}

// TestRestartAnswersIdentically restarts the node at awkward instants and
// checks the restored engine answers as the old one did, logging nothing.
func TestRestartAnswersIdentically(t *testing.T) {
	tests := []struct {
		name  string
		setup func(h *harness)
	}{
		{"inside the lag settle window", func(h *harness) {
			h.setLag(euw, 900*time.Millisecond)
			h.rounds(2)
			h.setLag(euw, 100*time.Millisecond)
			h.rounds(1) // back within tolerance, still lagging
		}},
		{"during a failback hold", func(h *harness) {
			h.fail(euw)
			h.rounds(2)
			h.heal(euw)
			h.rounds(10)
		}},
		{"with a drain and a force", func(h *harness) {
			h.ov.Drained[euw] = true
			h.ov.Forced["cache"] = aps
			h.rounds(2)
		}},
		{"all down", func(h *harness) {
			for _, m := range []string{use, euw, aps} {
				h.fail(m)
			}
			h.rounds(2)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, testConfig())
			tt.setup(h)
			before := h.snap
			h.restart()
			if evs := h.evaluate(); len(evs) != 0 {
				t.Fatalf("restart logged %+v", evs)
			}
			if answersChanged(before.Hosts, h.snap.Hosts) {
				t.Fatalf("answers changed across the restart:\nbefore %s\nafter  %s",
					before.Hosts[host].ByRegion["eu-west"].Reason, h.answer("eu-west").Reason)
			}
			for _, m := range []string{use, euw, aps} {
				a, b := before.Members[m], h.snap.Members[m]
				if a.Verdict != b.Verdict || a.Lagging != b.Lagging || a.Settled != b.Settled || a.Held != b.Held {
					t.Errorf("%s: %+v\nbefore: %+v", m, b, a)
				}
			}
		})
	}
}

// TestRestoreOldState: a state file written before the lag hysteresis,
// hold and overrides were kept still loads.
func TestRestoreOldState(t *testing.T) {
	old := `{"serial":7,"members":[{"name":"cache-euw","verdict":"down","since":"2026-11-25T18:00:00Z","settled":false,
		"fail_start":"2026-11-25T17:59:58Z","lag":{"us-east":12000000}},
		{"name":"cache-use","verdict":"up","settled":true,"healthy_since":"2026-11-25T17:00:00Z"}],
		"answers":[{"database":"cache","region":"eu-west","members":["cache-use"],"since":"2026-11-25T18:00:00Z","last_good":["cache-use"]}]}`
	var st State
	if err := json.Unmarshal([]byte(old), &st); err != nil {
		t.Fatal(err)
	}
	e := New(testConfig())
	e.Restore(st)
	s := e.Evaluate(t0, Overrides{})
	if s.Serial != 8 || s.Members[euw].Verdict != Down || !s.Members[euw].FailStatic || s.Members[euw].Lagging {
		t.Fatalf("restored %+v", s.Members[euw])
	}
	if a, _ := s.Lookup(host, "eu-west"); !slices.Equal(a.Members, []string{use}) || len(s.Events) != 0 {
		t.Fatalf("eu-west %v, events %+v", a.Members, s.Events)
	}
	// Round trip of the new fields.
	got := e.Export()
	raw, _ := json.Marshal(got)
	var back State
	if err := json.Unmarshal(raw, &back); err != nil || !reflect.DeepEqual(back, got) {
		t.Fatalf("round trip: %v\n%+v\n%+v", err, back, got)
	}
}

// TestAllModeDropIsFailover: in all mode, a member that leaves the record
// set because it went down is a failover, with its detection time, even
// where the first member stays the same.
func TestAllModeDropIsFailover(t *testing.T) {
	h := newHarness(t, testConfig(func(d *config.Database) { d.Mode = config.ModeAll }))
	h.setLag(use, 20*time.Millisecond)
	h.fail(euw)
	evs := h.rounds(2)
	if len(evs) != len(regions) {
		t.Fatalf("events %+v, want one per region", evs)
	}
	for _, e := range evs {
		if e.Kind != Failover || e.From != euw || e.Detection != time.Second {
			t.Errorf("event %+v", e)
		}
		if e.Region == "us-east" && (e.To != use || !e.RPOKnown || e.RPOEstimate != 20*time.Millisecond) {
			t.Errorf("us-east event %+v", e)
		}
	}
}
