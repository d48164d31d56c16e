package admin

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/aagtm/aagtm/policy"
)

// RenderedEvents is how many recent events RenderStatus prints.
const RenderedEvents = 10

// RenderStatus writes st as tables for a terminal: a header line, the
// members (vantages as up/down/abstaining counts of agents, the down
// outcome, lag, the smallest fresh RTT, flags), the answers per database and client region, the
// agents' report connections, and the most recent events, newest first. JSON output is the caller's job.
func RenderStatus(w io.Writer, st *Status) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	p := func(format string, args ...any) { fmt.Fprintf(tw, format, args...) }

	ready := "ready"
	if !st.Ready {
		ready = "NOT READY"
	}
	p("node %s\tserial %d\tgenerated %s\tconfig %s\t%s\n", st.Node, st.Serial, fmtTime(st.Generated), orDash(st.ConfigHash), ready)
	if ov := overridesLine(st.Overrides); ov != "" {
		p("overrides: %s\n", ov)
	}
	for _, l := range stateLines(st.State) {
		p("%s\n", l)
	}
	for _, ps := range st.Peers {
		if ps.LastError != "" {
			p("OVERRIDE EXCHANGE WITH %s FAILING (%d failures, last success %s): %s\n", ps.Node, ps.Failures, fmtTime(ps.LastExchange), ps.LastError)
		}
	}
	if len(st.Overrides.Records) > 0 {
		p("\nOVERRIDE\tTAKEN BY\tWHO\tWHEN\tEXPIRES\tNODES\tREASON\n")
		for _, r := range st.Overrides.Records {
			what := r.Kind + " " + r.Target
			if r.Member != "" {
				what += "=" + r.Member
			}
			expires := "never"
			if !r.Expires.IsZero() {
				expires = fmtTime(r.Expires)
			}
			p("%s\t%s\t%s\t%s\t%s\t%s\t%s\n", what, r.Node, r.Who, fmtTime(r.At), expires, missingText(r), orDash(r.Reason))
		}
	}

	p("\nMEMBER\tDATABASE\tREGION\tVERDICT\tVANTAGES\tLAG\tRTT\tFLAGS\n")
	for _, m := range st.Members {
		up, down, abstain := m.VantageCounts()
		verdict := orDefault(m.Verdict, "?")
		if m.Verdict == "down" && m.DownOutcome != "" {
			verdict += ":" + m.DownOutcome // one token: scripts split rows on spaces
		}
		lag := "-"
		if m.LagKnown {
			lag = fmtDur(fromSeconds(m.LagSeconds))
		}
		rtt := "-"
		if d, ok := m.MinRTT(); ok {
			rtt = fmtDur(d)
		}
		p("%s\t%s\t%s\t%s\t%d/%d/%d\t%s\t%s\t%s\n", m.Name, m.Database, m.Region, verdict,
			up, down, abstain, lag, rtt, memberFlags(m))
	}
	if len(st.Members) == 0 {
		p("(no members evaluated yet)\n")
	}

	p("\nDATABASE\tREGION\tANSWER\tREASON\n")
	for _, a := range collapseAnswers(st.Answers) {
		p("%s\t%s\t%s\t%s\n", a.Database, a.Region, answerCell(a), a.Reason)
	}
	if len(st.Answers) == 0 {
		p("(no answers yet)\n")
	}

	if len(st.Agents) > 0 {
		p("\nAGENT\tREGION\tCONNECTION\tLAST REPORT\tBOOT/SEQ\tACCEPTED\tREFUSED\tDROPPED\tLAST REFUSAL\n")
		for _, a := range st.Agents {
			conn := "disconnected"
			if a.Connected {
				conn = fmt.Sprintf("connected since %s from %s", fmtTime(a.StreamSince), orDash(a.Remote))
				if a.Streams > 1 {
					conn += fmt.Sprintf(" (%d streams)", a.Streams)
				}
			}
			bootSeq := "-"
			if a.BootID != "" || a.LastSeq > 0 {
				bootSeq = fmt.Sprintf("%s/%d", orDash(a.BootID), a.LastSeq)
			}
			p("%s\t%s\t%s\t%s\t%s\t%d\t%d\t%d\t%s\n", a.ID, a.Region, conn, fmtTime(a.LastSeen), bootSeq,
				a.Accepted, a.Refused, a.Dropped, orDash(a.LastRefusal))
		}
	}

	if len(st.Events) > 0 {
		p("\nAT\tKIND\tDATABASE\tREGION\tCHANGE\tDETECTION\tRPO\tREASON\n")
		n := 0
		for i := len(st.Events) - 1; i >= 0 && n < RenderedEvents; i, n = i-1, n+1 {
			e := st.Events[i]
			det, rpo := "-", "-"
			if e.DetectionSeconds > 0 {
				det = fmtDur(fromSeconds(e.DetectionSeconds))
			}
			if e.RPOKnown {
				rpo = fmtDur(fromSeconds(e.RPOEstimateSeconds))
			}
			p("%s\t%s\t%s\t%s\t%s -> %s\t%s\t%s\t%s\n", fmtTime(e.At), e.Kind, e.Database, orDash(e.Region),
				orDefault(e.From, "(none)"), orDefault(e.To, "(none)"), det, rpo, e.Reason)
		}
	}
	return tw.Flush()
}

