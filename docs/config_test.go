package docs_test

import (
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/aagtm/aagtm/config"
)

// configPaths reads config/raw.go, the YAML shape of the config file, and
// returns every setting's path in the notation of docs/config.md: nested
// mappings join with ".", map keys chosen by the user are "<name>", lists of
// mappings end in "[]". leaves are the settings that hold a value (scalars
// and lists of scalars); all adds the mappings and lists that contain them.
func configPaths(t *testing.T) (leaves, all map[string]bool) {
	t.Helper()
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, filepath.Join("..", "config", "raw.go"), nil, 0)
	if err != nil {
		t.Fatalf("parse config/raw.go: %v", err)
	}
	structs := map[string]*ast.StructType{}
	ast.Inspect(f, func(n ast.Node) bool {
		if ts, ok := n.(*ast.TypeSpec); ok {
			if st, ok := ts.Type.(*ast.StructType); ok {
				structs[ts.Name.Name] = st
			}
		}
		return true
	})
	if structs["rawConfig"] == nil {
		t.Fatal("config/raw.go has no rawConfig struct: update this test")
	}
	leaves, all = map[string]bool{}, map[string]bool{}
	var walk func(prefix string, st *ast.StructType)
	walk = func(prefix string, st *ast.StructType) {
		for _, field := range st.Fields.List {
			if field.Tag == nil {
				t.Errorf("%s: field %v has no tag", prefix, field.Names)
				continue
			}
			tag, err := strconv.Unquote(field.Tag.Value)
			if err != nil {
				t.Fatal(err)
			}
			key, _, _ := strings.Cut(reflect.StructTag(tag).Get("mapstructure"), ",")
			if key == "" {
				t.Errorf("%s: field %v has no mapstructure key", prefix, field.Names)
				continue
			}
			path := prefix + key
			switch typ := field.Type.(type) {
			case *ast.MapType:
				path += ".<name>"
				all[prefix+key] = true
				if st := structs[identName(typ.Value)]; st != nil {
					all[path] = true
					walk(path+".", st)
				} else {
					leaves[path] = true
				}
			case *ast.ArrayType:
				if st := structs[identName(typ.Elt)]; st != nil {
					all[path+"[]"] = true
					walk(path+"[].", st)
				} else {
					leaves[path] = true
				}
			default:
				if st := structs[identName(typ)]; st != nil {
					all[path] = true
					walk(path+".", st)
				} else {
					leaves[path] = true
				}
			}
		}
	}
	walk("", structs["rawConfig"])
	for p := range leaves {
		all[p] = true
	}
	if len(leaves) < 40 {
		t.Fatalf("found only %d settings in config/raw.go: is the walk broken?", len(leaves))
	}
	return leaves, all
}

func identName(e ast.Expr) string {
	if id, ok := e.(*ast.Ident); ok {
		return id.Name
	}
	return ""
}

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

func TestConfigReferenceCoversEveryKey(t *testing.T) {
	leaves, _ := configPaths(t)
	documented := map[string]bool{}
	for _, r := range tableRows(t, "config.md", "reference") {
		if documented[r.key] {
			t.Errorf("config.md documents %s twice", r.key)
		}
		documented[r.key] = true
	}
	var missing []string
	for p := range leaves {
		if !documented[p] {
			missing = append(missing, p)
		}
	}
	sort.Strings(missing)
	for _, p := range missing {
		t.Errorf("config.md does not document %s (a key of config/raw.go): add a row to its reference", p)
	}
}

func TestConfigReferenceHasNoUnknownPath(t *testing.T) {
	_, all := configPaths(t)
	for _, r := range tableRows(t, "config.md", "reference") {
		if !all[r.key] {
			t.Errorf("config.md documents %s, which config/raw.go does not have: fix or remove the row", r.key)
		}
		if len(r.cells) != 4 {
			t.Errorf("config.md row %s has %d cells, want 4 (path, type, default, meaning)", r.key, len(r.cells))
		}
	}
}

func TestEnvTableMatchesEnvKeys(t *testing.T) {
	want := map[string]string{}
	for _, k := range config.EnvKeys() {
		want[config.EnvPrefix+"_"+strings.ToUpper(strings.ReplaceAll(k, ".", "_"))] = k
	}
	got := map[string]bool{}
	for _, r := range tableRows(t, "config.md", "env") {
		got[r.key] = true
		key, ok := want[r.key]
		if !ok {
			t.Errorf("config.md lists %s, which overrides no setting", r.key)
			continue
		}
		if len(r.cells) < 2 || r.cells[1] != "`--"+key+"`" {
			t.Errorf("config.md: %s should pair with flag `--%s`, has %v", r.key, key, r.cells[1:])
		}
	}
	for env, key := range want {
		if !got[env] {
			t.Errorf("config.md does not list %s (overrides %s)", env, key)
		}
	}
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
