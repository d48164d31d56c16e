package policy

import (
	"cmp"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/aagtm/aagtm/config"
)

// pendingObs is an Observation reduced to what the engine keeps, copied at
// Observe so the caller may reuse its maps and slices.
type pendingObs struct {
	agent, member string
	seq           uint64
	at            time.Time
	outcome       Outcome
	errText       string
	rtt           time.Duration
	lag           map[string]time.Duration
}

// vantage is one agent's rise/fall state for one member.
type vantage struct {
	agent, region string
	// seen is true once any observation arrived since the vantage was
	// added or restored; lastSeen, lastSeq and lastOutcome are its last.
	seen        bool
	lastSeen    time.Time
	lastSeq     uint64
	lastOutcome Outcome
	// evidence is when its last pass or failure arrived (zero: none since
	// it was added or restored). not_measured rounds do not move it.
	evidence time.Time
	// passes and failures count the current run since the vantage became
	// fresh.
	passes, failures int
	// voting is true once the vantage has seen rise passes or fall
	// failures since it became fresh; verdict is its vote.
	voting  bool
	verdict Verdict
	lastErr string
	// failOutcome is the outcome of its last failed round.
	failOutcome Outcome
	rtt         time.Duration
	// runStart is the time of the first failure of the current run of
	// consecutive failures (zero when the last evidence passed).
	runStart time.Time
	// downFrom is the runStart of the run that turned the vantage down and
	// downAt when it did (zero while it votes up).
	downFrom, downAt time.Time
	// lag holds the vantage's last lag sample per source region, one
	// entry per source (a few: a slice is quicker to go over than a map).
	lag []lagSample
}

// lagSample is one vantage's last lag of a member behind one source region.
type lagSample struct {
	src string
	lag time.Duration
	at  time.Time
}

// setLag records the lag behind src measured at at, unless the vantage has
// a later sample of src.
func (v *vantage) setLag(src string, lag time.Duration, at time.Time) {
	for i := range v.lag {
		if v.lag[i].src == src {
			if !v.lag[i].at.After(at) {
				v.lag[i].lag, v.lag[i].at = lag, at
			}
			return
		}
	}
	v.lag = append(v.lag, lagSample{src: src, lag: lag, at: at})
}

// memberState is the engine's memory of one member.
type memberState struct {
	name, region string
	db           *config.Database

	verdict      Verdict
	since        time.Time
	settled      bool
	healthySince time.Time
	// held is the observed healthy time of the current failback hold;
	// holdMark the last evaluation that added to it (zero: none since the
	// verdict was last kept fail-static).
	held     time.Duration
	holdMark time.Time
	// failStart is, while down, the first failure of the failure run that
	// completed the down quorum: the start of detection.
	failStart time.Time
	// downOutcome is, while down, the dominant outcome of the down votes.
	downOutcome Outcome
	// noFreshSince is the last evaluation at which the quorum decided.
	noFreshSince time.Time
	vantages     map[string]*vantage // by agent ID
	// byAgent holds the same vantages sorted by agent ID: the loops of
	// every evaluation go over it (a slice, not a map to iterate).
	byAgent []*vantage

	// Derived by updateHealth at every Evaluate.
	voting, downVotes int
	failStatic        bool
	// lagBy is the robust lag per source region. It is replaced, never
	// modified: snapshots share it (MemberStatus.LagBySource).
	lagBy    map[string]time.Duration
	lagMax   time.Duration
	lagKnown bool
	lagging  bool
	// inSyncSince is, while lagging, when the lag last fell back under the
	// tolerance (zero while it is over or unknown).
	inSyncSince time.Time
	// tier is the ranking tier the last Evaluate gave the member.
	tier int
}

func newMemberState() *memberState {
	return &memberState{verdict: Up, settled: true}
}

func newVantage(agent, region string) *vantage {
	return &vantage{agent: agent, region: region, verdict: Up}
}

// failureText names the failing checks of a failed round, e.g.
// "ping: i/o timeout; keyspace: READONLY".
func failureText(checks []CheckResult) string {
	if len(checks) == 0 {
		return "no checks ran"
	}
	var parts []string
	for _, c := range checks {
		if v, _ := c.voteOf(); v != voteFail {
			continue
		}
		if c.Error == "" {
			parts = append(parts, c.Check+": failed")
		} else {
			parts = append(parts, c.Check+": "+c.Error)
		}
	}
	return strings.Join(parts, "; ")
}

