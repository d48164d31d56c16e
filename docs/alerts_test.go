package docs_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/aagtm/aagtm/internal/testenv"
)

const (
	alertsPath    = "../deploy/prometheus/alerts.yml"
	dashboardPath = "../deploy/grafana/aagtm.json"
)

// queryMetricRe finds our metric names in PromQL; histogram series drop
// their _bucket, _sum or _count suffix before the docs lookup.
var queryMetricRe = regexp.MustCompile(`\baagtm_[a-z0-9_]+`)

// documentedMetrics returns the metric names docs/metrics.md documents.
func documentedMetrics(t *testing.T) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	for _, r := range metricRows(t) {
		out[r.key] = true
	}
	return out
}

// checkQueryMetrics fails the test for every aagtm_ metric in expr that
// docs/metrics.md does not document, and returns how many it found.
func checkQueryMetrics(t *testing.T, where, expr string, documented map[string]bool) int {
	t.Helper()
	names := queryMetricRe.FindAllString(expr, -1)
	for _, n := range names {
		base := n
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if trimmed, ok := strings.CutSuffix(n, suffix); ok && documented[trimmed] {
				base = trimmed
			}
		}
		if !documented[base] {
			t.Errorf("%s: query names %s, which docs/metrics.md does not document", where, n)
		}
	}
	return len(names)
}

// TestAlertRules: promtool accepts the alert rules, every rule has a
// summary, and their queries name only documented metrics.
func TestAlertRules(t *testing.T) {
	promtool := testenv.RequireTool(t, "promtool", "prometheus")
	if out, err := exec.Command(promtool, "check", "rules", alertsPath).CombinedOutput(); err != nil {
		t.Fatalf("promtool check rules %s: %v\n%s", alertsPath, err, out)
	}
	var f struct {
		Groups []struct {
			Rules []struct {
				Alert       string            `yaml:"alert"`
				Expr        string            `yaml:"expr"`
				Annotations map[string]string `yaml:"annotations"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	raw, err := os.ReadFile(alertsPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(raw, &f); err != nil {
		t.Fatal(err)
	}
	documented := documentedMetrics(t)
	seen := map[string]bool{}
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			seen[r.Alert] = true
			if r.Annotations["summary"] == "" {
				t.Errorf("alert %s has no summary annotation", r.Alert)
			}
			if checkQueryMetrics(t, "alert "+r.Alert, r.Expr, documented) == 0 {
				t.Errorf("alert %s: expression %q names no aagtm metric", r.Alert, r.Expr)
			}
		}
	}
	// The alerts issue 15 asks for.
	for _, want := range []string{"AagtmMemberDown", "AagtmFailoverHappened", "AagtmAllVantagesStale", "AagtmAgentDisconnected",
		"AagtmMemberLagging", "AagtmNodeNotServing", "AagtmStateSaveFailing"} {
		if !seen[want] {
			t.Errorf("alerts.yml lacks %s", want)
		}
	}
}

// TestDashboard: the Grafana dashboard parses, and every panel has a query
// that names only documented metrics.
func TestDashboard(t *testing.T) {
	raw, err := os.ReadFile(dashboardPath)
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		UID    string `json:"uid"`
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatalf("%s: %v", dashboardPath, err)
	}
	if d.UID == "" || len(d.Panels) == 0 {
		t.Fatalf("%s: uid %q, %d panels", dashboardPath, d.UID, len(d.Panels))
	}
	documented := documentedMetrics(t)
	for _, p := range d.Panels {
		t.Run(p.Title, func(t *testing.T) {
			if len(p.Targets) == 0 {
				t.Fatal("panel has no query")
			}
			for _, q := range p.Targets {
				if checkQueryMetrics(t, "panel "+p.Title, q.Expr, documented) == 0 {
					t.Errorf("query %q names no aagtm metric", q.Expr)
				}
			}
		})
	}
}

// TestComposeMonitoring: the compose lab's Prometheus loads the alert
// rules and scrapes every node's admin listener, and Grafana's data source
// is that Prometheus.
func TestComposeMonitoring(t *testing.T) {
	cf := loadCompose(t)
	prom, ok := cf.Services["prometheus"]
	if !ok {
		t.Fatal("docker-compose.yml has no prometheus service")
	}
	var pc struct {
		RuleFiles     []string `yaml:"rule_files"`
		ScrapeConfigs []struct {
			StaticConfigs []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
	}
	raw, err := os.ReadFile("../deploy/prometheus/prometheus.yml")
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(raw, &pc); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(pc.RuleFiles, "/etc/prometheus/alerts.yml") {
		t.Errorf("prometheus.yml rule_files = %v, want /etc/prometheus/alerts.yml", pc.RuleFiles)
	}
	var targets []string
	for _, sc := range pc.ScrapeConfigs {
		for _, s := range sc.StaticConfigs {
			targets = append(targets, s.Targets...)
		}
	}
	for _, node := range []string{"ns1", "ns2"} {
		want := cf.Services[node].Networks["aagtm"].IPv4 + ":8053"
		if !slices.Contains(targets, want) {
			t.Errorf("prometheus scrapes %v, not %s's admin listener %s", targets, node, want)
		}
	}
	ds, err := os.ReadFile("../deploy/grafana/provisioning/datasources/prometheus.yml")
	if err != nil {
		t.Fatal(err)
	}
	if want := "http://" + prom.Networks["aagtm"].IPv4 + ":9090"; !strings.Contains(string(ds), want) {
		t.Errorf("grafana data source does not point at the prometheus service %s", want)
	}
}
