package policy

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aagtm/aagtm/config"
)

func TestModes(t *testing.T) {
	tests := []struct {
		name    string
		mod     func(*config.Database)
		failing []string
		// want[region] = answered members, regions in ap-south, eu-west, us-east order.
		want   [3][]string
		regDep bool
	}{
		{
			name:   "nearest gives each region its own",
			mod:    func(*config.Database) {},
			want:   [3][]string{{aps}, {euw}, {use}},
			regDep: true,
		},
		{
			name:    "nearest skips a down member",
			mod:     func(*config.Database) {},
			failing: []string{euw},
			want:    [3][]string{{aps}, {use}, {use}},
			regDep:  true,
		},
		{
			name: "failover file order gives every region the same",
			mod:  func(d *config.Database) { d.Mode = config.ModeFailover },
			want: [3][]string{{use}, {use}, {use}},
		},
		{
			name: "failover Order",
			mod: func(d *config.Database) {
				d.Mode = config.ModeFailover
				d.Order = []string{euw, "cache-unknown", euw, aps}
			},
			failing: []string{euw},
			want:    [3][]string{{aps}, {aps}, {aps}},
		},
		{
			name:   "all: every member, nearest first",
			mod:    func(d *config.Database) { d.Mode = config.ModeAll },
			want:   [3][]string{{aps, euw, use}, {euw, use, aps}, {use, euw, aps}},
			regDep: true,
		},
		{
			name:    "all: without the down member",
			mod:     func(d *config.Database) { d.Mode = config.ModeAll },
			failing: []string{use},
			want:    [3][]string{{aps, euw}, {euw, aps}, {euw, aps}},
			regDep:  true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, testConfig(tt.mod))
			for _, m := range tt.failing {
				h.fail(m)
			}
			h.rounds(2)
			for i, r := range regions {
				a := h.answer(r)
				if !slices.Equal(a.Members, tt.want[i]) {
					t.Errorf("%s: members = %v, want %v (%s)", r, a.Members, tt.want[i], a.Reason)
				}
				if len(a.Records) != len(tt.want[i]) {
					t.Errorf("%s: %d records, want %d", r, len(a.Records), len(tt.want[i]))
				}
				if a.RegionDependent != tt.regDep {
					t.Errorf("%s: RegionDependent = %v, want %v", r, a.RegionDependent, tt.regDep)
				}
				if a.TTL != 5*time.Second || a.ServFail {
					t.Errorf("%s: TTL %s ServFail %v", r, a.TTL, a.ServFail)
				}
			}
		})
	}
}

func TestAllModeTiers(t *testing.T) {
	h := newHarness(t, testConfig(func(d *config.Database) { d.Mode = config.ModeAll }))
	// euw recovering, use lagging, aps in sync.
	h.fail(euw)
	h.rounds(2)
	h.heal(euw)
	h.setLag(use, time.Second)
	h.rounds(2)
	// The recovering euw is not answered beside settled members.
	want := []string{aps, use}
	for _, r := range regions {
		if got := h.answer(r).Members; !slices.Equal(got, want) {
			t.Errorf("%s: members = %v, want %v", r, got, want)
		}
	}
	// Drained ones only when no undrained member is up.
	h.ov.Drained[aps] = true
	h.round()
	if got := h.answer("ap-south").Members; !slices.Equal(got, []string{use}) {
		t.Errorf("members = %v, want [use]", got)
	}
	// Nothing settled and undrained: the recovering euw is answered,
	// before the drained aps.
	h.fail(use)
	h.rounds(2)
	if got := h.answer("ap-south").Members; !slices.Equal(got, []string{euw}) {
		t.Errorf("members = %v, want only the recovering euw (%s)", got, h.answer("ap-south").Reason)
	}
	h.fail(euw)
	h.rounds(2)
	if got := h.answer("ap-south").Members; !slices.Equal(got, []string{aps}) {
		t.Errorf("members = %v, want only the drained aps (%s)", got, h.answer("ap-south").Reason)
	}
	// Once euw's hold is served, it is answered beside the others.
	delete(h.ov.Drained, aps)
	h.heal(use)
	h.heal(euw)
	h.setLag(use, 10*time.Millisecond)
	h.rounds(40)
	if got := h.answer("eu-west").Members; !slices.Equal(got, []string{euw, use, aps}) {
		t.Errorf("members = %v, want all three once settled (%s)", got, h.answer("eu-west").Reason)
	}
}