// comparePending orders observations by (agent, member, seq), then by their
// content, so that even duplicate sequence numbers are applied in an order
// that does not depend on arrival.
func comparePending(a, b pendingObs) int {
	if c := strings.Compare(a.agent, b.agent); c != 0 {
		return c
	}
	if c := strings.Compare(a.member, b.member); c != 0 {
		return c
	}
	if c := cmp.Compare(a.seq, b.seq); c != 0 {
		return c
	}
	if c := a.at.Compare(b.at); c != 0 {
		return c
	}
	if c := strings.Compare(string(a.outcome), string(b.outcome)); c != 0 {
		return c
	}
	if c := strings.Compare(a.errText, b.errText); c != 0 {
		return c
	}
	if c := cmp.Compare(a.rtt, b.rtt); c != 0 {
		return c
	}
	return strings.Compare(lagKey(a.lag), lagKey(b.lag))
}

// lagKey is a canonical text of a lag map, for tie-breaking only.
func lagKey(l map[string]time.Duration) string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(l)) {
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(l[k].String())
		b.WriteByte(';')
	}
	return b.String()
}

// applyPending applies and clears the buffered observations.
func (e *Engine) applyPending() {
	slices.SortFunc(e.pending, comparePending)
	for _, o := range e.pending {
		e.apply(o)
	}
	if cap(e.pending) > 2*e.maxPending {
		e.pending = nil // grown before a Reconfigure lowered the bound
		return
	}
	clear(e.pending)
	e.pending = e.pending[:0]
}

// rise and fall return the configured counts, at least 1.
func (e *Engine) rise() int { return max(e.cfg.Probes.Rise, 1) }
func (e *Engine) fall() int { return max(e.cfg.Probes.Fall, 1) }

// isFresh reports whether something that happened at t still counts at
// now: it is younger than stale_after. At exactly stale_after it is stale.
func (e *Engine) isFresh(t, now time.Time) bool {
	return now.Sub(t) < e.cfg.Probes.StaleAfter
}

// fresh reports whether v's evidence is fresh at now.
func (e *Engine) fresh(v *vantage, now time.Time) bool {
	return !v.evidence.IsZero() && e.isFresh(v.evidence, now)
}

// quorum returns how many down votes out of voting make a member down, and
// whether the quorum can decide at all. majority, any and all decide with
// one voting vantage or more; a numeric quorum N needs N voting vantages.
// When it cannot decide, the last verdict stands (fail-static).
func (e *Engine) quorum(voting int) (need int, decides bool) {
	q := e.cfg.Probes.Quorum
	switch q.Kind {
	case "any":
		need = 1
	case "all":
		need = voting
	case "count":
		need = max(q.Count, 1)
		return need, voting >= need
	default:
		need = voting/2 + 1
	}
	return need, voting > 0
}

// lagQuorum returns which largest sample (1 = the largest) is a member's
// lag when n vantages have a sample: the health quorum over n, at most n.
// With the default majority and n ≥ 3, one vantage alone can neither raise
// nor lower the value.
func (e *Engine) lagQuorum(n int) int {
	need, _ := e.quorum(n)
	return min(max(need, 1), n)
}

