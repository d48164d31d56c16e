package policy

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/aagtm/aagtm/config"
)

// answerKey names one precomputed answer: a database and a client region.
type answerKey struct{ db, region string }

// answerState is what the engine remembers of the last answer for a key.
type answerState struct {
	// first is the first answered member ("" for SERVFAIL or none).
	first    string
	servfail bool
	// allDown is true when the answer came from when_all_down.
	allDown bool
	// since is when first started being answered.
	since time.Time
	// members are the answered members.
	members []string
	// lastGood are the members of the last answer that had an eligible
	// (or forced) member: what when_all_down: last serves.
	lastGood []string
}

// decisionKind is how an answer was decided.
type decisionKind uint8

const (
	decideNormal   decisionKind = iota // ranked eligible members
	decideForced                       // operator override
	decideFailOpen                     // when_all_down: all (or last without a last good answer)
	decideLast                         // when_all_down: last
	decideServfail                     // when_all_down: servfail
)

// decision is the outcome of ranking before it becomes an Answer.
type decision struct {
	kind decisionKind
	// order is the region's candidate order (failover: the global order).
	order []int
	// chosen are the members picked, most preferred first, before CNAME
	// filtering.
	chosen []int
	// multi: answer every chosen member's addresses, not only the first's.
	multi bool
	// regionDependent is Answer.RegionDependent.
	regionDependent bool
}

// evaluation is the context of one Evaluate while answers are built.
type evaluation struct {
	e       *Engine
	now     time.Time
	ov      Overrides
	regions []string
	prefs   map[string][]string
	rtt     map[string]map[string]time.Duration
	events  []Event
	// texts memoizes memberText: a member's state does not change during
	// an evaluation, and every region's reason and the member's status
	// describe it.
	texts map[string]string
}

func (e *Engine) newEvaluation(now time.Time, ov Overrides) *evaluation {
	ev := &evaluation{
		e:       e,
		now:     now,
		ov:      ov,
		regions: e.cfg.RegionNames(),
		prefs:   map[string][]string{},
	}
	for _, r := range ev.regions {
		ev.prefs[r] = e.cfg.Preference(r)
	}
	if e.ranker != nil {
		ev.rtt = e.rttView(now)
	}
	return ev
}

// builtDatabase is a database's last answers and the inputs they were
// built from.
type builtDatabase struct {
	answers *HostAnswers
	inputs  []memberInput
}

// memberInput is what a database's answers read of one member: its
// description (verdict, votes, fail-static, lag, drain, failback hold: the
// words of the reasons), its ranking tier and since when it is healthy.
type memberInput struct {
	text         string
	tier         int
	healthySince time.Time
}

// inputs appends the inputs of db's answers to dst: with the overrides and
// the database's last answer states, they decide its answers.
func (ev *evaluation) inputs(db *config.Database, dst []memberInput) []memberInput {
	for i := range db.Members {
		name := db.Members[i].Name
		m := ev.e.members[name]
		dst = append(dst, memberInput{
			text:         ev.memberText(name),
			tier:         tierOf(m, ev.ov.Drained[name]),
			healthySince: m.healthySince,
		})
	}
	return dst
}

// sameOverrides reports whether a and b drain and force the same.
func sameOverrides(a, b Overrides) bool {
	return maps.Equal(a.Drained, b.Drained) && maps.Equal(a.Forced, b.Forced)
}

// database builds every region's answer for db.
func (ev *evaluation) database(db *config.Database) *HostAnswers {
	h := &HostAnswers{
		Database: db.Name,
		Host:     strings.ToLower(db.Host),
		ByRegion: make(map[string]*Answer, len(ev.regions)),
	}
	tiers := make([]int, len(db.Members))
	since := make([]time.Time, len(db.Members))
	for i := range db.Members {
		m := ev.e.members[db.Members[i].Name]
		tiers[i] = tierOf(m, ev.ov.Drained[db.Members[i].Name])
		since[i] = m.healthySince
	}
	forced := memberIndex(db, ev.ov.Forced[db.Name])

	if db.Mode == config.ModeFailover {
		d := ev.decide(db, failoverOrder(db), tiers, since, forced, ev.regions)
		a := ev.commit(db, d, ev.regions, "")
		for _, r := range ev.regions {
			h.ByRegion[r] = a
		}
		return h
	}
	for _, r := range ev.regions {
		d := ev.decide(db, ev.order(db, r), tiers, since, forced, []string{r})
		h.ByRegion[r] = ev.commit(db, d, []string{r}, r)
	}
	return h
}

