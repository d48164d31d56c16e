package docs_test

import (
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/aagtm/aagtm/admin"
)

var descRe = regexp.MustCompile(`fqName: ("(?:[^"\\]|\\.)*"), help: ("(?:[^"\\]|\\.)*"), .*variableLabels: \{([^}]*)\}`)

// TestMetricsDocListsPolicyMetrics keeps docs/metrics.md in step with the
// metrics the admin package registers: name, labels and help text.
func TestMetricsDocListsPolicyMetrics(t *testing.T) {
	rows := map[string]docRow{}
	for _, r := range metricRows(t) {
		rows[r.key] = r
	}
	m := admin.NewPolicyMetrics(prometheus.NewRegistry())
	ch := make(chan *prometheus.Desc, 64)
	m.Describe(ch)
	close(ch)
	n := 0
	for d := range ch {
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
		n++
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
	if n < 12 {
		t.Errorf("the admin package described %d metrics, expected at least 12", n)
	}
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
