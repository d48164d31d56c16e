package e2e

import (
	"io"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"go.yaml.in/yaml/v3"

	"github.com/aagtm/aagtm/admin"
)

// The alert rules of deploy/prometheus/alerts.yml, evaluated by
// `promtool test rules` on what a real node's /metrics said in each rule's
// state. Every sample of the input series is a real scrape of the node,
// taken every alertScrapeEvery and laid out alertInterval apart on
// promtool's time line (a time-lapse: Prometheus would scrape every 15s;
// the node's own settings are the short ones of the other e2e tests).

const (
	alertsFile = "../deploy/prometheus/alerts.yml"
	// alertScrapeEvery is how often the test scrapes the node.
	alertScrapeEvery = 200 * time.Millisecond
	// alertInterval is how far apart the scrapes are on promtool's time
	// line, and its evaluation interval.
	alertInterval = 15 * time.Second
	// healthyScrapes lay out 6 minutes of a healthy node: more than the
	// longest window of the rules (increase over 5m).
	healthyScrapes = 24
	// stateScrapes lay out 4 minutes of a state: more than the longest
	// `for` plus its window (AagtmAgentDisconnected: rate over 1m, for 1m).
	stateScrapes = 16
	// alertInstance and alertJob are the target labels Prometheus adds.
	alertInstance = "ns1"
	alertJob      = "aagtm"
)

// wallClockGauges hold a Unix time: promtool's clock starts at 0, so each
// sample is moved to the sample's time on promtool's time line, keeping
// its age at the scrape.
var wallClockGauges = map[string]bool{"aagtm_policy_snapshot_timestamp_seconds": true}

// alertScrape is one scrape as Prometheus records it: up, and every aagtm_
// counter and gauge keyed by its series in promtool's notation, with the
// job and instance labels.
type alertScrape struct {
	at     time.Time
	up     bool
	series map[string]float64
}

// seriesKey renders name and labels in promtool's series notation.
func seriesKey(name string, labels map[string]string) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		parts = append(parts, k+"="+strconv.Quote(labels[k]))
	}
	return name + "{" + strings.Join(parts, ",") + "}"
}

// targetLabels returns labels plus the job and instance Prometheus adds.
func targetLabels(labels map[string]string) map[string]string {
	out := map[string]string{"job": alertJob, "instance": alertInstance}
	maps.Copy(out, labels)
	return out
}

// parseScrape turns a text-format /metrics body taken at at into a scrape.
func parseScrape(t *testing.T, body io.Reader, at time.Time) alertScrape {
	t.Helper()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	s := alertScrape{at: at, up: true, series: map[string]float64{}}
	for name, f := range families {
		if !strings.HasPrefix(name, "aagtm_") {
			continue
		}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			var v float64
			switch f.GetType() {
			case dto.MetricType_COUNTER:
				v = m.GetCounter().GetValue()
			case dto.MetricType_GAUGE:
				v = m.GetGauge().GetValue()
			default:
				continue // histograms: no rule reads them
			}
			s.series[seriesKey(name, targetLabels(labels))] = v
		}
	}
	return s
}

// scrapeOnce fetches the node's /metrics; a failed scrape has up false and
// no series, as Prometheus records it.
func scrapeOnce(t *testing.T, adminAddr string) alertScrape {
	t.Helper()
	at := time.Now()
	c := &http.Client{Timeout: time.Second}
	resp, err := c.Get("http://" + adminAddr + "/metrics")
	if err != nil {
		return alertScrape{at: at}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return alertScrape{at: at}
	}
	return parseScrape(t, resp.Body, at)
}

// scrapeSeries scrapes the node n times, alertScrapeEvery apart.
func scrapeSeries(t *testing.T, adminAddr string, n int) []alertScrape {
	t.Helper()
	out := make([]alertScrape, 0, n)
	tick := time.NewTicker(alertScrapeEvery)
	defer tick.Stop()
	for range n {
		out = append(out, scrapeOnce(t, adminAddr))
		<-tick.C
	}
	return out
}

