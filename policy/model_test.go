package policy

import (
	"cmp"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/aagtm/aagtm/config"
	"pgregory.net/rapid"
)

// TestModel runs the engine in lockstep with model, a small and plain
// transcription of the written rules (the package doc, README "Health,
// failover and failback"), through random probe rounds (pass, fail with a
// typed outcome, not_measured, lag), silences, replayed sequence numbers,
// drains and forces, restarts (Export → JSON → New → Restore) and reloads
// (an agent added or removed), comparing at every step each member's
// verdict, lagging, lag per source, settled, observed hold time and vote
// counts, every region's answer, and the events.
//
// By default it runs rapid's 100 cases (a few seconds). For a longer,
// fuzz-style run:
//
//	go test ./policy -run TestModel -rapid.checks=20000
func TestModel(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		cfg := drawConfig(t, 6*time.Second)
		extra := config.Agent{ID: "us-east-2", Region: "us-east"}

		e := New(cfg)
		m := newModel(cfg)
		now := t0
		ov := Overrides{}
		seq := map[string]uint64{}
		prev := e.Evaluate(now, ov)
		m.evaluate(now, ov)
		compareModel(t, "start", prev, m)

		for step := range rapid.IntRange(1, 40).Draw(t, "steps") {
			name := fmt.Sprintf("step %d", step)
			switch rapid.IntRange(0, 15).Draw(t, "action") {
			case 0, 2: // restart: the restored engine answers identically at once
				raw, err := json.Marshal(e.Export())
				if err != nil {
					t.Fatal(err)
				}
				var st State
				if err := json.Unmarshal(raw, &st); err != nil {
					t.Fatal(err)
				}
				e = New(cfg)
				e.Restore(st)
				m.restart()
				if rapid.Bool().Draw(t, "check_restart") {
					s := e.Evaluate(now, ov)
					m.evaluate(now, ov)
					compareModel(t, name+" restart", s, m)
					if len(s.Events) != 0 || answersChanged(prev.Hosts, s.Hosts) {
						t.Fatalf("%s: restart changed answers or logged %+v", name, s.Events)
					}
					prev = s
					continue
				}
				// Else the restarted engine's first evaluation comes with
				// new reports and overrides.
			case 1: // reload: add or remove an agent
				next := *cfg
				if _, ok := cfg.Agent(extra.ID); ok {
					next.Agents = slices.DeleteFunc(slices.Clone(cfg.Agents), func(a config.Agent) bool { return a.ID == extra.ID })
				} else {
					next.Agents = append(slices.Clone(cfg.Agents), extra)
				}
				cfg = &next
				e.Reconfigure(cfg)
				m.reconfigure(cfg)
			}

			now = now.Add(time.Duration(rapid.SampledFrom([]int{0, 300, 1000, 1000, 1000, 1500, 3000, 4000}).Draw(t, "advance_ms")) * time.Millisecond)
			for _, a := range cfg.Agents {
				if rapid.IntRange(0, 5).Draw(t, "silent") == 0 {
					continue
				}
				replay := seq[a.ID] > 0 && rapid.IntRange(0, 9).Draw(t, "replay") == 0
				if !replay {
					seq[a.ID]++
				}
				for _, mem := range []string{use, euw, aps} {
					o := Observation{Agent: a.ID, Region: a.Region, Member: mem, Seq: seq[a.ID], Time: now, RTT: time.Millisecond}
					out := rapid.SampledFrom([]Outcome{OutcomePass, OutcomePass, OutcomePass, OutcomeTimeout, OutcomeLoading, OutcomeNotMeasured}).Draw(t, "outcome")
					o.Checks = []CheckResult{{Check: "ping", Outcome: out, OK: out == OutcomePass}}
					if rapid.Bool().Draw(t, "has_lag") {
						o.Lag = map[string]time.Duration{}
						for _, src := range regions {
							if rapid.Bool().Draw(t, "lag_src") {
								o.Lag[src] = time.Duration(rapid.SampledFrom([]int{0, 100, 400, 600, 900}).Draw(t, "lag_ms")) * time.Millisecond
							}
						}
					}
					e.Observe(o)
					m.observe(o)
				}
			}
			if rapid.IntRange(0, 2).Draw(t, "new_overrides") == 0 {
				ov = Overrides{Drained: map[string]bool{}, Forced: map[string]string{}}
				for _, mem := range []string{use, euw, aps} {
					if rapid.IntRange(0, 4).Draw(t, "drain") == 0 {
						ov.Drained[mem] = true
					}
				}
				if rapid.IntRange(0, 5).Draw(t, "force") == 0 {
					ov.Forced["cache"] = rapid.SampledFrom([]string{use, euw, aps, "cache-gone"}).Draw(t, "forced")
				}
			}
			s := e.Evaluate(now, ov)
			m.evaluate(now, ov)
			compareModel(t, name, s, m)
			prev = s
		}
	})
}

