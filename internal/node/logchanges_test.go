package node

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/aagtm/aagtm/policy"
)

// TestLogFailStatic logs one Warn when members lose every voting vantage,
// one Info when the quorum decides again, and nothing for the warm-up after
// a start (no vantage has voted yet).
func TestLogFailStatic(t *testing.T) {
	t0 := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	snap := func(static map[string]time.Time) *policy.Snapshot {
		s := &policy.Snapshot{Members: map[string]*policy.MemberStatus{}}
		for _, name := range []string{"cache-e", "cache-w"} {
			m := &policy.MemberStatus{Name: name, Verdict: policy.Up, Settled: true}
			if since, ok := static[name]; ok {
				m.FailStatic, m.NoFreshSince = true, since
			}
			s.Members[name] = m
		}
		return s
	}
	var buf bytes.Buffer
	n := &Node{logger: hclog.New(&hclog.LoggerOptions{Output: &buf, Level: hclog.Info})}
	steps := []struct {
		name string
		cur  *policy.Snapshot
		want []string // substrings of the lines logged by this step; nil: none
	}{
		{"warm-up after start", snap(map[string]time.Time{"cache-e": {}, "cache-w": {}}), nil},
		{"vantages vote", snap(nil), nil},
		{"every agent silent", snap(map[string]time.Time{"cache-e": t0, "cache-w": t0.Add(time.Second)}),
			[]string{`[WARN]  no fresh vantage: last verdict kept: count=2 members="cache-e,cache-w" since=2026-11-29T12:00:00Z`}},
		{"still silent", snap(map[string]time.Time{"cache-e": t0, "cache-w": t0.Add(time.Second)}), nil},
		{"one member decided again", snap(map[string]time.Time{"cache-w": t0.Add(time.Second)}),
			[]string{`[INFO]  vantages vote again: verdicts decided by quorum: count=1 members=cache-e`}},
	}
	prev := snap(nil)
	for _, s := range steps {
		buf.Reset()
		n.logChanges(prev, s.cur)
		prev = s.cur
		out := strings.TrimSpace(buf.String())
		lines := 0
		if out != "" {
			lines = len(strings.Split(out, "\n"))
		}
		if lines != len(s.want) {
			t.Errorf("%s: logged %d lines, want %d:\n%s", s.name, lines, len(s.want), out)
			continue
		}
		for _, w := range s.want {
			if !strings.Contains(out, w) {
				t.Errorf("%s: log %q lacks %q", s.name, out, w)
			}
		}
	}
}

func TestTruncateNames(t *testing.T) {
	var names []string
	for range loggedNames + 3 {
		names = append(names, "m")
	}
	if got := truncateNames(names); !strings.HasSuffix(got, ",m,... (3 more)") || strings.Count(got, "m") != loggedNames+1 {
		t.Errorf("truncateNames = %q", got)
	}
}