// promtoolSeries lays scrapes out alertInterval apart from time 0 and
// returns promtool's input series: up from every scrape, each aagtm_
// series with its value, "stale" where it disappeared (as Prometheus marks
// series a scrape no longer has, or a failed scrape), "_" while absent.
func promtoolSeries(scrapes []alertScrape) map[string]string {
	keys := map[string]bool{}
	for _, s := range scrapes {
		for k := range s.series {
			keys[k] = true
		}
	}
	out := map[string]string{}
	up := make([]string, len(scrapes))
	for i, s := range scrapes {
		up[i] = "0"
		if s.up {
			up[i] = "1"
		}
	}
	out[seriesKey("up", targetLabels(nil))] = strings.Join(up, " ")
	for k := range keys {
		name := k[:strings.IndexByte(k, '{')]
		vals := make([]string, len(scrapes))
		present := false
		for i, s := range scrapes {
			v, ok := s.series[k]
			switch {
			case ok && wallClockGauges[name]:
				sampleTime := time.Duration(i) * alertInterval
				v = sampleTime.Seconds() + v - float64(s.at.UnixNano())/1e9
				vals[i] = strconv.FormatFloat(v, 'f', -1, 64)
			case ok:
				vals[i] = strconv.FormatFloat(v, 'f', -1, 64)
			case present:
				vals[i] = "stale"
			default:
				vals[i] = "_"
			}
			present = ok
		}
		out[k] = strings.Join(vals, " ")
	}
	return out
}

// alertRule is a rule of alerts.yml as the test needs it.
type alertRule struct {
	Alert       string            `yaml:"alert"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

// loadAlertRules reads the rules of alerts.yml by name.
func loadAlertRules(t *testing.T) map[string]alertRule {
	t.Helper()
	var f struct {
		Groups []struct {
			Rules []alertRule `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal([]byte(readFile(t, alertsFile)), &f); err != nil {
		t.Fatalf("%s: %v", alertsFile, err)
	}
	out := map[string]alertRule{}
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			out[r.Alert] = r
		}
	}
	return out
}

var labelRefRe = regexp.MustCompile(`\{\{ \$labels\.([a-z_]+) \}\}`)

// expectedAlert is promtool's exp_alerts entry for rule firing with
// labels: the rule's own labels added, its annotations rendered.
func expectedAlert(t *testing.T, rule alertRule, labels map[string]string) map[string]any {
	t.Helper()
	all := maps.Clone(labels)
	maps.Copy(all, rule.Labels)
	ann := map[string]string{}
	for k, tmpl := range rule.Annotations {
		ann[k] = labelRefRe.ReplaceAllStringFunc(tmpl, func(ref string) string {
			name := labelRefRe.FindStringSubmatch(ref)[1]
			v, ok := labels[name]
			if !ok {
				t.Errorf("%s's %s names label %s, which its alert does not have (%v)", rule.Alert, k, name, labels)
			}
			return v
		})
	}
	return map[string]any{"exp_labels": all, "exp_annotations": ann}
}

// alertCase is a state of the node and the alerts it must raise.
type alertCase struct {
	name  string
	state []alertScrape
	// want: per alert under test, the label sets it fires with at the end
	// of the state (besides the rule's own labels).
	want map[string][]map[string]string
}

