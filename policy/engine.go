// Package policy decides which members answer each database hostname for each
// client region. It turns probe observations, the clock and operator
// overrides into an immutable Snapshot with explanations and events.
//
// It performs no I/O, starts no goroutines, has no logger and reads no clock:
// time is always passed in. An Engine is not safe for concurrent use; its
// owner serialises calls.
//
// The pipeline of one Evaluate:
//
//  1. buffered observations are applied in (agent, member, seq) order, so the
//     order they arrived in within a tick never matters (health.go);
//  2. per (vantage, member), rise/fall turns observations into a vote; per
//     member, a quorum of the voting vantages turns votes into the member
//     verdict, or the last verdict stands (fail-static); lag and the
//     failback hold are advanced to now;
//  3. per database and client region, members are ranked (rank.go) and the
//     answer, its records and its one-line reason are built (answer.go); a
//     database whose inputs (its members' descriptions, tiers and
//     healthy-since, the overrides) are those of its last answers keeps
//     them;
//  4. answers are compared with the previous ones to derive events and the
//     snapshot serial (events.go).
//
// # The rules
//
// Outcomes. Each check result has a typed outcome; one table (outcomeVotes)
// maps it to a vote: pass passes; timeout, unreachable, auth, loading,
// wrong_reply, unavailable and error fail; not_measured (the agent could not
// run the check: its own overload) is no evidence. An empty or unknown
// outcome falls back on CheckResult.OK. A round fails if any check failed
// (the first failing check names its outcome), is not measured if none
// failed but some were not measured, and passes if all passed. A round with
// no check fails (error).
//
// Sequence. An observation whose Seq is not above the vantage's last one is
// ignored. The ingest guarantees Seq strictly increases per agent, so this
// is only a defence.
//
// Freshness. A vantage is fresh while its last pass or failure is younger
// than stale_after (node clock); at exactly stale_after it is stale.
// not_measured rounds do not keep it fresh.
//
// Votes. A vantage votes only once it has evidence: rise passes or fall
// failures since it became fresh (since it was added, restored, or last
// stale). Until then it abstains, like a stale vantage. A voting vantage
// votes down after fall consecutive failures and up again after rise
// consecutive passes; a single lost probe never moves it.
//
// Quorum. The member verdict is decided over the voting vantages: down when
// at least quorum of them vote down (majority: more than half; any: one;
// all: every one; a number N: N), else up. majority, any and all decide
// with one voting vantage or more; a numeric quorum N decides only with at
// least N voting vantages, so "N must agree" always holds. When the quorum
// cannot decide (no voting vantage, or fewer than N), the last verdict
// stands: the member is fail-static (MemberStatus.FailStatic, NoFreshSince,
// and "no fresh vantage since T: last verdict kept" in reasons).
//
// Detection. A member's failure is timed from the first failure of the
// failure run that completed the down quorum: the down votes ordered by when
// each vantage turned down, the quorum-th one's run.
//
// Lag. Each vantage keeps its last lag sample per source region; a sample
// expires stale_after after it arrived. Per (source, member), the lag is
// the quorum-th largest unexpired sample over the vantages (the health
// quorum over the vantages with a sample, at most their number: with the
// default majority and three vantages, the median), so with three or more
// vantages one vantage alone can neither make a member lagging nor clear
// it. The member's lag is the largest over the other source regions. It is
// lagging as soon as that exceeds lag_tolerance, and stops lagging only
// once its lag has stayed known and within the tolerance for rise ×
// interval; with no lag known, lagging stands. The RPO estimate of an event
// and MemberStatus.LagBySource use these values.
//
// Failback hold. A member that comes back up serves a failback hold: it
// settles after failback_hold of observed health, up and not lagging. Time
// while it is fail-static (nothing observed, a node restart) does not
// count; lagging restarts the hold, and going down starts it over once the
// member is up again. A settled member that lags stays settled: it is
// ranked as lagging instead.
//
// Answers. Members are ranked in tiers: settled in sync, settled lagging,
// recovering (serving the hold; the one healthy longest first), recovering
// and lagging, then drained ones in the same tiers. nearest and failover
// answer the first ranked member. all answers the best group of eligible
// members: the settled undrained ones; if none, the recovering undrained
// ones; then likewise the drained ones. A forced member is answered
// whatever its health. When no member is up, when_all_down decides: all
// (fail open), last (the last good answer) or servfail.
//
// Events. An event is a change of an answer's first member, or the answer
// entering or leaving when_all_down. Operator forces, drains and
// undrains are changes; entering when_all_down is all_down and leaving it
// all_down_end (not a failback); leaving a member that is down or lagging
// is a failover, with its detection time when it is down; moving to a
// member that ranks before the old one because its health improved, and
// that is not lagging, is a failback; anything else is a change. In all
// mode, behind an unchanged first member, each member that leaves the
// record set because it went down is a failover of its own (From it, To
// the first member); members joining the set make no event.
//
// Restart. Export and Restore (state.go) carry the decision state across a
// node restart: verdicts, failback holds, lag hysteresis and samples, the
// last answers and the last overrides. Restored right after the Evaluate
// that preceded Export, the engine answers identically and logs no event.
// Its vantages restart unseen, so the restored verdicts stand until new
// evidence reaches the quorum.
//
// TestModel (model_test.go) checks the engine against a plain transcription
// of these rules; run it longer with
// go test ./policy -run TestModel -rapid.checks=20000.
package policy

