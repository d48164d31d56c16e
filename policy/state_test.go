package policy

import (
	"encoding/json"
	"net/netip"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/aagtm/aagtm/config"
)

func TestExportRestore(t *testing.T) {
	h := newHarness(t, testConfig())
	h.setLag(use, 12*time.Millisecond)
	h.fail(euw)
	h.rounds(3)
	h.heal(aps)
	h.fail(aps)
	h.rounds(2)
	h.heal(aps)
	h.rounds(2) // aps recovering
	before := h.snap
	st := h.e.Export()

	raw, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	var decoded State
	if err := json.Unmarshal(raw, &decoded); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(decoded, st) {
		t.Fatalf("JSON round trip changed the state:\n%+v\n%+v", decoded, st)
	}
	// Unknown names are ignored.
	decoded.Members = append(decoded.Members, MemberState{Name: "cache-gone", Verdict: Down})
	decoded.Members[0].Lag = map[string]time.Duration{"nowhere": time.Hour}
	decoded.Members[0].LagSamples = append(slices.Clone(decoded.Members[0].LagSamples),
		LagSample{Agent: "us-east", Source: "nowhere", Lag: time.Hour, At: h.now},
		LagSample{Agent: "mallory", Source: "us-east", Lag: time.Hour, At: h.now})
	decoded.Answers = append(decoded.Answers,
		AnswerState{Database: "gone", Region: "eu-west", Members: []string{use}},
		AnswerState{Database: "cache", Region: "mars", Members: []string{use}})

	r := New(testConfig())
	r.Restore(decoded)
	after := r.Evaluate(h.now, Overrides{})
	for _, region := range regions {
		a, b := before.Hosts[host].ByRegion[region], after.Hosts[host].ByRegion[region]
		if !slices.Equal(a.Members, b.Members) || !slices.Equal(a.Records, b.Records) || !a.Since.Equal(b.Since) {
			t.Errorf("%s: restored answer %v since %v, want %v since %v", region, b.Members, b.Since, a.Members, a.Since)
		}
	}
	if after.Serial != before.Serial+1 {
		t.Errorf("Serial = %d, want %d", after.Serial, before.Serial+1)
	}
	for _, name := range []string{use, euw, aps} {
		a, b := before.Members[name], after.Members[name]
		if a.Verdict != b.Verdict || a.Settled != b.Settled || !a.Since.Equal(b.Since) || a.Lag != b.Lag {
			t.Errorf("%s: restored %+v, want %+v", name, b, a)
		}
	}
	if len(after.Events) != 0 {
		t.Errorf("restore produced events %+v", after.Events)
	}
	if _, ok := after.Members["cache-gone"]; ok {
		t.Error("unknown member restored")
	}
	if _, ok := after.Members[aps].LagBySource["us-east"]; ok {
		t.Error("lag sample of an unknown agent restored")
	}
	if _, ok := after.Members[aps].LagBySource["nowhere"]; ok {
		t.Error("unknown source region restored")
	}
	got := r.Export()
	got.Serial = st.Serial
	if !reflect.DeepEqual(got, st) {
		t.Errorf("export after restore\n got %+v\nwant %+v", got, st)
	}

	// A member restored down needs rise passes from fresh vantages.
	h2 := &harness{t: t, e: r, cfg: testConfig(), now: h.now, seq: map[string]uint64{}, ov: Overrides{},
		failing: map[string]map[string]bool{}, lag: map[string]map[string]time.Duration{}, silent: map[string]bool{}}
	h2.round()
	if h2.verdict(euw) != Down {
		t.Fatal("restored down member up after one pass")
	}
	h2.round()
	if h2.verdict(euw) != Up {
		t.Fatal("restored down member not up after rise passes")
	}
}