// TestAlertRulesOnRealNode drives one real node (real members, agents,
// replication stand-in) into the state of each alert rule, scrapes its
// /metrics there and when healthy, and has `promtool test rules` check
// that no rule fires on the healthy node and each rule fires, with the
// labels an operator sees, in its state.
func TestAlertRulesOnRealNode(t *testing.T) {
	promtool := requireTool(t, "promtool", "prometheus")
	rules := loadAlertRules(t)
	p := defaultParams()
	p.nodes = 1
	p.checks = "[ping, echo, keyspace, lag]"
	p.lagTolerance = 500 * time.Millisecond
	p.replicate = true
	d := deploy(t, p)
	d.waitAllFresh(t)
	inTolerance := func(st *admin.Status) bool {
		for _, m := range st.Members {
			if m.Verdict != "up" || !m.LagKnown || m.Lagging {
				return false
			}
		}
		return len(st.Members) == len(testRegions)
	}
	d.waitStatus(t, 10*time.Second, "every member up, lag known and in tolerance", inTolerance)
	adminAddr := d.admin[0]
	node := func(lbl ...string) map[string]string {
		out := map[string]string{"instance": alertInstance}
		for i := 0; i+1 < len(lbl); i += 2 {
			out[lbl[i]] = lbl[i+1]
		}
		return out
	}
	withJob := func(m map[string]string) map[string]string { m["job"] = alertJob; return m }

	healthy := scrapeSeries(t, adminAddr, healthyScrapes)
	for _, s := range healthy {
		if got := s.series[seriesKey("aagtm_node_ready", targetLabels(nil))]; !s.up || got != 1 {
			t.Fatalf("healthy node: up %v, aagtm_node_ready %v; want up and 1", s.up, got)
		}
	}
	var cases []alertCase

	// A member dies: its verdict turns down and its clients fail over.
	d.members["cache-use"].Kill()
	d.waitStatus(t, 10*time.Second, "cache-use down", func(st *admin.Status) bool { return memberIn(st, "cache-use").Verdict == "down" })
	cases = append(cases, alertCase{name: "member down, failover happened", state: scrapeSeries(t, adminAddr, stateScrapes),
		want: map[string][]map[string]string{
			"AagtmMemberDown":       {withJob(node("database", "cache", "member", "cache-use"))},
			"AagtmFailoverHappened": {withJob(node("database", "cache", "kind", "failover"))},
		}})
	d.members["cache-use"].Restart()
	d.waitStatus(t, 15*time.Second, "every member up and in tolerance again", inTolerance)

	// Replication to a member stalls: its lag passes lag_tolerance.
	d.repl.pause("cache-euw", true)
	d.waitStatus(t, 10*time.Second, "cache-euw lagging", func(st *admin.Status) bool { return memberIn(st, "cache-euw").Lagging })
	cases = append(cases, alertCase{name: "lag over tolerance", state: scrapeSeries(t, adminAddr, stateScrapes),
		want: map[string][]map[string]string{"AagtmMemberLagging": {withJob(node("member", "cache-euw"))}}})
	d.repl.pause("cache-euw", false)
	d.waitStatus(t, 15*time.Second, "every member in tolerance again", inTolerance)

	// One agent stops: its connection closes, it sends nothing.
	agentArgs := d.agents["ap-south"].cmd.Args[1:]
	if err := d.agents["ap-south"].stop(t); err != nil {
		t.Fatalf("agent ap-south exited with %v after SIGTERM", err)
	}
	cases = append(cases, alertCase{name: "agent disconnected", state: scrapeSeries(t, adminAddr, stateScrapes),
		want: map[string][]map[string]string{"AagtmAgentDisconnected": {node("agent", "ap-south")}}})
	d.agents["ap-south"] = start(t, "probe ap-south (again)", agentArgs...)
	d.waitAllFresh(t)

	// Every agent hangs: every vantage of every member goes stale.
	d.signalAgents(t, syscall.SIGSTOP)
	t.Cleanup(func() { d.signalAgents(t, syscall.SIGCONT) })
	d.waitStatus(t, 10*time.Second, "every vantage stale", func(st *admin.Status) bool {
		for _, m := range st.Members {
			for _, v := range m.Vantages {
				if v.Fresh {
					return false
				}
			}
		}
		return true
	})
	// One alert per node: which members, status says (the metric is a
	// count, not a series per member).
	cases = append(cases, alertCase{name: "every vantage stale", state: scrapeSeries(t, adminAddr, stateScrapes),
		want: map[string][]map[string]string{"AagtmAllVantagesStale": {node()}}})
	d.signalAgents(t, syscall.SIGCONT)
	d.waitAllFresh(t)

	// The state file cannot be written (a directory stands in its place):
	// an operator's drain is refused.
	statePath := filepath.Join(filepath.Dir(d.cfgPath), "ns1.state")
	if err := os.Remove(statePath); err != nil {
		t.Fatalf("remove the state file: %v", err)
	}
	if err := os.MkdirAll(filepath.Join(statePath, "in-the-way"), 0o700); err != nil {
		t.Fatal(err)
	}
	out, code := runCmd(t, 10*time.Second, "drain", "cache-aps", "-c", d.cfgPath)
	if code == 0 {
		t.Fatalf("drain with an unwritable state file succeeded:\n%s", out)
	}
	cases = append(cases, alertCase{name: "state save failing", state: scrapeSeries(t, adminAddr, stateScrapes),
		want: map[string][]map[string]string{"AagtmStateSaveFailing": {withJob(node())}}})
	if err := os.RemoveAll(statePath); err != nil {
		t.Fatal(err)
	}

	// The node stops: Prometheus's scrapes fail. (Readiness is 503 only
	// between SIGTERM and the listeners closing, too short a window to
	// scrape; admin's TestReadyMetric checks aagtm_node_ready follows
	// /readyz.)
	nodeArgs := d.nodes[0].cmd.Args[1:]
	if err := d.nodes[0].stop(t); err != nil {
		t.Fatalf("ns1 exited with %v after SIGTERM", err)
	}
	cases = append(cases, alertCase{name: "node stopped", state: scrapeSeries(t, adminAddr, stateScrapes),
		want: map[string][]map[string]string{"AagtmNodeNotServing": {withJob(node())}}})

	// It restarts on an unusable state file.
	writeFile(t, filepath.Dir(d.cfgPath), "ns1.state", "{not json")
	d.nodes[0] = start(t, "serve ns1 (on a corrupt state file)", nodeArgs...)
	waitFor(t, 15*time.Second, "ns1 to serve again", func() bool {
		return answerA(d.dns[0], "cache.gtm.test", clientOf("us-east")) == addrUse
	})
	cases = append(cases, alertCase{name: "state corrupt", state: scrapeSeries(t, adminAddr, stateScrapes),
		want: map[string][]map[string]string{"AagtmStateCorrupt": {withJob(node())}}})

	healthyEnd := time.Duration(len(healthy)-1) * alertInterval
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			scrapes := append(slices.Clone(healthy), tc.state...)
			stateEnd := time.Duration(len(scrapes)-1) * alertInterval
			var tests []map[string]any
			for _, name := range slices.Sorted(maps.Keys(rules)) {
				tests = append(tests, map[string]any{"eval_time": healthyEnd.String(), "alertname": name, "exp_alerts": []any{}})
			}
			for _, name := range slices.Sorted(maps.Keys(tc.want)) {
				rule, ok := rules[name]
				if !ok {
					t.Fatalf("%s has no rule %s", alertsFile, name)
				}
				var exp []any
				for _, labels := range tc.want[name] {
					exp = append(exp, expectedAlert(t, rule, labels))
				}
				tests = append(tests, map[string]any{"eval_time": stateEnd.String(), "alertname": name, "exp_alerts": exp})
			}
			runPromtoolTest(t, promtool, promtoolSeries(scrapes), tests)
		})
	}
}

