package docs_test

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/aagtm/aagtm/config"
)

// docRow is one row of a Markdown table whose first cell is a `code` span.
type docRow struct {
	key   string   // the first cell's code
	cells []string // all cells, trimmed
}

var codeCell = regexp.MustCompile("^`([^`]+)`$")

// tableRows returns the rows between <!-- marker:start --> and
// <!-- marker:end --> in a doc whose first cell is a single code span.
func tableRows(t *testing.T, doc, marker string) []docRow {
	t.Helper()
	return tableRowsIn(t, doc, "<!-- "+marker+":start -->", "<!-- "+marker+":end -->")
}

// tableRowsIn returns the table rows whose first cell is a single code span,
// between the start and end lines ("" for the whole doc).
func tableRowsIn(t *testing.T, doc, startMark, endMark string) []docRow {
	t.Helper()
	data, err := os.ReadFile(doc)
	if err != nil {
		t.Fatal(err)
	}
	text := string(data)
	if startMark != "" {
		start := strings.Index(text, startMark)
		end := strings.Index(text, endMark)
		if start < 0 || end < start {
			t.Fatalf("%s: no %s … %s section", doc, startMark, endMark)
		}
		text = text[start:end]
	}
	var rows []docRow
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, "|") {
			continue
		}
		var cells []string
		for _, c := range strings.Split(strings.Trim(line, "|"), "|") {
			cells = append(cells, strings.TrimSpace(c))
		}
		if m := codeCell.FindStringSubmatch(cells[0]); m != nil {
			rows = append(rows, docRow{key: m[1], cells: cells})
		}
	}
	if len(rows) == 0 {
		t.Fatalf("%s: no table rows found", doc)
	}
	return rows
}

var update = flag.Bool("update", false, "rewrite docs/config.md's reference tables from config.Settings")

// settingRow renders one setting as a row of config.md's reference.
func settingRow(s config.Setting) string {
	return fmt.Sprintf("| `%s` | %s | %s | %s |", s.Path, s.Type, s.DocDefault(), s.Doc)
}

