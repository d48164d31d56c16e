package policy

import (
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
	passed        bool
	errText       string
	rtt           time.Duration
	lag           map[string]time.Duration
}

// vantage is one agent's rise/fall state for one member.
type vantage struct {
	agent, region string
	verdict       Verdict
	seen          bool
	lastSeen      time.Time
	lastSeq       uint64
	passes        int
	failures      int
	lastErr       string
	rtt           time.Duration
	// runStart is the time of the first failure of the current run of
	// consecutive failures (zero when the last observation passed).
	runStart time.Time
	// downFrom is the runStart of the run that turned the vantage down
	// (zero while it is up).
	downFrom time.Time
}

// lagSample is the last lag seen of a member behind one source region.
type lagSample struct {
	lag time.Duration
	at  time.Time
}

// memberState is the engine's memory of one member.
type memberState struct {
	name, region string
	db           *config.Database

	verdict      Verdict
	since        time.Time
	settled      bool
	healthySince time.Time
	// failStart is, while down, the first failed observation of the failure
	// runs whose down votes made quorum: the start of detection.
	failStart time.Time
	lag       map[string]lagSample
	vantages  map[string]*vantage // by agent ID

	// Derived by updateHealth at every Evaluate.
	fresh, downVotes int
	lagMax           time.Duration
	lagKnown         bool
	lagging          bool
	// inSyncSince is, while lagging, when the lag last fell back under the
	// tolerance (zero while it is over).
	inSyncSince time.Time
	// tier is the ranking tier the last Evaluate gave the member.
	tier int
}

func newMemberState() *memberState {
	return &memberState{verdict: Up, settled: true, lag: map[string]lagSample{}}
}