// runPromtoolTest writes a `promtool test rules` file over alerts.yml with
// series and alert tests, and fails the test with promtool's report when
// it fails.
func runPromtoolTest(t *testing.T, promtool string, series map[string]string, tests []map[string]any) {
	t.Helper()
	abs, err := filepath.Abs(alertsFile)
	if err != nil {
		t.Fatal(err)
	}
	var input []map[string]string
	keys := slices.Collect(maps.Keys(series))
	sort.Strings(keys)
	for _, k := range keys {
		input = append(input, map[string]string{"series": k, "values": series[k]})
	}
	doc := map[string]any{
		"rule_files":          []string{abs},
		"evaluation_interval": alertInterval.String(),
		"tests": []any{map[string]any{
			"interval":        alertInterval.String(),
			"input_series":    input,
			"alert_rule_test": tests,
		}},
	}
	raw, err := yaml.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	path := writeFile(t, t.TempDir(), "alerts_test.yml", string(raw))
	if out, err := exec.Command(promtool, "test", "rules", path).CombinedOutput(); err != nil {
		t.Errorf("promtool test rules %s: %v\n%s", path, err, out)
		t.Logf("input:\n%s", raw)
	} else {
		t.Logf("promtool: %d series, %d samples each, %d checks passed", len(input), len(strings.Fields(series[keys[0]])), len(tests))
	}
}
