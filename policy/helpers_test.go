package policy

import (
	"maps"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/aagtm/aagtm/config"
)

// t0 is the fake clock's start.
var t0 = time.Date(2026, 11, 25, 19, 0, 0, 0, time.UTC)

const host = "cache.gtm.example.com."

// The three members of the test database, one per region.
const (
	use = "cache-use"
	euw = "cache-euw"
	aps = "cache-aps"
)

var regions = []string{"ap-south", "eu-west", "us-east"}

// testConfig returns three regions with prefer lists, one agent per region
// (ID = region name) and a nearest-mode database "cache" with one member
// per region. The addresses are test data: nothing is dialled. mods adjust
// the database.
func testConfig(mods ...func(*config.Database)) *config.Config {
	cfg := &config.Config{
		Zone: config.Zone{Name: "gtm.example.com."},
		Regions: []config.Region{
			{Name: "ap-south", Prefer: []string{"ap-south", "eu-west", "us-east"}},
			{Name: "eu-west", Prefer: []string{"eu-west", "us-east", "ap-south"}},
			{Name: "us-east", Prefer: []string{"us-east", "eu-west", "ap-south"}},
		},
		DefaultRegion: "us-east",
		Databases: []config.Database{{
			Name:         "cache",
			Host:         host,
			Mode:         config.ModeNearest,
			TTL:          5 * time.Second,
			LagTolerance: 500 * time.Millisecond,
			FailbackHold: 30 * time.Second,
			WhenAllDown:  config.AllDownAll,
			Members: []config.Member{
				{Name: use, Database: "cache", Region: "us-east", Addresses: []netip.Addr{netip.MustParseAddr("10.1.0.10")}},
				{Name: euw, Database: "cache", Region: "eu-west", Addresses: []netip.Addr{netip.MustParseAddr("10.2.0.10")}},
				{Name: aps, Database: "cache", Region: "ap-south", Addresses: []netip.Addr{netip.MustParseAddr("10.3.0.10")}},
			},
		}},
		Probes: config.Probes{
			Interval:   time.Second,
			Timeout:    500 * time.Millisecond,
			Rise:       2,
			Fall:       2,
			Quorum:     config.Quorum{Kind: "majority"},
			StaleAfter: 3 * time.Second,
		},
		Agents: []config.Agent{
			{ID: "ap-south", Region: "ap-south"},
			{ID: "eu-west", Region: "eu-west"},
			{ID: "us-east", Region: "us-east"},
		},
	}
	for _, m := range mods {
		m(&cfg.Databases[0])
	}
	return cfg
}

// harness drives an engine with a fake clock and a simulated world: which
// vantages see which members failing, the members' lag, silent agents.
type harness struct {
	t    *testing.T
	e    *Engine
	cfg  *config.Config
	now  time.Time
	seq  map[string]uint64 // per agent
	ov   Overrides
	snap *Snapshot

	// failing[agent][member]: that vantage's probes of member fail.
	failing map[string]map[string]bool
	// lag[member][source region]: reported lag.
	lag map[string]map[string]time.Duration
	// silent agents send nothing.
	silent map[string]bool
}

func newHarness(t *testing.T, cfg *config.Config) *harness {
	t.Helper()
	h := &harness{
		t:       t,
		e:       New(cfg),
		cfg:     cfg,
		now:     t0,
		seq:     map[string]uint64{},
		ov:      Overrides{Drained: map[string]bool{}, Forced: map[string]string{}},
		failing: map[string]map[string]bool{},
		lag:     map[string]map[string]time.Duration{},
		silent:  map[string]bool{},
	}
	h.snap = h.e.Evaluate(h.now, h.ov)
	return h
}

// fail makes member fail from the given vantages (every vantage if none).
func (h *harness) fail(member string, agents ...string) { h.setFailing(member, true, agents) }

// heal makes member pass from the given vantages (every vantage if none).
func (h *harness) heal(member string, agents ...string) { h.setFailing(member, false, agents) }

func (h *harness) setFailing(member string, v bool, agents []string) {
	if len(agents) == 0 {
		for _, a := range h.cfg.Agents {
			agents = append(agents, a.ID)
		}
	}
	for _, a := range agents {
		if h.failing[a] == nil {
			h.failing[a] = map[string]bool{}
		}
		h.failing[a][member] = v
	}
}

// setLag makes every report of member carry lag behind every other
// region of the test config.
func (h *harness) setLag(member string, lag time.Duration) {
	h.lag[member] = map[string]time.Duration{}
	for _, r := range regions {
		h.lag[member][r] = lag
	}
}

// obs builds the next observation of member by agent at the current time.
func (h *harness) obs(agent, member string) Observation {
	h.seq[agent]++
	a, _ := h.cfg.Agent(agent)
	ok := !h.failing[agent][member]
	c := CheckResult{Check: "ping", Outcome: OutcomePass, OK: ok, Duration: time.Millisecond}
	if !ok {
		c.Outcome, c.Error = OutcomeTimeout, "i/o timeout"
	}
	var lag map[string]time.Duration
	if l := h.lag[member]; l != nil {
		lag = maps.Clone(l)
	}
	return Observation{
		Agent: agent, Region: a.Region, Member: member, Seq: h.seq[agent], Time: h.now,
		Checks: []CheckResult{c}, RTT: time.Millisecond, Lag: lag,
	}
}

// round advances the clock one second, has every agent that is not silent
// report every member, and evaluates.
func (h *harness) round() *Snapshot {
	h.now = h.now.Add(time.Second)
	for _, a := range h.cfg.Agents {
		if h.silent[a.ID] {
			continue
		}
		for _, db := range h.cfg.Databases {
			for _, m := range db.Members {
				h.e.Observe(h.obs(a.ID, m.Name))
			}
		}
	}
	h.snap = h.e.Evaluate(h.now, h.ov)
	return h.snap
}

// rounds runs n rounds and returns the events they produced.
func (h *harness) rounds(n int) []Event {
	var evs []Event
	for range n {
		evs = append(evs, h.round().Events...)
	}
	return evs
}

// answer returns the current answer for region of the test host.
func (h *harness) answer(region string) *Answer {
	h.t.Helper()
	a, ok := h.snap.Lookup(host, region)
	if !ok {
		h.t.Fatalf("no answer for %s in %s", host, region)
	}
	return a
}

// first returns the first answered member for region ("" for none).
func (h *harness) first(region string) string {
	h.t.Helper()
	a := h.answer(region)
	if len(a.Members) == 0 {
		return ""
	}
	return a.Members[0]
}

// firsts returns the first member of every region, in region order.
func (h *harness) firsts() []string {
	h.t.Helper()
	out := make([]string, 0, len(regions))
	for _, r := range regions {
		out = append(out, h.first(r))
	}
	return out
}

// verdict returns member's quorum verdict.
func (h *harness) verdict(member string) Verdict { return h.snap.Members[member].Verdict }

// wantFirsts fails unless the regions' first members are want
// (ap-south, eu-west, us-east).
func (h *harness) wantFirsts(want ...string) {
	h.t.Helper()
	if got := h.firsts(); !slices.Equal(got, want) {
		h.t.Fatalf("first members (ap-south, eu-west, us-east) = %v, want %v\nreasons:\n%s", got, want, h.reasons())
	}
}

func (h *harness) reasons() string {
	s := ""
	for _, r := range regions {
		s += "  " + r + ": " + h.answer(r).Reason + "\n"
	}
	return s
}

// nearest is the first members of the healthy test database by region.
var nearest = []string{aps, euw, use}
