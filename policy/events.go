package policy

import (
	"slices"

	"github.com/aagtm/aagtm/config"
)

// event records the change of an answer's first member from prev.first to
// cur.first, classified as a failover, a failback or a change.
func (ev *evaluation) event(db *config.Database, d *decision, prev, cur *answerState, region string) {
	kind, why := ev.classify(db, d, prev, cur)
	ev.record(db, kind, prev.first, cur.first, region, why)
}

// dropped records, in all mode, a failover for each member that left the
// record set because it went down. commit calls it only when the first
// member stayed the same (a change of the first member is an event of its
// own).
func (ev *evaluation) dropped(db *config.Database, d *decision, prev, cur *answerState, region string) {
	if db.Mode != config.ModeAll || d.kind != decideNormal || prev.allDown || forcedMember(db, ev.e.prevOv) != "" {
		return
	}
	for _, n := range prev.members {
		if m := ev.e.members[n]; m != nil && m.verdict == Down && !slices.Contains(cur.members, n) {
			ev.record(db, Failover, n, cur.first, region, n+" "+ev.memberText(n)+"; left the answer")
		}
	}
}

// record appends an event, with its detection time and RPO estimate.
func (ev *evaluation) record(db *config.Database, kind EventKind, from, to, region, why string) {
	e := Event{
		Kind:     kind,
		Database: db.Name,
		Region:   region,
		From:     from,
		To:       to,
		At:       ev.now,
	}
	fm, tm := ev.e.members[from], ev.e.members[to]
	if kind.IsFailover() && fm != nil && fm.verdict == Down && !fm.failStart.IsZero() && !fm.failStart.After(ev.now) {
		e.Detection = ev.now.Sub(fm.failStart)
	}
	if fm != nil && tm != nil {
		if l, ok := tm.lagBy[fm.region]; ok {
			e.RPOEstimate, e.RPOKnown = l, true
		}
	}
	e.Reason = orNone(from) + " → " + orNone(to) + ": " + why
	ev.events = append(ev.events, e)
}

// classify tells why the answer changed. Operator forces are changes; the
// answer entering when_all_down is all_down, leaving it all_down_end;
// leaving a member that is down or lagging is a failover; an operator
// drain or undrain is a change; moving to a member that ranks before the
// old one because its health improved (it came up, caught up, finished
// its failback hold) and is not lagging is a failback; anything else (a
// Ranker's new order, a lagging member ranked first) is a change.
func (ev *evaluation) classify(db *config.Database, d *decision, prev, cur *answerState) (EventKind, string) {
	from, to := prev.first, cur.first
	pf, cf := forcedMember(db, ev.e.prevOv), forcedMember(db, ev.ov)
	allDown := "no member eligible (when_all_down " + string(db.WhenAllDown) + ")"
	fm := ev.e.members[from]
	switch {
	case pf != cf && cf != "":
		return Change, "forced by operator"
	case pf != cf:
		return Change, "operator force on " + pf + " lifted"
	case !prev.allDown && cur.allDown:
		if fm != nil && fm.verdict == Down {
			return AllDown, allDown + ": " + from + " " + ev.memberText(from)
		}
		return AllDown, allDown
	case prev.allDown && !cur.allDown:
		return AllDownEnd, to + " eligible again: " + ev.memberText(to)
	case prev.allDown:
		return Change, allDown + ", answer changed"
	}
	if from != "" && (fm == nil || fm.db.Name != db.Name) {
		return Change, from + " no longer configured"
	}
	if fm != nil && fm.verdict == Down {
		return Failover, from + " " + ev.memberText(from)
	}
	if why, ok := ev.drainChange(from, to); ok {
		return Change, why
	}
	tm := ev.e.members[to]
	switch {
	case fm != nil && fm.lagging:
		return Failover, from + " " + ev.memberText(from)
	case from != "" && to != "" && ranksBefore(db, d.order, to, from) && recovered(tm, ev.ov) && !tm.lagging:
		return Failback, to + " ranks before " + from + " and is " + ev.memberText(to)
	case from != "" && to != "" && ranksBefore(db, d.order, to, from) && tm.lagging:
		return Change, to + " ranks before " + from + " and is " + ev.memberText(to)
	}
	return Change, "ranking changed"
}

// drainChange reports an operator drain or undrain of from or to since the
// last evaluation.
func (ev *evaluation) drainChange(from, to string) (string, bool) {
	for _, n := range []string{from, to} {
		if n == "" {
			continue
		}
		was, is := ev.e.prevOv.Drained[n], ev.ov.Drained[n]
		switch {
		case is && !was:
			return n + " drained by operator", true
		case was && !is:
			return n + " undrained by operator", true
		}
	}
	return "", false
}

// recovered reports whether m's health tier improved since the last
// evaluation (it came up, caught up, or finished its failback hold).
func recovered(m *memberState, ov Overrides) bool {
	return m.tier == tierDown || m.tier > tierOf(m, ov.Drained[m.name])
}

// ranksBefore reports whether member a comes before member b in order.
func ranksBefore(db *config.Database, order []int, a, b string) bool {
	ia, ib := slices.Index(order, memberIndex(db, a)), slices.Index(order, memberIndex(db, b))
	return ia >= 0 && ib >= 0 && ia < ib
}

// forcedMember returns the member ov forces for db, or "" when none (or
// when the forced name is not a member of db).
func forcedMember(db *config.Database, ov Overrides) string {
	if i := memberIndex(db, ov.Forced[db.Name]); i >= 0 {
		return db.Members[i].Name
	}
	return ""
}

// orNone names a member, or "none".
func orNone(name string) string {
	if name == "" {
		return "none"
	}
	return name
}
