package policy

import (
	"net/netip"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/aagtm/aagtm/config"
	"pgregory.net/rapid"
)

// scenario is a generated config and a script of probe rounds.
type scenario struct {
	cfg    *config.Config
	rounds []genRound
}

// genRound is one tick: its observations (in arrival order), how far the
// clock moves before it, and the overrides in force.
type genRound struct {
	advance time.Duration
	obs     []Observation
	ov      Overrides
}

// genScenario draws a config (the test database in any mode, quorum,
// rise/fall, hold and when_all_down, plus a second failover database with a
// CNAME member) and up to 25 rounds of random observations: silent agents,
// random pass/fail, lag, repeated and reordered sequence numbers, drains and,
// when withForce, forced members.
func genScenario(t *rapid.T, withForce bool) scenario {
	cfg := drawConfig(t, 5*time.Second)
	cfg.Databases = append(cfg.Databases, config.Database{
		Name: "store", Host: "store.gtm.example.com.", Mode: config.ModeFailover, TTL: time.Second,
		LagTolerance: time.Second, WhenAllDown: config.AllDownLast,
		Members: []config.Member{
			{Name: "store-use", Database: "store", Region: "us-east", CNAME: "store.us.example.net."},
			{Name: "store-euw", Database: "store", Region: "eu-west", Addresses: []netip.Addr{netip.MustParseAddr("fd00::2")}},
		},
	})

	members := []string{use, euw, aps, "store-use", "store-euw", "unknown-member"}
	agents := []string{"ap-south", "eu-west", "us-east", "unknown-agent"}
	seq := map[string]uint64{}
	var rounds []genRound
	n := rapid.IntRange(1, 25).Draw(t, "rounds")
	for range n {
		r := genRound{advance: time.Duration(rapid.IntRange(0, 4000).Draw(t, "advance_ms")) * time.Millisecond}
		for _, a := range agents {
			if rapid.IntRange(0, 4).Draw(t, "silent") == 0 {
				continue
			}
			seq[a] += uint64(rapid.IntRange(0, 2).Draw(t, "seq_step"))
			for _, m := range members {
				o := Observation{Agent: a, Member: m, Seq: seq[a],
					RTT: time.Duration(rapid.IntRange(1, 50).Draw(t, "rtt")) * time.Millisecond}
				if o.Seq > 0 && rapid.IntRange(0, 5).Draw(t, "seq_back") == 0 {
					o.Seq-- // a repeated or old sequence number
				}
				o.Checks = []CheckResult{{Check: "ping", OK: rapid.IntRange(0, 2).Draw(t, "ok") > 0}}
				if rapid.Bool().Draw(t, "has_lag") {
					o.Lag = map[string]time.Duration{
						rapid.SampledFrom(regions).Draw(t, "lag_src"): time.Duration(rapid.IntRange(0, 1500).Draw(t, "lag_ms")) * time.Millisecond,
					}
				}
				r.obs = append(r.obs, o)
			}
		}
		r.ov = Overrides{Drained: map[string]bool{}, Forced: map[string]string{}}
		for _, m := range members {
			if rapid.IntRange(0, 5).Draw(t, "drain") == 0 {
				r.ov.Drained[m] = true
			}
		}
		if withForce && rapid.IntRange(0, 5).Draw(t, "force") == 0 {
			r.ov.Forced["cache"] = rapid.SampledFrom(members).Draw(t, "forced")
		}
		rounds = append(rounds, r)
	}
	return scenario{cfg: cfg, rounds: rounds}
}

// run plays a scenario on a new engine, calling check after every
// evaluation. perm, when set, reorders each round's observations.
func (s scenario) run(perm func(i int, obs []Observation) []Observation, check func(*Snapshot)) {
	e := New(s.cfg)
	now := t0
	for i, r := range s.rounds {
		now = now.Add(r.advance)
		obs := r.obs
		if perm != nil {
			obs = perm(i, obs)
		}
		for _, o := range obs {
			o.Time = now
			e.Observe(o)
		}
		check(e.Evaluate(now, r.ov))
	}
}

// TestPropertyNoDownWhileEligible: no down member is answered while an
// eligible (up, undrained) member of the database exists.
func TestPropertyNoDownWhileEligible(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		s := genScenario(t, false)
		s.run(nil, func(snap *Snapshot) {
			for _, db := range s.cfg.Databases {
				eligible := false
				for _, m := range db.Members {
					st := snap.Members[m.Name]
					eligible = eligible || st.Verdict == Up && !st.Drained
				}
				if !eligible {
					continue
				}
				for r, a := range snap.Hosts[db.Host].ByRegion {
					if a.ServFail || len(a.Members) == 0 {
						t.Fatalf("%s/%s: no answer while a member is eligible: %s", db.Name, r, a.Reason)
					}
					for _, m := range a.Members {
						if snap.Members[m].Verdict == Down {
							t.Fatalf("%s/%s: down member %s answered: %s", db.Name, r, m, a.Reason)
						}
					}
				}
			}
		})
	})
}