// compareModel fails t when the engine's snapshot and the model disagree.
func compareModel(t *rapid.T, step string, s *Snapshot, m *model) {
	for _, name := range []string{use, euw, aps} {
		got, want := s.Members[name], m.members[name]
		lagBy := want.lagBy
		if len(lagBy) == 0 {
			lagBy = nil
		}
		if got.Verdict != want.verdict || got.Lagging != want.lagging || got.Settled != want.settled ||
			got.Voting != want.voting || got.DownVotes != want.downVotes || got.FailStatic != want.failStatic ||
			got.Held != want.held || !maps.Equal(got.LagBySource, lagBy) {
			t.Fatalf("%s: %s: engine verdict %s lagging %v settled %v votes %d/%d static %v; model %s %v %v %d/%d %v\n%+v",
				step, name, got.Verdict, got.Lagging, got.Settled, got.DownVotes, got.Voting, got.FailStatic,
				want.verdict, want.lagging, want.settled, want.downVotes, want.voting, want.failStatic, got)
		}
	}
	for _, r := range regions {
		a, _ := s.Lookup(host, r)
		want := m.answers[r]
		if !slices.Equal(a.Members, want.members) || a.ServFail != want.servfail {
			t.Fatalf("%s: %s: engine answers %v (servfail %v), model %v (servfail %v)\n%s",
				step, r, a.Members, a.ServFail, want.members, want.servfail, a.Reason)
		}
	}
	type ev struct {
		Kind             EventKind
		Region, From, To string
		Detection        time.Duration
		RPOEstimate      time.Duration
		RPOKnown         bool
	}
	var got []ev
	for _, e := range s.Events {
		got = append(got, ev{e.Kind, e.Region, e.From, e.To, e.Detection, e.RPOEstimate, e.RPOKnown})
	}
	var want []ev
	for _, e := range m.events {
		want = append(want, ev{e.Kind, e.Region, e.From, e.To, e.Detection, e.RPOEstimate, e.RPOKnown})
	}
	if !slices.Equal(got, want) {
		t.Fatalf("%s: events\nengine %+v\nmodel  %+v\n%+v", step, got, want, s.Events)
	}
}

// model is the written rules, transcribed plainly for the test database
// (three members, one per region, no CNAME).
type model struct {
	cfg     *config.Config
	members map[string]*mMember
	answers map[string]*mAnswer // by client region
	events  []Event
	prevOv  Overrides
}

type mMember struct {
	name, region string
	verdict      Verdict
	failStart    time.Time
	vantages     map[string]*mVantage
	voting       int
	downVotes    int
	failStatic   bool
	lagBy        map[string]time.Duration
	lagging      bool
	inSyncSince  time.Time
	settled      bool
	healthySince time.Time
	held         time.Duration
	holdMark     time.Time
	tier         int // the last evaluation's tierOf, for failback
}

type mVantage struct {
	seen     bool
	lastSeq  uint64
	evidence time.Time // zero: none since added, restored or stale
	// run is the evidence since the vantage last became fresh, oldest
	// first, with times.
	run     []mEvidence
	voting  bool
	down    bool
	downRun int // index in run of the first failure of the run that turned it down
	downAt  time.Time
	lag     map[string]mSample
}

type mEvidence struct {
	pass bool
	at   time.Time
}

type mSample struct {
	lag time.Duration
	at  time.Time
}