// RenderResults writes one line per node of a FanOut: ok with the time it
// took, or the error.
func RenderResults(w io.Writer, results []NodeResult) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, r := range results {
		if r.Err != nil {
			fmt.Fprintf(tw, "%s\t%s\tFAILED\t%v\n", r.Node, r.URL, r.Err)
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\tok\t%s\n", r.Node, r.URL, fmtDur(r.Elapsed))
	}
	return tw.Flush()
}

func memberFlags(m MemberStatus) string {
	var f []string
	if m.Drained {
		f = append(f, "drained")
	}
	if m.Forced {
		f = append(f, "forced")
	}
	if m.Lagging {
		f = append(f, "lagging")
	}
	if m.Verdict == "up" && !m.Settled {
		f = append(f, "holding")
	}
	if m.FailStatic {
		// No vantage decides: the verdict shown is the last one kept.
		if m.NoFreshSince.IsZero() {
			f = append(f, "no-fresh-vantage")
		} else {
			f = append(f, "no-fresh-vantage-since-"+fmtTime(m.NoFreshSince))
		}
	}
	if len(f) == 0 {
		return "-"
	}
	return strings.Join(f, ",")
}

// collapseAnswers folds a database whose answers are the same for every
// region (failover mode, forced, all down) into one row with region "*".
func collapseAnswers(in []AnswerStatus) []AnswerStatus {
	var out []AnswerStatus
	for i := 0; i < len(in); {
		j := i
		for j < len(in) && in[j].Database == in[i].Database {
			j++
		}
		group := in[i:j]
		same := len(group) > 1
		for _, a := range group {
			if a.RegionDependent || a.ServFail != group[0].ServFail || !slices.Equal(a.Members, group[0].Members) {
				same = false
				break
			}
		}
		if same {
			one := group[0]
			one.Region = "*"
			out = append(out, one)
		} else {
			out = append(out, group...)
		}
		i = j
	}
	return out
}

func answerCell(a AnswerStatus) string {
	if a.ServFail {
		return "SERVFAIL"
	}
	if len(a.Members) == 0 {
		return "-"
	}
	return strings.Join(a.Members, ",")
}

func overridesLine(o OverrideStatus) string {
	var parts []string
	if len(o.Drained) > 0 {
		parts = append(parts, "drained "+strings.Join(o.Drained, ","))
	}
	dbs := make([]string, 0, len(o.Forced))
	for db := range o.Forced {
		dbs = append(dbs, db)
	}
	slices.Sort(dbs)
	for _, db := range dbs {
		parts = append(parts, fmt.Sprintf("forced %s=%s", db, o.Forced[db]))
	}
	return strings.Join(parts, "; ")
}

// fmtDur prints a duration at the precision a person reads (policy.Readable).
func fmtDur(d time.Duration) string { return policy.Readable(d).String() }

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02T15:04:05.000Z")
}

func orDash(s string) string { return orDefault(s, "-") }

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