// failureText names the failing checks of a failed round, e.g.
// "ping: i/o timeout; keyspace: READONLY".
func failureText(checks []CheckResult) string {
	if len(checks) == 0 {
		return "no checks ran"
	}
	var parts []string
	for _, c := range checks {
		if c.OK {
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
	switch {
	case a.seq < b.seq:
		return -1
	case a.seq > b.seq:
		return 1
	}
	if c := a.at.Compare(b.at); c != 0 {
		return c
	}
	if a.passed != b.passed {
		if a.passed {
			return 1
		}
		return -1
	}
	if c := strings.Compare(a.errText, b.errText); c != 0 {
		return c
	}
	if a.rtt != b.rtt {
		if a.rtt < b.rtt {
			return -1
		}
		return 1
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
func (e *Engine) applyPending(now time.Time) {
	slices.SortFunc(e.pending, comparePending)
	for _, o := range e.pending {
		e.apply(o, now)
	}
	clear(e.pending)
	e.pending = e.pending[:0]
}

// rise and fall return the configured counts, at least 1.
func (e *Engine) rise() int { return max(e.cfg.Probes.Rise, 1) }
func (e *Engine) fall() int { return max(e.cfg.Probes.Fall, 1) }

// isFresh reports whether an observation that arrived at t still counts at
// now.
func (e *Engine) isFresh(t, now time.Time) bool {
	return now.Sub(t) <= e.cfg.Probes.StaleAfter
}

// apply runs one observation through its vantage's rise/fall counters and
// records its lag.
func (e *Engine) apply(o pendingObs, now time.Time) {
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
	v.seen, v.lastSeq, v.lastSeen, v.rtt = true, o.seq, o.at, o.rtt
	if o.passed {
		v.passes++
		v.failures = 0
		v.runStart = time.Time{}
		if v.verdict == Down && v.passes >= e.rise() {
			v.verdict, v.downFrom = Up, time.Time{}
		}
	} else {
		v.failures++
		v.passes = 0
		v.lastErr = o.errText
		if v.failures == 1 {
			v.runStart = o.at
		}
		if v.verdict == Up && v.failures >= e.fall() {
			v.verdict, v.downFrom = Down, v.runStart
		}
	}
	if len(o.lag) > 0 && e.isFresh(o.at, now) {
		// Each source region is updated on its own, so map order is moot.
		for src, l := range o.lag {
			if !e.regions[src] {
				continue
			}
			if s, ok := m.lag[src]; ok && s.at.After(o.at) {
				continue
			}
			m.lag[src] = lagSample{lag: l, at: o.at}
		}
	}
}

// updateHealth derives every member's verdict, lag and failback state at
// now.
func (e *Engine) updateHealth(now time.Time) {
	for _, m := range e.members {
		e.updateMember(m, now)
	}
}

// updateMember derives one member's verdict (quorum of fresh vantages, or
// fail-static), its lag, and its failback hold at now.
func (e *Engine) updateMember(m *memberState, now time.Time) {
	fresh, down := 0, 0
	var detect time.Time
	for _, v := range m.vantages {
		if !v.seen || !e.isFresh(v.lastSeen, now) {
			continue
		}
		fresh++
		if v.verdict == Down {
			down++
			if !v.downFrom.IsZero() && (detect.IsZero() || v.downFrom.Before(detect)) {
				detect = v.downFrom
			}
		}
	}
	m.fresh, m.downVotes = fresh, down
	if fresh > 0 {
		verdict := Up
		if down >= max(e.cfg.Probes.Quorum.Need(fresh), 1) {
			verdict = Down
		}
		if verdict != m.verdict {
			m.verdict, m.since = verdict, now
			if verdict == Down {
				m.failStart = detect
			} else {
				m.failStart = time.Time{}
			}
		}
	}

	m.lagMax, m.lagKnown = 0, false
	for src, s := range m.lag {
		if src == m.region {
			continue
		}
		if !m.lagKnown || s.lag > m.lagMax {
			m.lagMax, m.lagKnown = s.lag, true
		}
	}
	m.updateLagging(now, time.Duration(max(e.cfg.Probes.Rise, 1))*e.cfg.Probes.Interval)

	switch {
	case m.verdict == Down:
		m.settled, m.healthySince = false, time.Time{}
	case m.lagging:
		// The hold clock restarts; a settled member stays settled (it is
		// ranked as lagging instead).
		m.healthySince = time.Time{}
	default:
		if m.healthySince.IsZero() {
			m.healthySince = now
		}
		if !m.settled && now.Sub(m.healthySince) >= m.db.FailbackHold {
			m.settled = true
		}
	}
}

// updateLagging sets lagging with hysteresis: a member becomes lagging as
// soon as its lag exceeds the tolerance, and stops only once the lag has
// stayed within it for settle (rise × interval). Lag measured near the
// tolerance therefore cannot flip answers back and forth every round.
func (m *memberState) updateLagging(now time.Time, settle time.Duration) {
	over := m.lagKnown && m.lagMax > m.db.LagTolerance
	switch {
	case over:
		m.lagging, m.inSyncSince = true, time.Time{}
	case !m.lagging:
	case m.inSyncSince.IsZero():
		m.inSyncSince = now
		m.lagging = settle > 0
	case now.Sub(m.inSyncSince) >= settle:
		m.lagging, m.inSyncSince = false, time.Time{}
	}
}

// status returns the member's public status at now.
func (m *memberState) status(cfg *config.Config, drained bool, now time.Time) *MemberStatus {
	s := &MemberStatus{
		Name:         m.name,
		Database:     m.db.Name,
		Region:       m.region,
		Verdict:      m.verdict,
		Since:        m.since,
		Lag:          m.lagMax,
		LagKnown:     m.lagKnown,
		Lagging:      m.lagging,
		Drained:      drained,
		Settled:      m.settled,
		HealthySince: m.healthySince,
		Vantages:     make([]VantageState, 0, len(m.vantages)),
	}
	if len(m.lag) > 0 {
		s.LagBySource = make(map[string]time.Duration, len(m.lag))
		for src, l := range m.lag {
			s.LagBySource[src] = l.lag
		}
	}
	for _, id := range slices.Sorted(maps.Keys(m.vantages)) {
		v := m.vantages[id]
		s.Vantages = append(s.Vantages, VantageState{
			Agent:     v.agent,
			Region:    v.region,
			Verdict:   v.verdict,
			Fresh:     v.seen && now.Sub(v.lastSeen) <= cfg.Probes.StaleAfter,
			LastSeen:  v.lastSeen,
			LastSeq:   v.lastSeq,
			Passes:    v.passes,
			Failures:  v.failures,
			LastError: v.lastErr,
			RTT:       v.rtt,
		})
	}
	return s
}
