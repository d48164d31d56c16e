package overrides

import (
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"
)

// Kind is what an override does.
type Kind string

// The kinds of override.
const (
	// Drain: the member (Target) is answered only when nothing else is
	// eligible.
	Drain Kind = "drain"
	// Force: every client of the database (Target) gets Member, whatever
	// its health.
	Force Kind = "force"
)

// TombstoneTTL is how long a removal (and an expired override) is kept
// before Collect drops it. A node that was cut off from every other node
// for longer than this may bring back, on its return, an override that was
// removed meanwhile: far longer than any partition the set is meant to
// ride out, short enough that the set stays small.
const TombstoneTTL = 7 * 24 * time.Hour

// Record is one override, or its removal, as taken by one node.
type Record struct {
	// Kind is drain or force.
	Kind Kind `json:"kind"`
	// Target is the drained member or the forced database.
	Target string `json:"target"`
	// Member is, for a force, the member every client gets.
	Member string `json:"member,omitempty"`
	// Removed marks a removal (undrain, force --clear): a tombstone that
	// beats every older record of the same Kind and Target.
	Removed bool `json:"removed,omitempty"`
	// Stamp orders the records of one Kind and Target: the highest wins.
	// Stamp.Node is the node that took the change.
	Stamp Stamp `json:"stamp"`
	// Who asked: the admin token's name, or "local" for an unauthenticated
	// call on loopback (security.insecure).
	Who string `json:"who"`
	// Reason is the operator's explanation, free text.
	Reason string `json:"reason,omitempty"`
	// Expires, when set, ends the override at that moment on every node.
	Expires time.Time `json:"expires,omitzero"`
}

// Key identifies what a record is about: its Kind and Target.
func (r Record) Key() string { return string(r.Kind) + "/" + r.Target }

// InForce reports whether the record is an override in force at now: not
// a removal, and not expired. Every node that holds the record decides the
// same for the same now, since the expiry is a moment, not a timer.
func (r Record) InForce(now time.Time) bool {
	return !r.Removed && (r.Expires.IsZero() || now.Before(r.Expires))
}

// Describe says what the record does, e.g. "drain of cache-use",
// "force of cache to cache-euw", "removal of the drain of cache-use".
func (r Record) Describe() string {
	what := "drain of " + r.Target
	if r.Kind == Force {
		what = "force of " + r.Target + " to " + r.Member
		if r.Removed {
			what = "force of " + r.Target
		}
	}
	if r.Removed {
		return "removal of the " + what
	}
	return what
}

// Validate checks a record received from elsewhere (a peer, the state
// file); the error names the field.
func (r Record) Validate() error {
	var errs []error
	if r.Kind != Drain && r.Kind != Force {
		errs = append(errs, fmt.Errorf("kind %q: want drain or force", r.Kind))
	}
	if r.Target == "" {
		errs = append(errs, errors.New("target is empty: want a member (drain) or database (force)"))
	}
	if r.Kind == Force && !r.Removed && r.Member == "" {
		errs = append(errs, fmt.Errorf("force of %q has no member", r.Target))
	}
	if r.Stamp.Node == "" || r.Stamp.Wall <= 0 {
		errs = append(errs, fmt.Errorf("stamp %+v: want a positive wall time and a node", r.Stamp))
	}
	return errors.Join(errs...)
}

// wins reports whether a replaces b in the set: the higher stamp wins.
// Two different records never share a stamp unless a node lost its state
// and its clock went back; a fixed order of their content then decides,
// so that merging stays commutative: a removal first, then the larger
// member, who, reason and expiry.
func wins(a, b Record) bool {
	if c := a.Stamp.Compare(b.Stamp); c != 0 {
		return c > 0
	}
	switch {
	case a.Removed != b.Removed:
		return a.Removed
	case a.Member != b.Member:
		return a.Member > b.Member
	case a.Who != b.Who:
		return a.Who > b.Who
	case a.Reason != b.Reason:
		return a.Reason > b.Reason
	}
	return a.Expires.After(b.Expires)
}

// Set is one node's replica of the override set. It is safe for
// concurrent use.
type Set struct {
	clock *Clock

	mu      sync.Mutex
	recs    map[string]Record
	version uint64 // counts changes, for callers that cache the set
}

// NewSet returns the empty replica of node, stamping with physical time
// from now.
func NewSet(node string, now func() time.Time) *Set {
	return &Set{clock: NewClock(node, now), recs: map[string]Record{}}
}

// Stamp returns r stamped as a new change taken by this node now, after
// every record the set has seen. The set is unchanged until the record is
// merged (so a change that cannot be persisted is never applied).
func (s *Set) Stamp(r Record) Record {
	r.Stamp = s.clock.Now()
	return r
}

// Merge merges records into the set and returns those that took effect
// (each beat the set's record of its key), sorted by key. Records that
// Collect would drop are not taken in. Invalid records are skipped and
// reported in the error; the valid ones are merged anyway.
func (s *Set) Merge(recs ...Record) ([]Record, error) {
	var errs []error
	var changed []Record
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range recs {
		if err := r.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("record %s: %w", r.Key(), err))
			continue
		}
		s.clock.Observe(r.Stamp)
		if collectable(r, s.clock.now()) {
			continue // collected here already: do not bring it back
		}
		if old, ok := s.recs[r.Key()]; ok && !wins(r, old) {
			continue
		}
		s.recs[r.Key()] = r
		changed = append(changed, r)
	}
	if len(changed) > 0 {
		s.version++
	}
	sortRecords(changed)
	return changed, errors.Join(errs...)
}

// Records returns every record, tombstones and expired ones included,
// sorted by key: the set as it is exchanged and persisted.
func (s *Set) Records() []Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Record, 0, len(s.recs))
	for _, r := range s.recs {
		out = append(out, r)
	}
	sortRecords(out)
	return out
}

// With returns the set's records as they would be after merging r,
// without changing the set: what to persist before applying r.
func (s *Set) With(r Record) []Record {
	recs := s.Records()
	for i, old := range recs {
		if old.Key() == r.Key() {
			if wins(r, old) {
				recs[i] = r
			}
			return recs
		}
	}
	recs = append(recs, r)
	sortRecords(recs)
	return recs
}

// InForce returns the overrides in force at now, sorted by key.
func (s *Set) InForce(now time.Time) []Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Record
	for _, r := range s.recs {
		if r.InForce(now) {
			out = append(out, r)
		}
	}
	sortRecords(out)
	return out
}

// Version increases with every change of the set.
func (s *Set) Version() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.version
}

// Collect drops the tombstones taken, and the overrides expired, more than
// TombstoneTTL before now, and returns how many it dropped.
func (s *Set) Collect(now time.Time) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for k, r := range s.recs {
		if collectable(r, now) {
			delete(s.recs, k)
			n++
		}
	}
	if n > 0 {
		s.version++
	}
	return n
}

// collectable reports whether r is a removal or expiry older than
// TombstoneTTL at now.
func collectable(r Record, now time.Time) bool {
	cutoff := now.Add(-TombstoneTTL)
	switch {
	case r.Removed:
		return r.Stamp.Time().Before(cutoff)
	case !r.Expires.IsZero():
		return r.Expires.Before(cutoff)
	}
	return false
}

func sortRecords(recs []Record) {
	sort.Slice(recs, func(i, j int) bool { return recs[i].Key() < recs[j].Key() })
}