// order returns the candidate order of db's members for client region r in
// nearest and all modes.
func (ev *evaluation) order(db *config.Database, r string) []int {
	if ev.e.ranker == nil {
		return nearestOrder(db, ev.prefs[r])
	}
	return completeOrder(db, ev.e.ranker(RankInput{Config: ev.e.cfg, Database: db, Region: r, RTT: ev.rtt}))
}

// decide picks the members to answer from a candidate order. regions are
// the client regions the answer is for (every region in failover mode).
func (ev *evaluation) decide(db *config.Database, order, tiers []int, since []time.Time, forced int, regions []string) *decision {
	d := &decision{order: order, regionDependent: db.Mode != config.ModeFailover}
	if forced >= 0 {
		d.kind, d.chosen, d.regionDependent = decideForced, []int{forced}, false
		return d
	}
	ranked := rankEligible(order, tiers, since)
	if len(ranked) > 0 {
		d.kind = decideNormal
		if db.Mode != config.ModeAll {
			d.chosen = ranked[:1]
			return d
		}
		// All mode: the best group of eligible members, each group in
		// ranking order: undrained settled (in sync, then lagging);
		// else undrained recovering (serving their failback hold); else
		// drained settled; else drained recovering. A member serving its
		// hold is not answered beside a settled one: resolvers rotate
		// record sets, so ranking it last would not keep traffic off it.
		d.multi = true
		n, group := 0, tiers[ranked[0]]/2
		for n < len(ranked) && tiers[ranked[n]]/2 == group {
			n++
		}
		d.chosen = ranked[:n]
		return d
	}

	// Nothing is up: when_all_down.
	switch db.WhenAllDown {
	case config.AllDownServfail:
		d.kind, d.regionDependent = decideServfail, false
		return d
	case config.AllDownLast:
		if st := ev.e.prevState(db, regions); st != nil && len(st.lastGood) > 0 {
			d.kind, d.multi = decideLast, true
			d.chosen = make([]int, 0, len(st.lastGood))
			for _, n := range st.lastGood {
				if i := memberIndex(db, n); i >= 0 {
					d.chosen = append(d.chosen, i)
				}
			}
			if len(d.chosen) > 0 {
				return d
			}
		}
	}
	d.kind, d.multi, d.regionDependent = decideFailOpen, true, false
	if db.Mode == config.ModeFailover {
		d.chosen = order
	} else {
		d.chosen = fileOrder(db)
	}
	return d
}

// prevState returns the last answer state of db for the first of regions
// that has one, or nil.
func (e *Engine) prevState(db *config.Database, regions []string) *answerState {
	for _, r := range regions {
		if st, ok := e.answers[answerKey{db.Name, r}]; ok {
			return st
		}
	}
	return nil
}

// commit turns a decision into the Answer for regions, remembers it, and
// records the event when its first member changed. eventRegion is the
// event's Region ("" in failover mode, where one answer serves all).
func (ev *evaluation) commit(db *config.Database, d *decision, regions []string, eventRegion string) *Answer {
	recs, members := records(db, d.chosen, d.multi)
	a := &Answer{
		Records:         recs,
		TTL:             db.TTL,
		ServFail:        d.kind == decideServfail,
		Members:         members,
		RegionDependent: d.regionDependent,
	}
	first := ""
	if len(members) > 0 {
		first = members[0]
	}
	prev := ev.e.prevState(db, regions)
	a.Since = ev.now
	if prev != nil && prev.first == first && prev.servfail == a.ServFail {
		a.Since = prev.since
	}
	st := answerState{
		first:    first,
		servfail: a.ServFail,
		allDown:  d.kind >= decideFailOpen,
		since:    a.Since,
		members:  members,
	}
	switch {
	case d.kind == decideNormal || d.kind == decideForced:
		st.lastGood = members
	case prev != nil:
		st.lastGood = prev.lastGood
	}
	for _, r := range regions {
		c := st
		ev.e.answers[answerKey{db.Name, r}] = &c
	}
	switch {
	case prev == nil:
	case prev.first != first || prev.allDown != st.allDown:
		ev.event(db, d, prev, &st, eventRegion)
	default:
		ev.dropped(db, d, prev, &st, eventRegion)
	}
	a.Reason = ev.reason(db, d, members, a.Since, eventRegion)
	return a
}

