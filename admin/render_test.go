package admin_test

import (
	"bytes"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aagtm/aagtm/admin"
	"github.com/aagtm/aagtm/policy"
)

func TestRenderStatus(t *testing.T) {
	b := newFakeBackend(t)
	ov := policy.Overrides{Drained: map[string]bool{"cache-euw": true}, Forced: map[string]string{}}
	snap := testSnapshot()
	snap.Members["cache-use"].Lagging = true
	snap.Members["sessions-use"].Settled = false // serving its failback hold
	snap.Members["cache-euw"].DownOutcome = policy.OutcomeTimeout
	snap.Members["sessions-use"].FailStatic = true
	snap.Members["sessions-use"].NoFreshSince = snap.Generated.Add(-time.Minute)
	st := admin.NewStatus("ns1", snap, b.cfg, ov)
	st.Ready = true
	since := snap.Generated.Add(-time.Minute)
	st.Agents = []admin.AgentStatus{
		{ID: "probe-euw", Region: "eu-west", LastSeen: since, BootID: "b0e1", LastSeq: 17, Accepted: 17, Refused: 2,
			LastRefusal: "stale seq 3: agent \"probe-euw\" (boot b0e1) already reported seq 17"},
		{ID: "probe-use", Region: "us-east", Connected: true, Streams: 1, StreamSince: since, Remote: "10.1.0.5:51234",
			LastSeen: snap.Generated, BootID: "9f3c", LastSeq: 60, Accepted: 60},
	}

	var buf bytes.Buffer
	if err := admin.RenderStatus(&buf, st); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	t.Log("\n" + out)

	// Rows are matched with flexible spacing: tabwriter pads columns.
	rows := []string{
		`node ns1 +serial 7 +generated 2026-03-01T12:00:00.000Z +config \w+ +ready`,
		`overrides: drained cache-euw`,
		`MEMBER +DATABASE +REGION +VERDICT +VANTAGES +LAG +RTT +FLAGS`,
		`cache-use +cache +us-east +up +2/0/0 +12ms +400µs +lagging\n`,
		`cache-euw +cache +eu-west +down:timeout +0/1/1 +- +- +drained\n`,
		`sessions-use +sessions +us-east +up +1/0/0 +- +1ms +holding,no-fresh-vantage-since-2026-03-01T11:59:00.000Z\n`,
		`DATABASE +REGION +ANSWER +REASON`,
		`cache +eu-west +cache-use +cache-use: cache-euw is down`,
		`cache +us-east +cache-use +cache-use: nearest healthy member`,
		`sessions +\* +sessions-use +sessions-use: first in order`,
		`AGENT +REGION +CONNECTION +LAST REPORT +BOOT/SEQ +ACCEPTED +REFUSED +DROPPED +LAST REFUSAL`,
		`probe-euw +eu-west +disconnected +2026-03-01T11:59:00.000Z +b0e1/17 +17 +2 +0 +stale seq 3`,
		`probe-use +us-east +connected since 2026-03-01T11:59:00.000Z from 10.1.0.5:51234 +2026-03-01T12:00:00.000Z +9f3c/60 +60 +0 +0 +-\n`,
		`AT +KIND +DATABASE +REGION +CHANGE +DETECTION +RPO +REASON`,
		`2026-03-01T11:59:00.000Z +failover +cache +eu-west +cache-euw -> cache-use +2.1s +12ms +cache-euw down`,
	}
	for _, row := range rows {
		if !regexp.MustCompile(row).MatchString(out) {
			t.Errorf("output has no row matching %q", row)
		}
	}
	if strings.Count(out, "sessions-use: first in order") != 1 {
		t.Error("a region-independent answer was not folded into one row")
	}
}

func TestRenderStatusEmpty(t *testing.T) {
	st := admin.NewStatus("ns2", nil, nil, policy.Overrides{})
	var buf bytes.Buffer
	if err := admin.RenderStatus(&buf, st); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{"node ns2", "NOT READY", "(no members evaluated yet)", "(no answers yet)"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}