// apply runs one observation through its vantage's rise/fall counters and
// records its lag samples.
func (e *Engine) apply(o pendingObs) {
	m, ok := e.members[o.member]
	if !ok {
		return
	}
	v, ok := m.vantages[o.agent]
	if !ok {
		return
	}
	if v.seen && o.seq <= v.lastSeq {
		return
	}
	v.seen, v.lastSeq, v.lastSeen, v.lastOutcome = true, o.seq, o.at, o.outcome
	// Each source region is updated on its own, so map order is moot.
	for src, l := range o.lag {
		if e.regions[src] {
			v.setLag(src, l, o.at)
		}
	}
	vt := outcomeVotes[o.outcome]
	if vt == voteNone {
		return
	}
	if !e.fresh(v, o.at) {
		// The vantage becomes fresh: it votes again only on new evidence.
		v.passes, v.failures, v.voting = 0, 0, false
		v.runStart, v.downFrom, v.downAt = time.Time{}, time.Time{}, time.Time{}
	}
	v.evidence, v.rtt = o.at, o.rtt
	if vt == votePass {
		v.passes++
		v.failures = 0
		v.runStart = time.Time{}
		if v.passes >= e.rise() && (!v.voting || v.verdict == Down) {
			v.voting, v.verdict = true, Up
			v.downFrom, v.downAt = time.Time{}, time.Time{}
		}
		return
	}
	v.failures++
	v.passes = 0
	v.lastErr, v.failOutcome = o.errText, o.outcome
	if v.failures == 1 {
		v.runStart = o.at
	}
	if v.failures >= e.fall() && (!v.voting || v.verdict == Up) {
		v.voting, v.verdict = true, Down
		v.downFrom, v.downAt = v.runStart, o.at
	}
}

// updateHealth derives every member's verdict, lag and failback state at
// now.
func (e *Engine) updateHealth(now time.Time) {
	for _, m := range e.members {
		e.updateMember(m, now)
	}
}

// updateMember derives one member's verdict (quorum of the voting
// vantages, or fail-static), its lag, and its failback hold at now.
func (e *Engine) updateMember(m *memberState, now time.Time) {
	voting := 0
	var downs []*vantage
	for _, v := range m.byAgent {
		if !v.voting || !e.fresh(v, now) {
			continue
		}
		voting++
		if v.verdict == Down {
			downs = append(downs, v)
		}
	}
	m.voting, m.downVotes = voting, len(downs)
	need, decides := e.quorum(voting)
	m.failStatic = !decides
	if decides {
		m.noFreshSince = now
		verdict := Up
		if len(downs) >= need {
			verdict = Down
		}
		if verdict != m.verdict {
			m.verdict, m.since = verdict, now
			m.failStart = time.Time{}
			if verdict == Down {
				m.failStart = quorumRunStart(downs, need)
			}
		}
		m.downOutcome = ""
		if verdict == Down {
			m.downOutcome = dominantOutcome(downs)
		}
	}

	e.updateLag(m, now)
	m.updateLagging(now, time.Duration(e.rise())*e.cfg.Probes.Interval)

	switch {
	case m.verdict == Down:
		m.settled, m.healthySince = false, time.Time{}
		m.held, m.holdMark = 0, time.Time{}
	case m.lagging:
		// The hold restarts; a settled member stays settled (it is ranked
		// as lagging instead).
		m.healthySince = time.Time{}
		m.held, m.holdMark = 0, time.Time{}
	default:
		if m.healthySince.IsZero() {
			m.healthySince = now
		}
		if m.failStatic {
			// Nothing observed: the hold does not advance.
			m.holdMark = time.Time{}
			break
		}
		if !m.settled && !m.holdMark.IsZero() && now.After(m.holdMark) {
			m.held += now.Sub(m.holdMark)
		}
		m.holdMark = now
		if !m.settled && m.held >= m.db.FailbackHold {
			m.settled = true
		}
	}
}

// quorumRunStart returns the start of the failure run that completed the
// quorum: the down votes ordered by when each vantage turned down, the
// need-th one's run start.
func quorumRunStart(downs []*vantage, need int) time.Time {
	slices.SortFunc(downs, func(a, b *vantage) int {
		if c := a.downAt.Compare(b.downAt); c != 0 {
			return c
		}
		return a.downFrom.Compare(b.downFrom)
	})
	return downs[min(max(need, 1), len(downs))-1].downFrom
}

// dominantOutcome returns the most frequent failure outcome among the down
// votes (ties: the first by name).
func dominantOutcome(downs []*vantage) Outcome {
	n := map[Outcome]int{}
	for _, v := range downs {
		n[v.failOutcome]++
	}
	var best Outcome
	for _, o := range slices.Sorted(maps.Keys(n)) {
		if n[o] > n[best] {
			best = o
		}
	}
	return best
}