type mAnswer struct {
	members  []string
	servfail bool
	allDown  bool
	first    string
	lastGood []string
}

func newModel(cfg *config.Config) *model {
	m := &model{members: map[string]*mMember{}}
	for _, mc := range cfg.Databases[0].Members {
		m.members[mc.Name] = &mMember{name: mc.Name, region: mc.Region, verdict: Up, settled: true, vantages: map[string]*mVantage{}}
	}
	m.reconfigure(cfg)
	return m
}

func (m *model) reconfigure(cfg *config.Config) {
	m.cfg = cfg
	for _, mm := range m.members {
		vs := map[string]*mVantage{}
		for _, a := range cfg.Agents {
			if v, ok := mm.vantages[a.ID]; ok {
				vs[a.ID] = v
			} else {
				vs[a.ID] = &mVantage{lag: map[string]mSample{}}
			}
		}
		mm.vantages = vs
	}
}

// restart: every vantage restarts unseen (its lag samples kept); the hold
// has nothing observed yet; everything else is persisted.
func (m *model) restart() {
	for _, mm := range m.members {
		for id, v := range mm.vantages {
			mm.vantages[id] = &mVantage{lag: v.lag}
		}
		mm.holdMark = time.Time{}
	}
}

func (m *model) stale() time.Duration { return m.cfg.Probes.StaleAfter }

// need is the quorum: how many down votes of n voting vantages, and
// whether n voting vantages can decide at all.
func (m *model) need(n int) (int, bool) {
	switch q := m.cfg.Probes.Quorum; q.Kind {
	case "any":
		return 1, n >= 1
	case "all":
		return n, n >= 1
	case "count":
		return q.Count, n >= q.Count
	default:
		return n/2 + 1, n >= 1
	}
}

func (m *model) observe(o Observation) {
	mm := m.members[o.Member]
	v := mm.vantages[o.Agent]
	// A sequence number not above the last one is ignored.
	if v.seen && o.Seq <= v.lastSeq {
		return
	}
	v.seen, v.lastSeq = true, o.Seq
	for src, l := range o.Lag {
		v.lag[src] = mSample{l, o.Time}
	}
	out := o.Checks[0].Outcome
	if out == OutcomeNotMeasured {
		return // no evidence
	}
	// A vantage whose last evidence is stale_after old starts over.
	if v.evidence.IsZero() || o.Time.Sub(v.evidence) >= m.stale() {
		*v = mVantage{seen: true, lastSeq: o.Seq, lag: v.lag}
	}
	v.evidence = o.Time
	v.run = append(v.run, mEvidence{out == OutcomePass, o.Time})
	// Count the trailing run of equal evidence.
	n := 0
	for i := len(v.run) - 1; i >= 0 && v.run[i].pass == v.run[len(v.run)-1].pass; i-- {
		n++
	}
	last := v.run[len(v.run)-1]
	switch {
	case last.pass && n >= max(m.cfg.Probes.Rise, 1) && (!v.voting || v.down):
		v.voting, v.down = true, false
	case !last.pass && n >= max(m.cfg.Probes.Fall, 1) && (!v.voting || !v.down):
		v.voting, v.down = true, true
		v.downRun, v.downAt = len(v.run)-n, last.at
	}
}