import (
	"slices"
	"time"

	"github.com/aagtm/aagtm/config"
)

// Engine holds the health state of every (vantage, member) pair and member,
// and the last answers, between evaluations.
type Engine struct {
	cfg    *config.Config
	ranker Ranker

	// Indexes of cfg, rebuilt by Reconfigure: the configured agent IDs,
	// sorted (the order of MemberStatus.Vantages), and the declared
	// region names.
	agentIDs []string
	regions  map[string]bool

	// members holds every configured member's state, by member name.
	members map[string]*memberState
	// pending are the observations buffered since the last Evaluate, at
	// most maxPending (see Observe).
	pending    []pendingObs
	maxPending int

	// answers holds, per (database, client region), what was answered last.
	answers map[answerKey]*answerState
	// prev is the last snapshot; its answers decide whether Serial moves.
	prev   *Snapshot
	serial uint64
	recent []Event
	// lagScratch is updateLag's working space, reused from member to
	// member.
	lagScratch []sourceLags
	// built holds, per database (as indexed in cfg.Databases), its last
	// answers and what they were built from; nil when they must all be
	// built anew (a new config, restored state, a ranker).
	built []builtDatabase
	// inputs is Evaluate's working space for a database's inputs.
	inputs []memberInput
	// prevOv is the override state the last Evaluate saw, to tell operator
	// changes from health changes.
	prevOv Overrides
}

// New returns an engine for cfg. Every member starts up and settled
// (nothing has been seen failing yet).
func New(cfg *config.Config) *Engine {
	e := &Engine{
		members: map[string]*memberState{},
		answers: map[answerKey]*answerState{},
	}
	e.Reconfigure(cfg)
	return e
}

// SetRanker replaces how members are ordered for a client region in nearest
// and all modes (failover mode always uses the database's global order).
// nil restores the default, PreferenceRanker. It is the seam for ranking by
// measured RTT.
func (e *Engine) SetRanker(r Ranker) { e.ranker, e.built = r, nil }

// Observe records an observation for the next Evaluate. Observations of
// unknown members or agents are ignored. Within one Evaluate, observations
// are applied in (agent, member, seq) order, whatever order they arrived in;
// an observation whose Seq is not above the vantage's last one is ignored.
// The buffer holds at most two observations per vantage (at least
// minPending): when it is full, its observations are applied at once, as
// an Evaluate would, so a node whose evaluations fall behind its reports
// (10,000 members, three agents: 30,000 observations a second) does not
// buffer them without bound. Counting is the same either way; only the
// reordering of one agent's observations of one member is limited to
// those buffered together.
// The vantage's region is the configured agent's, not o.Region. Observe
// copies what it keeps: the caller may reuse o's slices and maps.
func (e *Engine) Observe(o Observation) {
	m, ok := e.members[o.Member]
	if !ok {
		return
	}
	if _, ok := m.vantages[o.Agent]; !ok {
		return
	}
	p := pendingObs{
		agent:   o.Agent,
		member:  o.Member,
		seq:     o.Seq,
		at:      o.Time,
		outcome: o.Outcome(),
		rtt:     o.RTT,
	}
	if outcomeVotes[p.outcome] == voteFail {
		p.errText = failureText(o.Checks)
	}
	if len(o.Lag) > 0 {
		p.lag = make(map[string]time.Duration, len(o.Lag))
		for k, v := range o.Lag {
			p.lag[k] = v
		}
	}
	if len(e.pending) >= e.maxPending {
		e.applyPending()
	}
	e.pending = append(e.pending, p)
}

// minPending is the least number of observations Observe buffers before it
// applies them without an Evaluate.
const minPending = 4096

