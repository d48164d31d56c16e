package overrides

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"pgregory.net/rapid"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// replica is one node's set with a clock skewed from the test's time.
type replica struct {
	set  *Set
	skew time.Duration
}

// genRecord draws an override (or removal) of a small space of targets,
// so that changes collide often.
func genRecord(t *rapid.T, now time.Time) Record {
	kind := rapid.SampledFrom([]Kind{Drain, Force}).Draw(t, "kind")
	r := Record{Kind: kind, Target: rapid.SampledFrom([]string{"a", "b"}).Draw(t, "target"),
		Removed: rapid.Bool().Draw(t, "removed"), Who: "local", Reason: rapid.StringN(0, 5, -1).Draw(t, "reason")}
	if kind == Force && !r.Removed {
		r.Member = rapid.SampledFrom([]string{"m1", "m2", "m3"}).Draw(t, "member")
	}
	if rapid.Bool().Draw(t, "expires") {
		r.Expires = now.Add(time.Duration(rapid.IntRange(1, 20).Draw(t, "for")) * time.Second)
	}
	return r
}

// Random interleavings of changes, merges and passing time on three
// replicas with skewed clocks converge, once every replica has merged
// every other's set, to the same records and the same overrides in force
// at any moment.
func TestMergeConverges(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		now := t0
		reps := make([]*replica, 3)
		for i := range reps {
			r := &replica{skew: time.Duration(rapid.IntRange(-2000, 2000).Draw(t, "skew_ms")) * time.Millisecond}
			r.set = NewSet(fmt.Sprintf("ns%d", i+1), func() time.Time { return now.Add(r.skew) })
			reps[i] = r
		}
		steps := rapid.IntRange(1, 60).Draw(t, "steps")
		for range steps {
			i := rapid.IntRange(0, 2).Draw(t, "replica")
			switch rapid.IntRange(0, 2).Draw(t, "op") {
			case 0: // a local change
				rec := reps[i].set.Stamp(genRecord(t, now))
				if _, err := reps[i].set.Merge(rec); err != nil {
					t.Fatal(err)
				}
			case 1: // one exchange: i sends to j, j replies with its set
				j := rapid.IntRange(0, 2).Draw(t, "peer")
				mustMerge(t, reps[j].set, reps[i].set.Records())
				mustMerge(t, reps[i].set, reps[j].set.Records())
			case 2:
				now = now.Add(time.Duration(rapid.IntRange(0, 3000).Draw(t, "advance_ms")) * time.Millisecond)
			}
		}
		// Gossip until everyone has everything: two rounds through ns1.
		for range 2 {
			for _, r := range reps[1:] {
				mustMerge(t, reps[0].set, r.set.Records())
				mustMerge(t, r.set, reps[0].set.Records())
			}
		}
		want := reps[0].set.Records()
		for i, r := range reps[1:] {
			if got := r.set.Records(); !reflect.DeepEqual(got, want) {
				t.Fatalf("ns%d records %+v\nns1 records %+v", i+2, got, want)
			}
		}
		for _, at := range []time.Duration{0, time.Second, 10 * time.Second, time.Minute} {
			want := reps[0].set.InForce(now.Add(at))
			for i, r := range reps[1:] {
				if got := r.set.InForce(now.Add(at)); !reflect.DeepEqual(got, want) {
					t.Fatalf("at +%s ns%d has in force %+v, ns1 %+v", at, i+2, got, want)
				}
			}
		}
	})
}

func mustMerge(t *rapid.T, s *Set, recs []Record) {
	if _, err := s.Merge(recs...); err != nil {
		t.Fatal(err)
	}
}

// genStamped draws a record with an arbitrary stamp: two different
// records may share one (a node that lost its state and its clock).
func genStamped(t *rapid.T, label string) Record {
	r := genRecord(t, t0)
	r.Stamp = Stamp{Wall: t0.UnixNano() + rapid.Int64Range(0, 5).Draw(t, label+"_wall"),
		Logical: uint32(rapid.IntRange(0, 2).Draw(t, label+"_logical")),
		Node:    rapid.SampledFrom([]string{"ns1", "ns2"}).Draw(t, label+"_node")}
	return r
}

func setOf(recs ...[]Record) []Record {
	s := NewSet("x", func() time.Time { return t0 })
	for _, rs := range recs {
		if _, err := s.Merge(rs...); err != nil {
			panic(err)
		}
	}
	return s.Records()
}

// Merge is commutative, associative and idempotent on any sets.
func TestMergeLaws(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		gen := func(label string) []Record {
			n := rapid.IntRange(0, 6).Draw(t, label+"_n")
			var out []Record
			for i := range n {
				out = append(out, genStamped(t, fmt.Sprintf("%s%d", label, i)))
			}
			return out
		}
		a, b, c := gen("a"), gen("b"), gen("c")
		if ab, ba := setOf(a, b), setOf(b, a); !reflect.DeepEqual(ab, ba) {
			t.Fatalf("not commutative:\n a∪b %+v\n b∪a %+v", ab, ba)
		}
		if l, r := setOf(setOf(a, b), c), setOf(a, setOf(b, c)); !reflect.DeepEqual(l, r) {
			t.Fatalf("not associative:\n (a∪b)∪c %+v\n a∪(b∪c) %+v", l, r)
		}
		if aa, one := setOf(a, a), setOf(a); !reflect.DeepEqual(aa, one) {
			t.Fatalf("not idempotent:\n a∪a %+v\n a %+v", aa, one)
		}
	})
}