func (m *model) evaluate(now time.Time, ov Overrides) {
	db := &m.cfg.Databases[0]
	settle := time.Duration(max(m.cfg.Probes.Rise, 1)) * m.cfg.Probes.Interval
	for _, mm := range m.members {
		// Votes: voting vantages whose evidence is younger than stale_after.
		var downs []*mVantage
		mm.voting = 0
		for _, v := range mm.vantages {
			if v.voting && now.Sub(v.evidence) < m.stale() {
				mm.voting++
				if v.down {
					downs = append(downs, v)
				}
			}
		}
		mm.downVotes = len(downs)
		need, decides := m.need(mm.voting)
		mm.failStatic = !decides
		if decides {
			verdict := Up
			if len(downs) >= need {
				verdict = Down
			}
			if verdict == Down && mm.verdict == Up {
				// Detection starts at the run that completed the quorum.
				slices.SortFunc(downs, func(a, b *mVantage) int {
					return cmp.Or(a.downAt.Compare(b.downAt), a.run[a.downRun].at.Compare(b.run[b.downRun].at))
				})
				d := downs[need-1]
				mm.failStart = d.run[d.downRun].at
			}
			mm.verdict = verdict
		}
		// Lag: per source, the quorum-th largest unexpired sample.
		mm.lagBy = map[string]time.Duration{}
		known, lagMax := false, time.Duration(0)
		for _, src := range regions {
			var ls []time.Duration
			for _, v := range mm.vantages {
				if s, ok := v.lag[src]; ok && now.Sub(s.at) < m.stale() {
					ls = append(ls, s.lag)
				}
			}
			if len(ls) == 0 {
				continue
			}
			slices.Sort(ls)
			slices.Reverse(ls)
			q, _ := m.need(len(ls))
			l := ls[min(max(q, 1), len(ls))-1]
			mm.lagBy[src] = l
			if src != mm.region {
				known, lagMax = true, max(lagMax, l)
			}
		}
		switch {
		case !known:
			mm.inSyncSince = time.Time{}
		case lagMax > db.LagTolerance:
			mm.lagging, mm.inSyncSince = true, time.Time{}
		case !mm.lagging:
		case mm.inSyncSince.IsZero():
			mm.inSyncSince = now
		case now.Sub(mm.inSyncSince) >= settle:
			mm.lagging, mm.inSyncSince = false, time.Time{}
		}
		// Failback hold: observed time up and in sync.
		switch {
		case mm.verdict == Down:
			mm.settled, mm.healthySince, mm.held, mm.holdMark = false, time.Time{}, 0, time.Time{}
		case mm.lagging:
			mm.healthySince, mm.held, mm.holdMark = time.Time{}, 0, time.Time{}
		default:
			if mm.healthySince.IsZero() {
				mm.healthySince = now
			}
			if mm.failStatic {
				mm.holdMark = time.Time{}
				break
			}
			if !mm.settled && !mm.holdMark.IsZero() && now.After(mm.holdMark) {
				mm.held += now.Sub(mm.holdMark)
			}
			mm.holdMark = now
			if mm.held >= db.FailbackHold {
				mm.settled = true
			}
		}
	}

	m.events = nil
	prefs := map[string][]string{
		"ap-south": {aps, euw, use},
		"eu-west":  {euw, use, aps},
		"us-east":  {use, euw, aps},
	}
	forced := ""
	if f := ov.Forced["cache"]; m.members[f] != nil {
		forced = f
	}
	prevForced := ""
	if f := m.prevOv.Forced["cache"]; m.members[f] != nil {
		prevForced = f
	}
	answers := map[string]*mAnswer{}
	for _, r := range regions {
		order := prefs[r]
		if db.Mode == config.ModeFailover {
			order = []string{use, euw, aps}
			if len(db.Order) > 0 {
				order = []string{aps, use, euw}
			}
		}
		prev := m.answers[r]
		a := &mAnswer{}
		// Eligible: up. Ranked by drained, recovering (unsettled), lagging,
		// then for recovering ones the one healthy longest, then order.
		var up []string
		for _, n := range order {
			if m.members[n].verdict == Up {
				up = append(up, n)
			}
		}
		slices.SortStableFunc(up, func(x, y string) int {
			a, b := m.members[x], m.members[y]
			if c := cmp.Or(cmpBool(ov.Drained[x], ov.Drained[y]), cmpBool(!a.settled, !b.settled), cmpBool(a.lagging, b.lagging)); c != 0 {
				return c
			}
			if !a.settled && !a.lagging {
				return a.healthySince.Compare(b.healthySince)
			}
			return 0
		})
		switch {
		case forced != "":
			a.members = []string{forced}
		case len(up) > 0 && db.Mode == config.ModeAll:
			group := func(n string) [2]bool { return [2]bool{ov.Drained[n], !m.members[n].settled} }
			for _, n := range up {
				if group(n) == group(up[0]) {
					a.members = append(a.members, n)
				}
			}
		case len(up) > 0:
			a.members = up[:1]
		case db.WhenAllDown == config.AllDownServfail:
			a.allDown, a.servfail = true, true
		case db.WhenAllDown == config.AllDownLast && prev != nil && len(prev.lastGood) > 0:
			a.allDown, a.members = true, prev.lastGood
		case db.Mode == config.ModeFailover:
			a.allDown, a.members = true, order
		default:
			a.allDown, a.members = true, []string{use, euw, aps}
		}
		if len(a.members) > 0 {
			a.first = a.members[0]
		}
		switch {
		case !a.allDown:
			a.lastGood = a.members
		case prev != nil:
			a.lastGood = prev.lastGood
		}
		answers[r] = a
		if prev == nil {
			continue
		}
		if prev.first == a.first && prev.allDown == a.allDown {
			// All mode: a member that left the record set because it went
			// down is a failover of its own.
			if db.Mode == config.ModeAll && forced == "" && prevForced == "" && !a.allDown && !prev.allDown {
				for _, n := range prev.members {
					if m.members[n].verdict == Down && !slices.Contains(a.members, n) {
						m.events = append(m.events, m.failover(now, r, n, a.first))
					}
				}
			}
			continue
		}
		region := r
		if db.Mode == config.ModeFailover {
			if r != regions[0] {
				continue // one answer for every region: one event
			}
			region = ""
		}
		m.events = append(m.events, m.event(now, region, order, prev, a, prevForced, forced, ov))
	}
	m.answers = answers
	for _, mm := range m.members {
		mm.tier = m.tierOf(mm, ov)
	}
	m.prevOv = ov
}