// Evaluate applies pending observations, advances staleness and failback
// timers to now, and returns the new snapshot with the events it decided.
//
// Overrides name members and databases; names that are not configured are
// ignored. A Forced member that is not a member of that database is
// ignored too.
func (e *Engine) Evaluate(now time.Time, ov Overrides) *Snapshot {
	e.applyPending()
	e.updateHealth(now)

	snap := &Snapshot{
		Generated: now,
		Hosts:     make(map[string]*HostAnswers, len(e.cfg.Databases)),
		Members:   make(map[string]*MemberStatus, len(e.members)),
	}
	ev := e.newEvaluation(now, ov)
	// A database whose inputs are those of its last answers keeps them:
	// the same inputs give the same answers, reasons and no event. A
	// custom ranker reads measured RTTs, which are no such input.
	reuse := len(e.built) == len(e.cfg.Databases) && e.ranker == nil && sameOverrides(ov, e.prevOv)
	if len(e.built) != len(e.cfg.Databases) {
		e.built = make([]builtDatabase, len(e.cfg.Databases))
	}
	for i := range e.cfg.Databases {
		db, b := &e.cfg.Databases[i], &e.built[i]
		e.inputs = ev.inputs(db, e.inputs[:0])
		if !reuse || b.answers == nil || !slices.Equal(e.inputs, b.inputs) {
			b.answers = ev.database(db)
			b.inputs = append(b.inputs[:0], e.inputs...)
		}
		snap.Hosts[b.answers.Host] = b.answers
	}
	snap.Events = ev.events

	if e.prev == nil || answersChanged(e.prev.Hosts, snap.Hosts) {
		e.serial++
	}
	snap.Serial = e.serial

	if len(ev.events) > 0 {
		// A new slice each time: earlier snapshots keep theirs unchanged.
		all := make([]Event, 0, len(e.recent)+len(ev.events))
		all = append(append(all, e.recent...), ev.events...)
		e.recent = all[max(0, len(all)-RecentEvents):]
	}
	snap.Recent = e.recent

	for name, m := range e.members {
		st := e.status(m, ov.Drained[name], now)
		st.Reason = ev.memberText(name)
		snap.Members[name] = st
		m.tier = tierOf(m, ov.Drained[name])
	}

	e.prevOv = copyOverrides(ov)
	e.prev = snap
	return snap
}

// Reconfigure swaps in a new config, keeping the state of members and
// vantages that still exist. New members start up and settled; new vantages
// start unseen and abstain until they have evidence; a removed agent's
// votes and lag samples go with it. Buffered observations are kept and checked against
// the new config when applied. A nil config is treated as empty.
func (e *Engine) Reconfigure(cfg *config.Config) {
	if cfg == nil {
		cfg = &config.Config{}
	}
	e.cfg = cfg
	e.built = nil
	e.agentIDs = make([]string, 0, len(cfg.Agents))
	for _, a := range cfg.Agents {
		e.agentIDs = append(e.agentIDs, a.ID)
	}
	slices.Sort(e.agentIDs)
	e.agentIDs = slices.Compact(e.agentIDs)
	e.regions = make(map[string]bool, len(cfg.Regions))
	for _, r := range cfg.Regions {
		e.regions[r.Name] = true
	}

	members := map[string]*memberState{}
	for i := range cfg.Databases {
		db := &cfg.Databases[i]
		for j := range db.Members {
			mc := &db.Members[j]
			m, ok := e.members[mc.Name]
			if !ok {
				m = newMemberState()
			}
			m.name, m.region, m.db = mc.Name, mc.Region, db
			vs := make(map[string]*vantage, len(cfg.Agents))
			for _, a := range cfg.Agents {
				v, ok := m.vantages[a.ID]
				if !ok {
					v = newVantage(a.ID, a.Region)
				}
				v.region = a.Region
				v.lag = slices.DeleteFunc(v.lag, func(s lagSample) bool { return !e.regions[s.src] })
				vs[a.ID] = v
			}
			m.vantages = vs
			m.byAgent = m.byAgent[:0]
			for _, id := range e.agentIDs {
				m.byAgent = append(m.byAgent, vs[id])
			}
			members[mc.Name] = m
		}
	}
	e.members = members
	e.maxPending = max(minPending, 2*len(members)*len(e.agentIDs))

	answers := map[answerKey]*answerState{}
	for i := range cfg.Databases {
		db := &cfg.Databases[i]
		for _, r := range cfg.Regions {
			k := answerKey{db.Name, r.Name}
			if a, ok := e.answers[k]; ok {
				// New slices: a state's slices may be shared with others.
				keep := func(n string) bool { return !isMemberOf(db, n) }
				a.members = slices.DeleteFunc(slices.Clone(a.members), keep)
				a.lastGood = slices.DeleteFunc(slices.Clone(a.lastGood), keep)
				answers[k] = a
			}
		}
	}
	e.answers = answers
}

// isMemberOf reports whether name is a member of db.
func isMemberOf(db *config.Database, name string) bool {
	return memberIndex(db, name) >= 0
}

// memberIndex returns the index of the member named name in db, or -1.
func memberIndex(db *config.Database, name string) int {
	for i := range db.Members {
		if db.Members[i].Name == name {
			return i
		}
	}
	return -1
}

// copyOverrides returns a deep copy of ov, so a caller mutating its maps
// after Evaluate cannot change what the engine remembers.
func copyOverrides(ov Overrides) Overrides {
	out := Overrides{}
	if len(ov.Drained) > 0 {
		out.Drained = make(map[string]bool, len(ov.Drained))
		for k, v := range ov.Drained {
			if v {
				out.Drained[k] = true
			}
		}
	}
	if len(ov.Forced) > 0 {
		out.Forced = make(map[string]string, len(ov.Forced))
		for k, v := range ov.Forced {
			out.Forced[k] = v
		}
	}
	return out
}