// A removal taken after a write, on any node and whatever its clock, beats
// that write in every merge order; a write taken after the removal beats
// the removal.
func TestTombstones(t *testing.T) {
	tests := []struct {
		name       string
		writerSkew time.Duration // the drain's node clock against the remover's
		redrain    bool          // drain again after the removal
		wantDrain  bool
	}{
		{"undrain after drain", 0, false, false},
		{"undrain on a node 1h behind the drainer", time.Hour, false, false},
		{"undrain on a node 1h ahead", -time.Hour, false, false},
		{"drain again after undrain, its node 1h behind", -time.Hour, true, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ns1 := NewSet("ns1", func() time.Time { return t0.Add(tc.writerSkew) })
			ns2 := NewSet("ns2", func() time.Time { return t0 })
			drain := ns1.Stamp(Record{Kind: Drain, Target: "a", Who: "local"})
			merge(t, ns1, drain)
			merge(t, ns2, ns1.Records()...) // ns2 learns of the drain
			undrain := ns2.Stamp(Record{Kind: Drain, Target: "a", Removed: true, Who: "local"})
			merge(t, ns2, undrain)
			final := []Record{drain, undrain}
			if tc.redrain {
				merge(t, ns1, ns2.Records()...)
				again := ns1.Stamp(Record{Kind: Drain, Target: "a", Who: "local"})
				final = append(final, again)
			}
			for _, order := range [][]int{{0, 1, 2}, {2, 1, 0}, {1, 0, 2}, {2, 0, 1}} {
				s := NewSet("ns3", func() time.Time { return t0 })
				for _, i := range order {
					if i < len(final) {
						merge(t, s, final[i])
					}
				}
				if got := len(s.InForce(t0)) == 1; got != tc.wantDrain {
					t.Errorf("order %v: drained %v, want %v (records %+v)", order, got, tc.wantDrain, s.Records())
				}
			}
		})
	}
}

func merge(t *testing.T, s *Set, recs ...Record) {
	t.Helper()
	if _, err := s.Merge(recs...); err != nil {
		t.Fatal(err)
	}
}

// Expiry is a moment shared by every replica: in force before it, ended
// at it, and collected TombstoneTTL later.
func TestExpiry(t *testing.T) {
	exp := t0.Add(2 * time.Second)
	rec := NewSet("ns1", func() time.Time { return t0 }).Stamp(Record{Kind: Drain, Target: "a", Who: "local", Expires: exp})
	tests := []struct {
		at        time.Time
		inForce   bool
		collected bool
	}{
		{t0, true, false},
		{exp.Add(-time.Nanosecond), true, false},
		{exp, false, false},
		{exp.Add(TombstoneTTL), false, false},
		{exp.Add(TombstoneTTL + time.Second), false, true},
	}
	for _, tc := range tests {
		t.Run(tc.at.Sub(t0).String(), func(t *testing.T) {
			for _, skew := range []time.Duration{0, -time.Minute, time.Minute} { // node clocks do not matter
				s := NewSet("ns2", func() time.Time { return t0.Add(skew) })
				merge(t, s, rec)
				if got := len(s.InForce(tc.at)) == 1; got != tc.inForce {
					t.Errorf("skew %s: in force %v, want %v", skew, got, tc.inForce)
				}
				if got := s.Collect(tc.at) == 1; got != tc.collected {
					t.Errorf("skew %s: collected %v, want %v", skew, got, tc.collected)
				}
			}
		})
	}
}

// Invalid records from a peer are refused with the field named; the valid
// ones in the same batch are merged.
func TestMergeRejectsInvalid(t *testing.T) {
	stamp := Stamp{Wall: t0.UnixNano(), Node: "ns1"}
	tests := []struct {
		name string
		rec  Record
		want string
	}{
		{"unknown kind", Record{Kind: "reboot", Target: "a", Stamp: stamp}, `kind "reboot"`},
		{"no target", Record{Kind: Drain, Stamp: stamp}, "target is empty"},
		{"force without member", Record{Kind: Force, Target: "db", Stamp: stamp}, "has no member"},
		{"no stamp", Record{Kind: Drain, Target: "a"}, "stamp"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := NewSet("ns2", func() time.Time { return t0 })
			good := Record{Kind: Drain, Target: "ok", Stamp: stamp}
			changed, err := s.Merge(tc.rec, good)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want it to name %q", err, tc.want)
			}
			if len(changed) != 1 || changed[0].Target != "ok" {
				t.Errorf("changed %+v, want the valid record merged", changed)
			}
		})
	}
}