// tierOf ranks a member's health for failback: -1 down, then in sync,
// lagging, recovering, recovering and lagging; drained ones after.
func (m *model) tierOf(mm *mMember, ov Overrides) int {
	if mm.verdict == Down {
		return -1
	}
	t := 0
	if mm.lagging {
		t++
	}
	if !mm.settled {
		t += 2
	}
	if ov.Drained[mm.name] {
		t += 4
	}
	return t
}

func (m *model) event(now time.Time, region string, order []string, prev, cur *mAnswer, prevForced, forced string, ov Overrides) Event {
	e := Event{Region: region, From: prev.first, To: cur.first}
	fm, tm := m.members[prev.first], m.members[cur.first]
	drainChanged := func(n string) bool { return n != "" && m.prevOv.Drained[n] != ov.Drained[n] }
	before := func(a, b string) bool { return slices.Index(order, a) < slices.Index(order, b) }
	switch {
	case prevForced != forced:
		e.Kind = Change
	case !prev.allDown && cur.allDown:
		e.Kind = AllDown
	case prev.allDown && !cur.allDown:
		e.Kind = AllDownEnd
	case prev.allDown:
		e.Kind = Change
	case fm.verdict == Down:
		e.Kind = Failover
	case drainChanged(e.From) || drainChanged(e.To):
		e.Kind = Change
	case fm.lagging:
		e.Kind = Failover
	case before(e.To, e.From) && (tm.tier == -1 || tm.tier > m.tierOf(tm, ov)) && !tm.lagging:
		e.Kind = Failback
	default:
		e.Kind = Change
	}
	if (e.Kind == Failover || e.Kind == AllDown) && fm != nil && fm.verdict == Down && !fm.failStart.IsZero() && !fm.failStart.After(now) {
		e.Detection = now.Sub(fm.failStart)
	}
	if fm != nil && tm != nil {
		if l, ok := tm.lagBy[fm.region]; ok {
			e.RPOEstimate, e.RPOKnown = l, true
		}
	}
	return e
}

// failover is the event of the answer leaving the down member from for to.
func (m *model) failover(now time.Time, region, from, to string) Event {
	e := Event{Kind: Failover, Region: region, From: from, To: to}
	fm, tm := m.members[from], m.members[to]
	if !fm.failStart.IsZero() && !fm.failStart.After(now) {
		e.Detection = now.Sub(fm.failStart)
	}
	if l, ok := tm.lagBy[fm.region]; ok {
		e.RPOEstimate, e.RPOKnown = l, true
	}
	return e
}

func cmpBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	}
	return -1
}