// records returns the answer records for the chosen members and the members
// they answer. A first member with a CNAME is answered alone, as exactly
// that CNAME (RFC 1034 §3.6.2: a CNAME owner has no other data). Otherwise
// each member's addresses become A or AAAA records: the first member's
// only, or, when multi, every chosen member's that has no CNAME.
func records(db *config.Database, chosen []int, multi bool) ([]Record, []string) {
	if len(chosen) == 0 {
		return nil, nil
	}
	if f := &db.Members[chosen[0]]; f.CNAME != "" {
		return []Record{{Kind: RecordCNAME, Member: f.Name, Target: f.CNAME}}, []string{f.Name}
	}
	var recs []Record
	var names []string
	for k, i := range chosen {
		if k > 0 && !multi {
			break
		}
		m := &db.Members[i]
		if m.CNAME != "" {
			continue
		}
		names = append(names, m.Name)
		for _, addr := range m.Addresses {
			addr = addr.Unmap()
			kind := RecordAAAA
			if addr.Is4() {
				kind = RecordA
			}
			recs = append(recs, Record{Kind: kind, Member: m.Name, Addr: addr})
		}
	}
	return recs, names
}

// stamp formats a time for reasons.
func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// memberText describes a member's state in a few words, e.g.
// "down: timeout (2/3 vantages)", "up, in sync (lag 12ms)" or
// "up, no fresh vantage since 2026-11-25T19:00:00Z: last verdict kept".
func (ev *evaluation) memberText(name string) string {
	if t, ok := ev.texts[name]; ok {
		return t
	}
	t := ev.describe(name)
	if ev.texts == nil {
		ev.texts = make(map[string]string, len(ev.e.members))
	}
	ev.texts[name] = t
	return t
}

// describe builds memberText's description.
func (ev *evaluation) describe(name string) string {
	m := ev.e.members[name]
	if m == nil {
		return "not configured"
	}
	static := ""
	if m.failStatic {
		static = ev.e.staticText(m)
	}
	if m.verdict == Down {
		head := "down"
		if m.downOutcome != "" {
			head += ": " + string(m.downOutcome)
		}
		if static != "" {
			return head + ", " + static
		}
		return fmt.Sprintf("%s (%d/%d vantages)", head, m.downVotes, m.voting)
	}
	parts := []string{"up"}
	if ev.ov.Drained[name] {
		parts = append(parts, "drained")
	}
	if static != "" {
		parts = append(parts, static)
	}
	switch {
	case !m.lagKnown && m.lagging:
		parts = append(parts, "lagging (lag unknown)")
	case !m.lagKnown && static == "":
		parts = append(parts, "lag unknown")
	case !m.lagKnown:
	case m.lagging:
		parts = append(parts, fmt.Sprintf("lagging (lag %s > %s)", Readable(m.lagMax), m.db.LagTolerance))
	default:
		parts = append(parts, fmt.Sprintf("in sync (lag %s)", Readable(m.lagMax)))
	}
	if !m.settled {
		if m.healthySince.IsZero() {
			parts = append(parts, "recovering (failback hold starts when in sync)")
		} else {
			parts = append(parts, fmt.Sprintf("recovering (failback hold %s of %s observed)", Readable(m.held), m.db.FailbackHold))
		}
	}
	return strings.Join(parts, ", ")
}

// staticText explains a fail-static verdict: "no fresh vantage since T:
// last verdict kept", or, under a numeric quorum, how many vantages vote.
func (e *Engine) staticText(m *memberState) string {
	since := "yet"
	if !m.noFreshSince.IsZero() {
		since = "since " + stamp(m.noFreshSince)
	}
	if m.voting == 0 {
		return "no fresh vantage " + since + ": last verdict kept"
	}
	need, _ := e.quorum(m.voting)
	return fmt.Sprintf("%d voting vantages, quorum %d, %s: last verdict kept", m.voting, need, since)
}