func TestDrained(t *testing.T) {
	h := newHarness(t, testConfig())
	h.ov.Drained[euw] = true
	evs := h.rounds(1)
	h.wantFirsts(aps, use, use)
	if len(evs) != 1 || evs[0].Kind != Change || !strings.Contains(evs[0].Reason, "drained by operator") {
		t.Fatalf("events = %+v, want one drain change", evs)
	}
	if !h.snap.Members[euw].Drained {
		t.Error("status not drained")
	}
	// Nothing else eligible: the drained member serves.
	h.fail(use)
	h.fail(aps)
	h.rounds(2)
	h.wantFirsts(euw, euw, euw)
	if r := h.answer("eu-west").Reason; !strings.Contains(r, "drained") {
		t.Errorf("reason %q does not say drained", r)
	}
	// A recovering member still ranks before a drained one.
	h.heal(use)
	h.rounds(2)
	h.wantFirsts(use, use, use)
	// Undrained: settled euw beats recovering use everywhere, as a change.
	delete(h.ov.Drained, euw)
	evs = h.rounds(1)
	h.wantFirsts(euw, euw, euw)
	if len(evs) != 3 {
		t.Errorf("events = %+v, want 3", evs)
	}
	for _, e := range evs {
		if e.Kind != Change {
			t.Errorf("event %+v, want change on undrain", e)
		}
	}
}

func TestWhenAllDown(t *testing.T) {
	tests := []struct {
		policy     config.AllDown
		want       [3][]string
		servfail   bool
		regDep     bool
		reasonHas  string
		primeFirst bool // let a good answer exist before everything fails
	}{
		{config.AllDownAll, [3][]string{{use, euw, aps}, {use, euw, aps}, {use, euw, aps}}, false, false, "failing open", true},
		{"", [3][]string{{use, euw, aps}, {use, euw, aps}, {use, euw, aps}}, false, false, "failing open", true},
		{config.AllDownLast, [3][]string{{aps}, {euw}, {use}}, false, true, "last good answer", true},
		{config.AllDownLast, [3][]string{{use, euw, aps}, {use, euw, aps}, {use, euw, aps}}, false, false, "no last good answer", false},
		{config.AllDownServfail, [3][]string{nil, nil, nil}, true, false, "SERVFAIL", true},
	}
	for _, tt := range tests {
		t.Run(string(tt.policy)+"/"+tt.reasonHas, func(t *testing.T) {
			cfg := testConfig(func(d *config.Database) { d.WhenAllDown = tt.policy })
			var h *harness
			if tt.primeFirst {
				h = newHarness(t, cfg)
			} else {
				// No good answer before everything is down.
				cfg.Probes.Fall = 1
				h = &harness{t: t, e: New(cfg), cfg: cfg, now: t0, seq: map[string]uint64{},
					failing: map[string]map[string]bool{}, lag: map[string]map[string]time.Duration{}, silent: map[string]bool{}}
			}
			for _, m := range []string{use, euw, aps} {
				h.fail(m)
			}
			evs := h.rounds(2)
			for i, r := range regions {
				a := h.answer(r)
				if !slices.Equal(a.Members, tt.want[i]) {
					t.Errorf("%s: members = %v, want %v", r, a.Members, tt.want[i])
				}
				if a.ServFail != tt.servfail || a.RegionDependent != tt.regDep {
					t.Errorf("%s: ServFail %v RegionDependent %v", r, a.ServFail, a.RegionDependent)
				}
				if !strings.Contains(a.Reason, tt.reasonHas) || !strings.Contains(a.Reason, "down: timeout (3/3 vantages)") {
					t.Errorf("%s: reason %q lacks %q", r, a.Reason, tt.reasonHas)
				}
			}
			// Entering all-down is one all_down event per region, even
			// where the first member stays the same, with its detection
			// time (none without a good answer before).
			if tt.primeFirst && len(evs) != len(regions) {
				t.Errorf("events %+v, want one all_down per region", evs)
			}
			for _, e := range evs {
				if e.Kind != AllDown || e.Detection != time.Second {
					t.Errorf("event %+v, want all_down detected in 1s", e)
				}
			}
			// One member recovers: it serves everywhere; leaving all-down
			// is not a failback.
			h.heal(euw)
			evs = h.rounds(2)
			h.wantFirsts(euw, euw, euw)
			if len(evs) != len(regions) {
				t.Errorf("events %+v, want one all_down_end per region", evs)
			}
			for _, e := range evs {
				if e.Kind != AllDownEnd || e.To != euw || e.Detection != 0 {
					t.Errorf("event %+v, want all_down_end to euw", e)
				}
			}
		})
	}
}

