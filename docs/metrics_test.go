package docs_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/aagtm/aagtm/admin"
	"github.com/aagtm/aagtm/config"
	"github.com/aagtm/aagtm/dnsserver"
	"github.com/aagtm/aagtm/ingest"
	"github.com/aagtm/aagtm/overrides"
	"github.com/aagtm/aagtm/policy"
	"github.com/aagtm/aagtm/sentinel"
)

var descRe = regexp.MustCompile(`fqName: ("(?:[^"\\]|\\.)*"), help: ("(?:[^"\\]|\\.)*"), .*variableLabels: \{([^}]*)\}`)

// recorder is a prometheus.Registerer that keeps the description of every
// metric registered with it.
type recorder struct{ descs []*prometheus.Desc }

func (r *recorder) Register(c prometheus.Collector) error {
	ch := make(chan *prometheus.Desc)
	go func() { c.Describe(ch); close(ch) }()
	for d := range ch {
		r.descs = append(r.descs, d)
	}
	return nil
}

func (r *recorder) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		_ = r.Register(c)
	}
}

func (r *recorder) Unregister(prometheus.Collector) bool { return true }

// registeredMetrics returns the metrics a node registers, by every package
// that registers some (admin's policy, state-file and readiness metrics, dnsserver, ingest, sentinel, overrides), built as
// the node builds them but with a recorder for registry.
func registeredMetrics(t *testing.T) []*prometheus.Desc {
	t.Helper()
	rec := &recorder{}
	admin.NewPolicyMetrics(rec)
	admin.NewStateMetrics(rec, func() bool { return false })
	admin.NewReadyMetric(rec, func() bool { return true })
	dnsserver.New(dnsserver.Options{Node: "ns1", Registerer: rec}, hclog.NewNullLogger())
	sentinel.New(sentinel.Options{Node: "ns1", Registerer: rec}, hclog.NewNullLogger())
	cfg, err := config.Load(config.Options{Path: "../examples/aagtm.yaml"})
	if err != nil {
		t.Fatalf("load the example config: %v", err)
	}
	ingest.New(cfg, hclog.NewNullLogger(), func([]policy.Observation) {}, ingest.WithRegisterer(rec))
	overrides.NewSyncer(overrides.NewSet("ns1", time.Now), "ns1", nil, hclog.NewNullLogger(), rec, nil)
	return rec.descs
}

// metricNameRe finds metric names in Go source: prometheus options
// (Name: "aagtm_...") and descriptions (NewDesc("aagtm_...").
var metricNameRe = regexp.MustCompile(`(?:Name:\s*|NewDesc\(\s*)"(aagtm_[a-z0-9_]+)"`)

// TestMetricsDocListsEveryMetric keeps docs/metrics.md in step with every
// metric a node registers: name, labels and help text, and no row for a
// metric that no longer exists. Metric names defined anywhere in the
// module's code must be among those registered here, so a package that
// starts registering metrics is added to registeredMetrics, not forgotten.
func TestMetricsDocListsEveryMetric(t *testing.T) {
	rows := map[string]docRow{}
	for _, r := range metricRows(t) {
		rows[r.key] = r
	}
	registered := map[string]bool{}
	for _, d := range registeredMetrics(t) {
		match := descRe.FindStringSubmatch(d.String())
		if match == nil {
			t.Fatalf("cannot read %s: update descRe for this client_golang", d)
		}
		name, _ := strconv.Unquote(match[1])
		help, _ := strconv.Unquote(match[2])
		var labels []string
		if match[3] != "" {
			labels = strings.Split(match[3], ",")
		}
		registered[name] = true
		row, ok := rows[name]
		if !ok {
			t.Errorf("metrics.md does not list %s", name)
			continue
		}
		var docLabels []string
		for _, l := range strings.Split(row.cells[2], ",") {
			if l = strings.Trim(strings.TrimSpace(l), "`"); l != "" {
				docLabels = append(docLabels, l)
			}
		}
		slices.Sort(labels)
		slices.Sort(docLabels)
		if !slices.Equal(labels, docLabels) {
			t.Errorf("metrics.md gives %s labels %v, the code %v", name, docLabels, labels)
		}
		docHelp := strings.ReplaceAll(row.cells[3], "`", "")
		if !strings.Contains(docHelp, strings.TrimSuffix(help, ".")) {
			t.Errorf("metrics.md help of %s does not contain the code's help %q", name, help)
		}
	}
	for name := range rows {
		if !registered[name] {
			t.Errorf("metrics.md lists %s, which no package registers: remove the row", name)
		}
	}
	for name, file := range metricNamesInCode(t) {
		if !registered[name] {
			t.Errorf("%s defines metric %s, which registeredMetrics does not register: add its package there", file, name)
		}
	}
	if len(registered) < 20 {
		t.Errorf("%d metrics registered, expected at least 20 (admin, dnsserver, ingest)", len(registered))
	}
}

// metricNamesInCode returns the metric names defined in the module's
// non-test Go files, each with the file that defines it.
func metricNamesInCode(t *testing.T) map[string]string {
	t.Helper()
	names := map[string]string{}
	err := filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") && d.Name() != ".." || d.Name() == "bench") {
			return filepath.SkipDir // bench: standalone programs, not the node
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range metricNameRe.FindAllStringSubmatch(string(src), -1) {
			names[m[1]] = path
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(names) == 0 {
		t.Fatal("no metric names found in the module's code: update metricNameRe")
	}
	return names
}

func metricRows(t *testing.T) []docRow {
	t.Helper()
	var out []docRow
	for _, r := range tableRowsAll(t, "metrics.md") {
		if strings.HasPrefix(r.key, "aagtm_") && len(r.cells) == 4 {
			out = append(out, r)
		}
	}
	return out
}

// tableRowsAll returns every table row of a doc whose first cell is a
// single code span.
func tableRowsAll(t *testing.T, doc string) []docRow {
	t.Helper()
	return tableRowsIn(t, doc, "", "")
}
