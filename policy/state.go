package policy

import (
	"cmp"
	"maps"
	"slices"
	"time"
)

// State is the engine's decision state, for a node to persist and restore
// across a restart so that it serves its last answers at once instead of
// starting from "everything up". It is JSON-serialisable. Per-vantage
// rise/fall counters are not part of it: they rebuild from new reports.
type State struct {
	// Serial is the last snapshot serial; a restored engine continues
	// above it.
	Serial uint64 `json:"serial"`
	// Members holds each member's verdict and failback state, sorted by
	// name.
	Members []MemberState `json:"members"`
	// Answers holds the last answer of each (database, region), sorted by
	// database then region.
	Answers []AnswerState `json:"answers"`
}

// MemberState is one member's persisted decision state.
type MemberState struct {
	// Name is the member's name.
	Name string `json:"name"`
	// Verdict is the member's quorum verdict.
	Verdict Verdict `json:"verdict"`
	// Since is when Verdict last changed.
	Since time.Time `json:"since,omitzero"`
	// Settled is false while the member serves its failback hold.
	Settled bool `json:"settled"`
	// HealthySince is when the member last became up and in sync.
	HealthySince time.Time `json:"healthy_since,omitzero"`
	// FailStart is, while down, when the failure that brought it down was
	// first observed.
	FailStart time.Time `json:"fail_start,omitzero"`
	// Lag is the last lag seen behind each source region.
	Lag map[string]time.Duration `json:"lag,omitempty"`
}

// AnswerState is the persisted last answer of one database for one client
// region.
type AnswerState struct {
	// Database and Region name the answer.
	Database string `json:"database"`
	Region   string `json:"region"`
	// Members are the members answered, in order.
	Members []string `json:"members,omitempty"`
	// ServFail is true when the answer was SERVFAIL.
	ServFail bool `json:"servfail,omitempty"`
	// AllDown is true when the answer came from when_all_down.
	AllDown bool `json:"all_down,omitempty"`
	// Since is when the answer's first member started being answered.
	Since time.Time `json:"since,omitzero"`
	// LastGood are the members of the last answer that had an eligible
	// member: what when_all_down: last serves.
	LastGood []string `json:"last_good,omitempty"`
}

// Export returns the engine's decision state. The result shares nothing
// with the engine.
func (e *Engine) Export() State {
	s := State{
		Serial:  e.serial,
		Members: make([]MemberState, 0, len(e.members)),
		Answers: make([]AnswerState, 0, len(e.answers)),
	}
	for _, name := range slices.Sorted(maps.Keys(e.members)) {
		m := e.members[name]
		ms := MemberState{
			Name:         name,
			Verdict:      m.verdict,
			Since:        m.since,
			Settled:      m.settled,
			HealthySince: m.healthySince,
			FailStart:    m.failStart,
		}
		if len(m.lag) > 0 {
			ms.Lag = make(map[string]time.Duration, len(m.lag))
			for src, l := range m.lag {
				ms.Lag[src] = l.lag
			}
		}
		s.Members = append(s.Members, ms)
	}
	keys := slices.SortedFunc(maps.Keys(e.answers), func(a, b answerKey) int {
		if a.db != b.db {
			return cmp.Compare(a.db, b.db)
		}
		return cmp.Compare(a.region, b.region)
	})
	for _, k := range keys {
		a := e.answers[k]
		s.Answers = append(s.Answers, AnswerState{
			Database: k.db,
			Region:   k.region,
			Members:  slices.Clone(a.members),
			ServFail: a.servfail,
			AllDown:  a.allDown,
			Since:    a.since,
			LastGood: slices.Clone(a.lastGood),
		})
	}
	return s
}

// Restore loads a state from Export into the engine, typically right after
// New on a restarted node; the next Evaluate then answers as the node did
// before. Members, databases, regions and source regions the config does not
// know are ignored, as are unknown members inside answers. Every vantage of
// a restored member restarts unseen with the member's verdict, so a member
// restored down needs rise passes (and quorum) to come back up. The serial
// never goes backwards.
func (e *Engine) Restore(s State) {
	e.serial = max(e.serial, s.Serial)
	for _, ms := range s.Members {
		m, ok := e.members[ms.Name]
		if !ok {
			continue
		}
		v := ms.Verdict
		if v != Down {
			v = Up
		}
		m.verdict, m.since, m.settled = v, ms.Since, ms.Settled
		m.healthySince, m.failStart = ms.HealthySince, ms.FailStart
		if v == Down {
			m.settled, m.healthySince = false, time.Time{}
		}
		m.lag = map[string]lagSample{}
		for src, l := range ms.Lag {
			if e.regions[src] {
				m.lag[src] = lagSample{lag: l}
			}
		}
		for id, vt := range m.vantages {
			m.vantages[id] = &vantage{agent: vt.agent, region: vt.region, verdict: v}
		}
	}
	for _, as := range s.Answers {
		db, ok := e.cfg.Database(as.Database)
		if !ok || !e.regions[as.Region] {
			continue
		}
		known := func(names []string) []string {
			var out []string
			for _, n := range names {
				if isMemberOf(db, n) && !slices.Contains(out, n) {
					out = append(out, n)
				}
			}
			return out
		}
		st := &answerState{
			servfail: as.ServFail,
			allDown:  as.AllDown,
			since:    as.Since,
			members:  known(as.Members),
			lastGood: known(as.LastGood),
		}
		if len(st.members) > 0 {
			st.first = st.members[0]
		}
		e.answers[answerKey{db.Name, as.Region}] = st
	}
	// The next snapshot is compared with nothing: it bumps the serial.
	e.prev = nil
}