func TestRecords(t *testing.T) {
	v6 := netip.MustParseAddr("fd00::10")
	mapped := netip.MustParseAddr("::ffff:10.2.0.11")
	tests := []struct {
		name    string
		mod     func(*config.Database)
		region  string
		want    []Record
		members []string
	}{
		{
			name:    "A",
			region:  "us-east",
			want:    []Record{{Kind: RecordA, Member: use, Addr: netip.MustParseAddr("10.1.0.10")}},
			members: []string{use},
		},
		{
			name: "AAAA and mapped v4",
			mod: func(d *config.Database) {
				d.Members[1].Addresses = []netip.Addr{v6, mapped}
			},
			region: "eu-west",
			want: []Record{
				{Kind: RecordAAAA, Member: euw, Addr: v6},
				{Kind: RecordA, Member: euw, Addr: netip.MustParseAddr("10.2.0.11")},
			},
			members: []string{euw},
		},
		{
			name: "CNAME member",
			mod: func(d *config.Database) {
				d.Members[1].Addresses = nil
				d.Members[1].CNAME = "redis-1234.eu.cloud.example.net."
			},
			region:  "eu-west",
			want:    []Record{{Kind: RecordCNAME, Member: euw, Target: "redis-1234.eu.cloud.example.net."}},
			members: []string{euw},
		},
		{
			name: "all mode with a CNAME first: exactly one CNAME",
			mod: func(d *config.Database) {
				d.Mode = config.ModeAll
				d.Members[1].Addresses = nil
				d.Members[1].CNAME = "redis-1234.eu.cloud.example.net."
			},
			region:  "eu-west",
			want:    []Record{{Kind: RecordCNAME, Member: euw, Target: "redis-1234.eu.cloud.example.net."}},
			members: []string{euw},
		},
		{
			name: "all mode skips CNAME members after the first",
			mod: func(d *config.Database) {
				d.Mode = config.ModeAll
				d.Members[1].Addresses = nil
				d.Members[1].CNAME = "redis-1234.eu.cloud.example.net."
			},
			region: "us-east",
			want: []Record{
				{Kind: RecordA, Member: use, Addr: netip.MustParseAddr("10.1.0.10")},
				{Kind: RecordA, Member: aps, Addr: netip.MustParseAddr("10.3.0.10")},
			},
			members: []string{use, aps},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mods := []func(*config.Database){}
			if tt.mod != nil {
				mods = append(mods, tt.mod)
			}
			h := newHarness(t, testConfig(mods...))
			a := h.answer(tt.region)
			if !slices.Equal(a.Records, tt.want) {
				t.Errorf("records = %+v, want %+v", a.Records, tt.want)
			}
			if !slices.Equal(a.Members, tt.members) {
				t.Errorf("members = %v, want %v", a.Members, tt.members)
			}
		})
	}
}

func TestForced(t *testing.T) {
	for _, mode := range []config.Mode{config.ModeNearest, config.ModeFailover, config.ModeAll} {
		t.Run(string(mode), func(t *testing.T) {
			h := newHarness(t, testConfig(func(d *config.Database) { d.Mode = mode }))
			h.fail(aps) // forced wins over health
			h.rounds(2)
			h.ov.Forced["cache"] = aps
			evs := h.rounds(1)
			for _, r := range regions {
				a := h.answer(r)
				if !slices.Equal(a.Members, []string{aps}) || a.RegionDependent {
					t.Errorf("%s: %v RegionDependent %v", r, a.Members, a.RegionDependent)
				}
				if !strings.Contains(a.Reason, "forced by operator") {
					t.Errorf("%s: reason %q", r, a.Reason)
				}
			}
			if len(evs) == 0 {
				t.Fatal("no event for the force")
			}
			for _, e := range evs {
				if e.Kind != Change || e.To != aps {
					t.Errorf("event %+v", e)
				}
			}
			delete(h.ov.Forced, "cache")
			evs = h.rounds(1)
			if len(evs) == 0 || evs[0].Kind != Change || !strings.Contains(evs[0].Reason, "lifted") {
				t.Errorf("events after lifting = %+v", evs)
			}
		})
	}
	t.Run("unknown forced member ignored", func(t *testing.T) {
		h := newHarness(t, testConfig())
		h.ov.Forced["cache"] = "cache-elsewhere"
		h.ov.Forced["nodb"] = use
		h.round()
		h.wantFirsts(nearest...)
	})
}