// named describes a member with its region and state:
// "cache-use (us-east) up, in sync (lag 12ms)".
func (ev *evaluation) named(db *config.Database, i int) string {
	m := &db.Members[i]
	return m.Name + " (" + m.Region + ") " + ev.memberText(m.Name)
}

// reason explains an answer in one line: the member(s), why, their lag,
// since when, and why the members ranked before were skipped.
func (ev *evaluation) reason(db *config.Database, d *decision, members []string, since time.Time, region string) string {
	var parts []string
	others := func(skip func(i int) bool) {
		for _, i := range d.order {
			if !skip(i) {
				parts = append(parts, db.Members[i].Name+" "+ev.memberText(db.Members[i].Name))
			}
		}
	}
	answered := func(i int) bool { return slices.Contains(members, db.Members[i].Name) }
	policyText := "when_all_down " + string(db.WhenAllDown)

	switch d.kind {
	case decideForced:
		parts = append(parts, fmt.Sprintf("%s (%s) forced by operator (%s) since %s",
			db.Members[d.chosen[0]].Name, db.Members[d.chosen[0]].Region,
			ev.memberText(db.Members[d.chosen[0]].Name), stamp(since)))
	case decideServfail:
		parts = append(parts, "no member eligible, answering SERVFAIL ("+policyText+") since "+stamp(since))
		others(func(int) bool { return false })
	case decideLast:
		parts = append(parts, "no member eligible, keeping the last good answer "+
			strings.Join(members, ", ")+" ("+policyText+") since "+stamp(since))
		others(func(int) bool { return false })
	case decideFailOpen:
		head := "no member eligible, failing open to every member (" + policyText
		if db.WhenAllDown == config.AllDownLast {
			head += ", no last good answer"
		}
		parts = append(parts, head+") since "+stamp(since))
		others(func(int) bool { return false })
	case decideNormal:
		if db.Mode == config.ModeAll {
			var list []string
			for _, i := range d.chosen {
				t := ev.named(db, i)
				if !answered(i) {
					t += ", not answered beside a CNAME"
				}
				list = append(list, t)
			}
			parts = append(parts, "all eligible for "+region+", nearest first, since "+stamp(since)+": "+
				strings.Join(list, "; "))
			others(func(i int) bool { return slices.Contains(d.chosen, i) })
			break
		}
		first := d.chosen[0]
		eligible := ""
		if d.order[0] != first {
			eligible = " eligible"
		}
		why := "nearest" + eligible + " for " + region
		if db.Mode == config.ModeFailover {
			why = "first" + eligible + " in failover order"
		}
		parts = append(parts, ev.named(db, first)+", "+why+" since "+stamp(since))
		for _, i := range d.order {
			if i == first {
				break
			}
			parts = append(parts, db.Members[i].Name+" "+ev.memberText(db.Members[i].Name))
		}
	}
	return strings.Join(parts, "; ")
}

// answersChanged reports whether any answer's content (records, members,
// SERVFAIL, TTL, region dependence) differs; reasons and Since do not count.
func answersChanged(prev, cur map[string]*HostAnswers) bool {
	if len(prev) != len(cur) {
		return true
	}
	for host, c := range cur {
		if !prev[host].SameAnswers(c) {
			return true
		}
	}
	return false
}

// SameAnswers reports whether h and o give every client region what a DNS
// client would see as the same answer (records, members, TTL, SERVFAIL,
// region dependence); their reasons may differ. Two nils are the same.
func (h *HostAnswers) SameAnswers(o *HostAnswers) bool {
	if h == o {
		return true
	}
	if h == nil || o == nil {
		return false
	}
	if len(h.ByRegion) != len(o.ByRegion) {
		return false
	}
	for r, a := range h.ByRegion {
		b, ok := o.ByRegion[r]
		if !ok || !sameAnswer(a, b) {
			return false
		}
	}
	return true
}

// sameAnswer compares what a DNS client would see of two answers.
func sameAnswer(a, b *Answer) bool {
	return a.ServFail == b.ServFail && a.TTL == b.TTL && a.RegionDependent == b.RegionDependent &&
		slices.Equal(a.Records, b.Records) && slices.Equal(a.Members, b.Members)
}
