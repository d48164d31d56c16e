package policy

import (
	"cmp"
	"maps"
	"slices"
	"strings"
	"time"
)

// State is the engine's decision state, for a node to persist and restore
// across a restart so that it serves its last answers at once instead of
// starting from "everything up": restored right after the Evaluate that
// preceded Export, an engine answers identically and logs no event. It is
// JSON-serialisable; fields added since the first version are optional, so
// older files still load. Per-vantage rise/fall counters are not part of
// it: every vantage restarts unseen and votes again only on new evidence.
type State struct {
	// Serial is the last snapshot serial; a restored engine continues
	// above it.
	Serial uint64 `json:"serial"`
	// Drained and Forced are the overrides the last Evaluate saw, so the
	// first Evaluate after a restore does not take them for new operator
	// actions.
	Drained []string          `json:"drained,omitempty"`
	Forced  map[string]string `json:"forced,omitempty"`
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
	// FailStart is, while down, when the failure run that completed the
	// down quorum started.
	FailStart time.Time `json:"fail_start,omitzero"`
	// DownOutcome is, while down, the dominant outcome of the down votes.
	DownOutcome Outcome `json:"down_outcome,omitempty"`
	// NoFreshSince is the last time the quorum decided the verdict.
	NoFreshSince time.Time `json:"no_fresh_since,omitzero"`
	// Held is the observed healthy time of the current failback hold.
	Held time.Duration `json:"held,omitempty"`
	// Lagging and InSyncSince are the lag hysteresis: lagging, and since
	// when the lag has been back within the tolerance.
	Lagging     bool      `json:"lagging,omitempty"`
	InSyncSince time.Time `json:"in_sync_since,omitzero"`
	// Lag is the member's lag behind each source region (as in
	// MemberStatus.LagBySource), for readers; Restore uses LagSamples.
	Lag map[string]time.Duration `json:"lag,omitempty"`
	// LagSamples are the vantages' lag samples; each still expires
	// stale_after after it was taken.
	LagSamples []LagSample `json:"lag_samples,omitempty"`
}

// LagSample is one vantage's last lag of a member behind a source region.
type LagSample struct {
	// Agent is the vantage; Source the source region.
	Agent  string `json:"agent"`
	Source string `json:"source"`
	// Lag is the lag measured; At when the report carrying it arrived.
	Lag time.Duration `json:"lag"`
	At  time.Time     `json:"at"`
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
		Drained: slices.Sorted(maps.Keys(e.prevOv.Drained)),
		Members: make([]MemberState, 0, len(e.members)),
		Answers: make([]AnswerState, 0, len(e.answers)),
	}
	if len(e.prevOv.Forced) > 0 {
		s.Forced = maps.Clone(e.prevOv.Forced)
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
			DownOutcome:  m.downOutcome,
			NoFreshSince: m.noFreshSince,
			Held:         m.held,
			Lagging:      m.lagging,
			InSyncSince:  m.inSyncSince,
		}
		if len(m.lagBy) > 0 {
			ms.Lag = maps.Clone(m.lagBy)
		}
		for _, v := range m.byAgent { // sorted by agent
			for _, l := range slices.SortedFunc(slices.Values(v.lag), func(a, b lagSample) int { return strings.Compare(a.src, b.src) }) {
				ms.LagSamples = append(ms.LagSamples, LagSample{Agent: v.agent, Source: l.src, Lag: l.lag, At: l.at})
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
// before and logs no event. Members, databases, regions, agents and source
// regions the config does not know are ignored, as are unknown members
// inside answers. Every vantage of a restored member restarts unseen and
// abstains until it has evidence (rise passes or fall failures), so the
// restored verdict stands until a quorum of new evidence moves it; the
// failback hold counts no time until then. The serial never goes
// backwards.
func (e *Engine) Restore(s State) {
	e.built = nil
	e.serial = max(e.serial, s.Serial)
	e.prevOv = Overrides{}
	for _, n := range s.Drained {
		if e.prevOv.Drained == nil {
			e.prevOv.Drained = map[string]bool{}
		}
		e.prevOv.Drained[n] = true
	}
	if len(s.Forced) > 0 {
		e.prevOv.Forced = maps.Clone(s.Forced)
	}
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
		m.downOutcome, m.noFreshSince = ms.DownOutcome, ms.NoFreshSince
		m.held, m.holdMark = ms.Held, time.Time{}
		m.lagging, m.inSyncSince = ms.Lagging, ms.InSyncSince
		if v == Down {
			m.settled, m.healthySince, m.held = false, time.Time{}, 0
		} else {
			m.downOutcome = ""
		}
		for _, vt := range m.byAgent {
			*vt = *newVantage(vt.agent, vt.region) // in place: vantages and byAgent share it
		}
		for _, l := range ms.LagSamples {
			if vt, ok := m.vantages[l.Agent]; ok && e.regions[l.Source] {
				vt.setLag(l.Source, l.Lag, l.At)
			}
		}
	}
	for _, m := range e.members {
		m.tier = tierOf(m, e.prevOv.Drained[m.name])
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