func TestReason(t *testing.T) {
	h := newHarness(t, testConfig())
	h.setLag(use, 12*time.Millisecond)
	h.fail(euw, "us-east", "ap-south")
	h.rounds(2)
	// The answer for eu-west moved to use in the second round.
	want := "cache-use (us-east) up, in sync (lag 12ms), nearest eligible for eu-west since 2026-11-25T19:00:02Z; " +
		"cache-euw down: timeout (2/3 vantages)"
	if got := h.answer("eu-west").Reason; got != want {
		t.Errorf("reason\n got %q\nwant %q", got, want)
	}
	want = "cache-use (us-east) up, in sync (lag 12ms), nearest for us-east since 2026-11-25T19:00:00Z"
	if got := h.answer("us-east").Reason; got != want {
		t.Errorf("reason\n got %q\nwant %q", got, want)
	}
	if got := h.answer("eu-west").Since; !got.Equal(t0.Add(2 * time.Second)) {
		t.Errorf("Since = %v", got)
	}
	h.rounds(3)
	if got := h.answer("eu-west").Since; !got.Equal(t0.Add(2 * time.Second)) {
		t.Errorf("Since moved while the answer did not: %v", got)
	}

	t.Run("failover and all modes", func(t *testing.T) {
		h := newHarness(t, testConfig(func(d *config.Database) { d.Mode = config.ModeFailover }))
		h.fail(use)
		h.rounds(2)
		r := h.answer("us-east").Reason
		if !strings.HasPrefix(r, "cache-euw (eu-west) up, lag unknown, first eligible in failover order since") ||
			!strings.HasSuffix(r, "; cache-use down: timeout (3/3 vantages)") {
			t.Errorf("failover reason %q", r)
		}
		h = newHarness(t, testConfig(func(d *config.Database) { d.Mode = config.ModeAll }))
		h.fail(use)
		h.rounds(2)
		r = h.answer("us-east").Reason
		if !strings.HasPrefix(r, "all eligible for us-east, nearest first, since") ||
			!strings.Contains(r, "cache-euw (eu-west) up, lag unknown; cache-aps (ap-south) up") ||
			!strings.HasSuffix(r, "; cache-use down: timeout (3/3 vantages)") {
			t.Errorf("all reason %q", r)
		}
	})
	t.Run("recovering and stale", func(t *testing.T) {
		h := newHarness(t, testConfig())
		for _, m := range []string{use, euw, aps} {
			h.fail(m)
		}
		h.rounds(2)
		h.heal(use)
		h.rounds(2)
		if r := h.answer("us-east").Reason; !strings.Contains(r, "recovering (failback hold 0s of 30s observed)") {
			t.Errorf("reason %q", r)
		}
		h.setLag(use, time.Second)
		h.round()
		if r := h.answer("us-east").Reason; !strings.Contains(r, "lagging (lag 1s > 500ms), recovering (failback hold starts when in sync)") {
			t.Errorf("reason %q", r)
		}
		for _, a := range regions {
			h.silent[a] = true
		}
		h.rounds(5)
		if r := h.answer("eu-west").Reason; !strings.Contains(r, "cache-euw down: timeout, no fresh vantage since 2026-11-25T19:00:07Z: last verdict kept") ||
			!strings.Contains(r, "cache-use (us-east) up, no fresh vantage since 2026-11-25T19:00:07Z: last verdict kept, lagging (lag unknown)") {
			t.Errorf("reason %q", r)
		}
	})
}

func TestRanker(t *testing.T) {
	h := newHarness(t, testConfig())
	var got []RankInput
	// Farthest first, by measured RTT (the seam): here simply reversed,
	// with garbage names mixed in.
	h.e.SetRanker(func(in RankInput) []string {
		got = append(got, in)
		names := PreferenceRanker(in)
		slices.Reverse(names)
		return append([]string{"nope", names[0]}, names...)
	})
	h.round()
	h.wantFirsts(use, aps, aps)
	if len(got) != len(regions) || got[0].RTT[euw]["us-east"] != time.Millisecond || got[0].Database.Name != "cache" {
		t.Fatalf("ranker inputs = %+v", got)
	}
	h.e.SetRanker(nil)
	h.round()
	h.wantFirsts(nearest...)
}

func TestSerial(t *testing.T) {
	h := newHarness(t, testConfig())
	h.setLag(use, time.Millisecond)
	h.rounds(3) // reasons change (lag), answers do not
	if h.snap.Serial != 1 {
		t.Fatalf("Serial = %d, want 1", h.snap.Serial)
	}
	h.fail(euw)
	h.rounds(2)
	if h.snap.Serial != 2 {
		t.Fatalf("Serial = %d, want 2", h.snap.Serial)
	}
	h.rounds(2)
	if h.snap.Serial != 2 {
		t.Fatalf("Serial = %d, want 2", h.snap.Serial)
	}
}