// updateLag derives the member's lag per source region from the vantages'
// unexpired samples (younger than stale_after): per source, the
// lagQuorum-th largest value.
func (e *Engine) updateLag(m *memberState, now time.Time) {
	srcs := e.lagScratch[:0]
	for _, v := range m.byAgent {
		for _, s := range v.lag {
			if !e.isFresh(s.at, now) {
				continue
			}
			src := s.src
			i := slices.IndexFunc(srcs, func(x sourceLags) bool { return x.src == src })
			if i < 0 {
				i = len(srcs)
				if i < cap(srcs) {
					srcs = srcs[:i+1] // reuses the entry's lags slice
				} else {
					srcs = append(srcs, sourceLags{})
				}
				srcs[i].src, srcs[i].lags = src, srcs[i].lags[:0]
			}
			srcs[i].lags = append(srcs[i].lags, s.lag)
		}
	}
	e.lagScratch = srcs
	m.lagMax, m.lagKnown = 0, false
	same := len(srcs) == len(m.lagBy)
	for i := range srcs {
		s := &srcs[i]
		slices.SortFunc(s.lags, func(a, b time.Duration) int { return cmp.Compare(b, a) })
		s.robust = s.lags[e.lagQuorum(len(s.lags))-1]
		if old, ok := m.lagBy[s.src]; !ok || old != s.robust {
			same = false
		}
		if s.src != m.region && (!m.lagKnown || s.robust > m.lagMax) {
			m.lagMax, m.lagKnown = s.robust, true
		}
	}
	if same {
		return // snapshots may share m.lagBy: it is replaced, never modified
	}
	m.lagBy = nil
	if len(srcs) > 0 {
		m.lagBy = make(map[string]time.Duration, len(srcs))
		for _, s := range srcs {
			m.lagBy[s.src] = s.robust
		}
	}
}

// sourceLags is updateLag's working space for one source region: the
// fresh samples and the robust value over them.
type sourceLags struct {
	src    string
	lags   []time.Duration
	robust time.Duration
}

// updateLagging sets lagging with hysteresis: a member becomes lagging as
// soon as its lag exceeds the tolerance, and stops only once the lag has
// stayed known and within it for settle (rise × interval). Lag measured
// near the tolerance therefore cannot flip answers back and forth every
// round. With no lag known, lagging stands and the settle time restarts.
func (m *memberState) updateLagging(now time.Time, settle time.Duration) {
	switch {
	case !m.lagKnown:
		m.inSyncSince = time.Time{}
	case m.lagMax > m.db.LagTolerance:
		m.lagging, m.inSyncSince = true, time.Time{}
	case !m.lagging:
	case m.inSyncSince.IsZero():
		m.inSyncSince = now
		m.lagging = settle > 0
		if !m.lagging {
			m.inSyncSince = time.Time{}
		}
	case now.Sub(m.inSyncSince) >= settle:
		m.lagging, m.inSyncSince = false, time.Time{}
	}
}

// status returns the member's public status at now.
func (e *Engine) status(m *memberState, drained bool, now time.Time) *MemberStatus {
	s := &MemberStatus{
		// Shared with the engine and other snapshots: lagBy is replaced,
		// never modified.
		LagBySource:  m.lagBy,
		Name:         m.name,
		Database:     m.db.Name,
		Region:       m.region,
		Verdict:      m.verdict,
		Since:        m.since,
		DownOutcome:  m.downOutcome,
		Voting:       m.voting,
		DownVotes:    m.downVotes,
		FailStatic:   m.failStatic,
		Lag:          m.lagMax,
		LagKnown:     m.lagKnown,
		Lagging:      m.lagging,
		Drained:      drained,
		Settled:      m.settled,
		HealthySince: m.healthySince,
		Held:         m.held,
		Vantages:     make([]VantageState, 0, len(m.byAgent)),
	}
	if m.failStatic {
		s.NoFreshSince = m.noFreshSince
	}
	for _, v := range m.byAgent {
		fresh := e.fresh(v, now)
		s.Vantages = append(s.Vantages, VantageState{
			Agent:       v.agent,
			Region:      v.region,
			Verdict:     v.verdict,
			Fresh:       fresh,
			Voting:      fresh && v.voting,
			LastSeen:    v.lastSeen,
			LastSeq:     v.lastSeq,
			LastOutcome: v.lastOutcome,
			Passes:      v.passes,
			Failures:    v.failures,
			LastError:   v.lastErr,
			RTT:         v.rtt,
		})
	}
	return s
}