func TestRestoreLastGood(t *testing.T) {
	cfg := testConfig(func(d *config.Database) { d.WhenAllDown = config.AllDownLast })
	e := New(cfg)
	e.Restore(State{
		Serial: 41,
		Members: []MemberState{
			{Name: use, Verdict: Down, Settled: true, HealthySince: t0},
			{Name: euw, Verdict: Down},
			{Name: aps, Verdict: Down},
		},
		Answers: []AnswerState{{Database: "cache", Region: "eu-west", Members: []string{use, use}, AllDown: true,
			LastGood: []string{"cache-gone", aps}}},
	})
	s := e.Evaluate(t0, Overrides{})
	if s.Serial != 42 {
		t.Errorf("Serial = %d, want 42", s.Serial)
	}
	if a, _ := s.Lookup(host, "eu-west"); !slices.Equal(a.Members, []string{aps}) {
		t.Errorf("eu-west = %v, want the last good [aps]", a.Members)
	}
	if a, _ := s.Lookup(host, "us-east"); len(a.Members) != 3 {
		t.Errorf("us-east = %v, want fail-open (no last good answer)", a.Members)
	}
	if st := s.Members[use]; st.Settled || !st.HealthySince.IsZero() {
		t.Errorf("a down member restored settled: %+v", st)
	}
}

func TestReconfigure(t *testing.T) {
	h := newHarness(t, testConfig())
	h.setLag(use, 7*time.Millisecond)
	h.fail(euw)
	h.rounds(2)
	h.wantFirsts(aps, use, use)

	// Add a second us-east member and an agent, drop ap-south's agent,
	// move euw's address.
	cfg := testConfig(func(d *config.Database) {
		d.Members[1].Addresses = []netip.Addr{netip.MustParseAddr("10.2.0.99")}
		d.Members = append(d.Members, config.Member{Name: "cache-use2", Database: "cache", Region: "us-east",
			Addresses: []netip.Addr{netip.MustParseAddr("10.1.0.20")}})
	})
	cfg.Agents = []config.Agent{{ID: "eu-west", Region: "eu-west"}, {ID: "us-east", Region: "us-east"}, {ID: "us-east-2", Region: "us-east"}}
	h.e.Reconfigure(cfg)
	h.cfg = cfg
	h.silent["us-east-2"] = true
	h.snap = h.e.Evaluate(h.now, h.ov)

	if h.verdict(euw) != Down {
		t.Error("euw's down verdict lost")
	}
	if st := h.snap.Members[use]; st.Lag != 7*time.Millisecond || !st.LagKnown {
		t.Errorf("use's lag lost: %+v", st)
	}
	if st := h.snap.Members["cache-use2"]; st == nil || st.Verdict != Up || !st.Settled {
		t.Errorf("new member status %+v", st)
	}
	var agents []string
	for _, v := range h.snap.Members[euw].Vantages {
		agents = append(agents, v.Agent)
	}
	if !slices.Equal(agents, []string{"eu-west", "us-east", "us-east-2"}) {
		t.Errorf("vantages = %v", agents)
	}
	if got := h.snap.Members[euw].Vantages[1]; got.Verdict != Down || got.LastSeq == 0 {
		t.Errorf("us-east vantage state lost: %+v", got)
	}
	if len(h.snap.Events) != 0 {
		t.Errorf("reconfigure produced events %+v", h.snap.Events)
	}
	h.heal(euw)
	h.rounds(40)
	if a := h.answer("eu-west"); a.Records[0].Addr != netip.MustParseAddr("10.2.0.99") {
		t.Errorf("eu-west records = %+v", a.Records)
	}

	h.e.Reconfigure(nil)
	s := h.e.Evaluate(h.now, h.ov)
	if len(s.Hosts) != 0 || len(s.Members) != 0 {
		t.Errorf("empty config gave %+v", s)
	}
}

// TestDeterministic feeds two engines the same script and compares every
// snapshot.
func TestDeterministic(t *testing.T) {
	mk := func() *harness {
		h := newHarness(t, testConfig(func(d *config.Database) { d.Mode = config.ModeAll }))
		h.setLag(use, 600*time.Millisecond)
		return h
	}
	a, b := mk(), mk()
	script := []func(h *harness){
		func(h *harness) { h.fail(euw, "us-east") },
		func(h *harness) { h.fail(euw) },
		func(h *harness) { h.ov.Drained[aps] = true },
		func(h *harness) { h.heal(euw); h.setLag(use, time.Millisecond) },
		func(h *harness) { h.silent["ap-south"] = true },
		func(h *harness) { h.ov.Forced["cache"] = euw },
	}
	for i, f := range script {
		f(a)
		f(b)
		for range 5 {
			sa, sb := a.round(), b.round()
			if !reflect.DeepEqual(sa, sb) {
				t.Fatalf("step %d: snapshots differ:\n%+v\n%+v", i, sa, sb)
			}
		}
	}
}
