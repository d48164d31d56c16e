package admin_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/aagtm/aagtm/admin"
	"github.com/aagtm/aagtm/policy"
)

// scrape serves reg through the admin API's /metrics and returns the text.
func scrape(t *testing.T, reg *prometheus.Registry) string {
	t.Helper()
	s := admin.NewServer(newFakeBackend(t), "ns1", "", false, reg, testLogger(t))
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /metrics = %d %s", rec.Code, rec.Body.String())
	}
	return rec.Body.String()
}

func TestPolicyMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := admin.NewPolicyMetrics(reg)
	snap := testSnapshot()
	snap.Members["cache-euw"].Drained = true
	snap.Members["cache-euw"].FailStatic = true
	m.Observe(snap)
	m.Observe(snap) // the same snapshot again must not count twice

	out := scrape(t, reg)
	for _, want := range []string{
		"# HELP aagtm_policy_member_up ",
		`aagtm_policy_member_up{database="cache",member="cache-use"} 1`,
		`aagtm_policy_member_up{database="cache",member="cache-euw"} 0`,
		`aagtm_policy_member_lag_seconds{member="cache-use",source_region="eu-west"} 0.012`,
		`aagtm_policy_member_lagging{member="cache-use"} 0`,
		`aagtm_policy_stale_members{agent="eu-west"} 1`, // of cache-euw
		`aagtm_policy_stale_members{agent="us-east"} 0`,
		`aagtm_policy_drained{member="cache-euw"} 1`,
		"aagtm_policy_fail_static_members 1",
		`aagtm_policy_answer_changes_total{database="cache",region="eu-west"} 1`,
		`aagtm_policy_failovers_total{database="cache",kind="failover"} 1`,
		"aagtm_policy_failover_detection_seconds_count 1",
		"aagtm_policy_failover_detection_seconds_sum 2.1",
		"aagtm_policy_rpo_estimate_seconds_count 1",
		"aagtm_policy_snapshot_serial 7",
		"aagtm_policy_snapshot_timestamp_seconds ",
		// cache-use's and sessions-use's RTTs from us-east, in one
		// histogram per agent
		`aagtm_probe_rtt_seconds_count{agent="us-east"} 2`,
		`aagtm_probe_rtt_seconds_sum{agent="us-east"} 0.0014`,
		`aagtm_probe_rtt_seconds_count{agent="eu-west"} 1`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if t.Failed() {
		t.Log(out)
	}

	// The next snapshot: one more probe round, no event, cache-euw removed
	// by a reload. Gauges follow; counters keep their totals; only the new
	// observations' RTTs are counted.
	next := testSnapshot()
	next.Serial = 8
	next.Generated = t0.Add(time.Second)
	next.Events, next.Recent = nil, nil
	delete(next.Members, "cache-euw")
	next.Members["cache-use"].Vantages[1].LastSeq = 43
	m.Observe(next)
	out = scrape(t, reg)
	for _, want := range []string{
		"aagtm_policy_snapshot_serial 8",
		"aagtm_policy_fail_static_members 0",
		`aagtm_policy_answer_changes_total{database="cache",region="eu-west"} 1`,
		`aagtm_probe_rtt_seconds_count{agent="us-east"} 3`,
		`aagtm_policy_stale_members{agent="eu-west"} 0`, // cache-euw is gone
		`aagtm_probe_rtt_seconds_count{agent="eu-west"} 1`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("after the next snapshot, metrics lack %q", want)
		}
	}
	if strings.Contains(out, `aagtm_probe_rtt_seconds_count{agent="us-east",member=`) {
		t.Error("the RTT histogram is per member again: 30,000 histograms at 10,000 members")
	}
	if strings.Contains(out, `member="cache-euw"`) {
		t.Error("a member gone from the snapshot still has gauges")
	}
}

func TestNewPolicyMetricsTwiceOnOneRegistry(t *testing.T) {
	reg := prometheus.NewRegistry()
	a := admin.NewPolicyMetrics(reg)
	if b := admin.NewPolicyMetrics(reg); b != a {
		t.Error("a second NewPolicyMetrics on the same registry did not return the first")
	}
}

func TestPolicyMetricsFailbackAndNil(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := admin.NewPolicyMetrics(reg)
	m.Observe(nil)
	snap := testSnapshot()
	snap.Events = []policy.Event{
		{Kind: policy.Failback, Database: "cache", Region: "eu-west", From: "cache-use", To: "cache-euw", At: t0},
		{Kind: policy.Change, Database: "sessions", Region: "us-east", From: "sessions-use", To: "", At: t0},
	}
	m.Observe(snap)
	out := scrape(t, reg)
	for _, want := range []string{
		`aagtm_policy_failovers_total{database="cache",kind="failback"} 1`,
		`aagtm_policy_answer_changes_total{database="sessions",region="us-east"} 1`,
		"aagtm_policy_failover_detection_seconds_count 0",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("metrics lack %q\n%s", want, out)
		}
	}
	if strings.Contains(out, `kind="change"`) {
		t.Error("a change event counted as a failover")
	}
}

// TestPolicyMetricsAllDown counts entering "all down" as a failover kind of
// its own, with its detection time, and leaving it apart from failbacks.
func TestPolicyMetricsAllDown(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := admin.NewPolicyMetrics(reg)
	snap := testSnapshot()
	snap.Events = []policy.Event{
		{Kind: policy.AllDown, Database: "cache", Region: "eu-west", From: "cache-euw", To: "cache-use", At: t0, Detection: 1500 * time.Millisecond},
	}
	m.Observe(snap)
	next := testSnapshot()
	next.Events = []policy.Event{
		{Kind: policy.AllDownEnd, Database: "cache", Region: "eu-west", From: "cache-use", To: "cache-euw", At: t0.Add(time.Minute)},
	}
	m.Observe(next)
	out := scrape(t, reg)
	for _, want := range []string{
		`aagtm_policy_failovers_total{database="cache",kind="all_down"} 1`,
		`aagtm_policy_failovers_total{database="cache",kind="all_down_end"} 1`,
		"aagtm_policy_failover_detection_seconds_count 1",
		"aagtm_policy_failover_detection_seconds_sum 1.5",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("metrics lack %q\n%s", want, out)
		}
	}
}