// TestPropertyOnlyConfiguredMembers: answers contain only configured
// members of that database, and every record belongs to an answered member.
func TestPropertyOnlyConfiguredMembers(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		s := genScenario(t, true)
		s.run(nil, func(snap *Snapshot) {
			if len(snap.Hosts) != len(s.cfg.Databases) {
				t.Fatalf("%d hosts, want %d", len(snap.Hosts), len(s.cfg.Databases))
			}
			for _, db := range s.cfg.Databases {
				h := snap.Hosts[db.Host]
				if len(h.ByRegion) != len(regions) {
					t.Fatalf("%s: %d regions", db.Name, len(h.ByRegion))
				}
				for r, a := range h.ByRegion {
					for _, m := range a.Members {
						if !isMemberOf(&db, m) {
							t.Fatalf("%s/%s: answered %s, not a member", db.Name, r, m)
						}
					}
					cnames := 0
					for _, rec := range a.Records {
						if !slices.Contains(a.Members, rec.Member) {
							t.Fatalf("%s/%s: record of %s not in %v", db.Name, r, rec.Member, a.Members)
						}
						if rec.Kind == RecordCNAME {
							cnames++
						}
					}
					if cnames > 0 && len(a.Records) != 1 {
						t.Fatalf("%s/%s: CNAME beside other records: %+v", db.Name, r, a.Records)
					}
					if a.ServFail != (len(a.Members) == 0) || a.TTL != db.TTL {
						t.Fatalf("%s/%s: ServFail %v with members %v", db.Name, r, a.ServFail, a.Members)
					}
				}
			}
		})
	})
}

// TestPropertyArrivalOrder: the order in which the observations of one tick
// arrive does not change the snapshot.
func TestPropertyArrivalOrder(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		s := genScenario(t, true)
		var want []*Snapshot
		s.run(nil, func(snap *Snapshot) { want = append(want, snap) })
		var got []*Snapshot
		s.run(func(i int, obs []Observation) []Observation {
			return rapid.Permutation(obs).Draw(t, "perm")
		}, func(snap *Snapshot) { got = append(got, snap) })
		for i := range want {
			if !reflect.DeepEqual(want[i], got[i]) {
				t.Fatalf("round %d: snapshots differ\n got %+v\nwant %+v", i, got[i], want[i])
			}
		}
	})
}

// drawConfig draws testConfig's database mode, when_all_down, failback
// hold (up to maxHold, in whole seconds) and failover order, and the
// probes' rise, fall and quorum.
func drawConfig(t *rapid.T, maxHold time.Duration) *config.Config {
	cfg := testConfig(func(d *config.Database) {
		d.Mode = rapid.SampledFrom([]config.Mode{config.ModeNearest, config.ModeFailover, config.ModeAll}).Draw(t, "mode")
		d.WhenAllDown = rapid.SampledFrom([]config.AllDown{config.AllDownAll, config.AllDownLast, config.AllDownServfail}).Draw(t, "when_all_down")
		d.FailbackHold = time.Duration(rapid.IntRange(0, int(maxHold/time.Second)).Draw(t, "hold")) * time.Second
		if rapid.Bool().Draw(t, "order") {
			d.Order = []string{aps, use}
		}
	})
	cfg.Probes.Rise = rapid.IntRange(1, 3).Draw(t, "rise")
	cfg.Probes.Fall = rapid.IntRange(1, 3).Draw(t, "fall")
	cfg.Probes.Quorum = rapid.SampledFrom([]config.Quorum{
		{Kind: "majority"}, {Kind: "any"}, {Kind: "all"}, {Kind: "count", Count: 2},
	}).Draw(t, "quorum")
	return cfg
}

// TestPropertyKeptAnswersMatchFullBuild: a database whose inputs did not
// change keeps its last answers instead of building them again; every
// snapshot must be the one an engine building every answer anew gives
// (SetRanker(nil) drops what was built). After each round the node's ticks
// without reports are evaluated too, where most answers are kept.
func TestPropertyKeptAnswersMatchFullBuild(t *testing.T) {
	kept := 0
	rapid.Check(t, func(t *rapid.T) {
		s := genScenario(t, true)
		keeping, full := New(s.cfg), New(s.cfg)
		now := t0
		for i, r := range s.rounds {
			now = now.Add(r.advance)
			for _, o := range r.obs {
				o.Time = now
				keeping.Observe(o)
				full.Observe(o)
			}
			for k, at := range []time.Time{now, now, now.Add(100 * time.Millisecond)} {
				prev := keeping.prev
				full.SetRanker(nil)
				got, want := keeping.Evaluate(at, r.ov), full.Evaluate(at, r.ov)
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("round %d, evaluation %d: snapshots differ\n got %+v\nwant %+v", i, k, got, want)
				}
				for h, a := range got.Hosts {
					if prev != nil && prev.Hosts[h] == a {
						kept++
					}
				}
			}
			now = now.Add(100 * time.Millisecond)
		}
	})
	if kept == 0 {
		t.Fatal("no database kept its answers: nothing was compared")
	}
	t.Logf("answers kept %d times", kept)
}