// The reference tables of config.md are config.Settings, section by
// section, row for row, and its overridable-settings table is
// config.EnvKeys(). `go test ./docs -run TestConfigReference -update`
// rewrites them after a change of the table.
func TestConfigReferenceIsSettings(t *testing.T) {
	data, err := os.ReadFile("config.md")
	if err != nil {
		t.Fatal(err)
	}
	want := referenceFromSettings(t, string(data))
	if want == string(data) {
		return
	}
	if *update {
		if err := os.WriteFile("config.md", []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	got, exp := strings.Split(string(data), "\n"), strings.Split(want, "\n")
	for i := 0; i < len(got) && i < len(exp); i++ {
		if got[i] != exp[i] {
			t.Fatalf("config.md's reference differs from config.Settings at line %d:\n have %s\n want %s\n"+
				"run: go test ./docs -run TestConfigReference -update", i+1, got[i], exp[i])
		}
	}
	t.Fatalf("config.md's reference differs from config.Settings in length: run go test ./docs -run TestConfigReference -update")
}

// referenceFromSettings returns doc with the table of every ### section of
// its reference replaced by the rows config.Settings declares for it.
func referenceFromSettings(t *testing.T, doc string) string {
	t.Helper()
	rows := map[string][]string{}
	for _, s := range config.Settings {
		rows[s.Section] = append(rows[s.Section], settingRow(s))
	}
	lines := strings.Split(doc, "\n")
	var out []string
	in, section := false, ""
	used := map[string]bool{}
	for i := 0; i < len(lines); i++ {
		line := lines[i]
		switch {
		case strings.Contains(line, "<!-- reference:start -->"):
			in = true
		case strings.Contains(line, "<!-- reference:end -->"):
			in = false
		case in && strings.HasPrefix(line, "### "):
			section = strings.TrimSpace(strings.TrimPrefix(line, "### "))
		case in && strings.HasPrefix(line, "| path |") && i+1 < len(lines):
			out = append(out, line, lines[i+1])
			i += 2
			for i < len(lines) && strings.HasPrefix(lines[i], "|") {
				i++
			}
			if rows[section] == nil {
				t.Errorf("config.md has a reference table under ### %s, for which config.Settings declares nothing", section)
			}
			out = append(out, rows[section]...)
			used[section] = true
			i--
			continue
		}
		out = append(out, line)
	}
	for sec := range rows {
		if !used[sec] {
			t.Errorf("config.Settings declares section %s, which config.md's reference has no table for: add a ### %s heading with a table", sec, sec)
		}
	}
	return envTable(t, strings.Join(out, "\n"))
}

// envTable returns doc with the rows of its overridable-settings table
// (between <!-- env:start --> and <!-- env:end -->) replaced by one row
// per config.EnvKeys() entry: the AAGTM_* variable and the flag.
func envTable(t *testing.T, doc string) string {
	t.Helper()
	start, end := strings.Index(doc, "<!-- env:start -->"), strings.Index(doc, "<!-- env:end -->")
	if start < 0 || end < start {
		t.Fatal("config.md: no <!-- env:start --> … <!-- env:end --> section")
		return doc
	}
	flagOf := map[string]string{}
	var envs []string
	for _, k := range config.EnvKeys() {
		env := config.EnvPrefix + "_" + strings.ToUpper(strings.ReplaceAll(k, ".", "_"))
		flagOf[env] = k
		envs = append(envs, env)
	}
	sort.Strings(envs)
	var rows []string
	for _, env := range envs {
		rows = append(rows, fmt.Sprintf("| `%s` | `--%s` |", env, flagOf[env]))
	}
	section := "<!-- env:start -->\n\n| variable | flag |\n|---|---|\n" + strings.Join(rows, "\n") + "\n\n"
	return doc[:start] + section + doc[end:]
}

// baseConfig sets only what a config requires. Documented defaults are
// checked by setting each explicitly on top of it: the effective config
// must not change.
const baseConfig = `
zone:
  name: gtm.test.
  ns:
    - name: ns1.gtm.test.
      address: 127.0.0.1
regions:
  local:
    subnets: [127.0.0.0/8]
databases:
  cache:
    members:
      - name: cache-1
        region: local
        addresses: [127.0.0.1]
        redis: "redis://127.0.0.1:6379"
nodes:
  - name: ns1
    report: 127.0.0.1:7411
security:
  insecure: true
`

func TestDocumentedDefaultsAreApplied(t *testing.T) {
	var base map[string]any
	if err := yaml.Unmarshal([]byte(baseConfig), &base); err != nil {
		t.Fatal(err)
	}
	want, err := effective(base)
	if err != nil {
		t.Fatalf("the base config does not load: %v", err)
	}
	checked := 0
	for _, r := range tableRows(t, "config.md", "reference") {
		m := codeCell.FindStringSubmatch(r.cells[2])
		if m == nil || strings.Contains(m[1], "<") {
			continue // "required", "none" or a default described in words
		}
		var val any
		if err := yaml.Unmarshal([]byte(m[1]), &val); err != nil {
			t.Errorf("%s: default %s is not a YAML value: %v", r.key, r.cells[2], err)
			continue
		}
		if _, isMap := val.(map[string]any); isMap || val == nil {
			val = strings.Trim(m[1], `"`) // aagtm:hb: reads as a mapping; "" as null
		}
		doc := deepCopy(base)
		if !setPath(doc, r.key, val) {
			continue // the base sets it, or it is inside a list the base does not have
		}
		got, err := effective(doc)
		switch {
		case err != nil:
			t.Errorf("config.md says %s defaults to %s, but a config setting that does not load: %v", r.key, r.cells[2], err)
		case got != want:
			t.Errorf("config.md says %s defaults to %s, but setting it changes the effective config", r.key, r.cells[2])
		}
		checked++
	}
	if checked < 40 {
		t.Errorf("checked only %d documented defaults: did the table format change?", checked)
	}
}

// effective loads a config document and returns its settings as JSON, with
// empty and absent lists made equal.
func effective(doc map[string]any) (string, error) {
	data, err := yaml.Marshal(doc)
	if err != nil {
		return "", err
	}
	cfg, err := config.Parse(data)
	if err != nil {
		return "", err
	}
	cfg.Source, cfg.Hash = "", ""
	out, err := json.Marshal(cfg)
	if err != nil {
		return "", err
	}
	return strings.ReplaceAll(string(out), ":null", ":[]"), nil
}

// setPath sets a documented path in a YAML document. <name> selects the
// mapping's only key and [] the list's first entry. It returns false when
// the value is already set or a list on the way is absent.
func setPath(doc map[string]any, path string, val any) bool {
	parts := strings.Split(strings.ReplaceAll(path, "[]", ".[]"), ".")
	cur := doc
	for i, p := range parts {
		last := i == len(parts)-1
		switch {
		case p == "":
			if last {
				return false
			}
		case p == "<name>":
			if len(cur) != 1 || last {
				return false
			}
			for _, v := range cur {
				next, ok := v.(map[string]any)
				if !ok {
					return false
				}
				cur = next
			}
		case p == "[]":
			return false // handled with the key before it
		case last:
			if _, set := cur[p]; set {
				return false
			}
			cur[p] = val
			return true
		case i+1 < len(parts) && parts[i+1] == "[]":
			list, ok := cur[p].([]any)
			if !ok || len(list) == 0 {
				return false
			}
			next, ok := list[0].(map[string]any)
			if !ok {
				return false
			}
			cur = next
			parts[i+1] = "" // skip the [] marker
		default:
			next, ok := cur[p].(map[string]any)
			if !ok {
				next = map[string]any{}
				cur[p] = next
			}
			cur = next
		}
	}
	return false
}

func deepCopy(v map[string]any) map[string]any {
	data, _ := yaml.Marshal(v)
	var out map[string]any
	_ = yaml.Unmarshal(data, &out)
	return out
}
