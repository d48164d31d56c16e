package config

import (
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

// fileFormat walks rawConfig, the YAML shape of the file, and returns every
// path in Settings' notation: leaves hold values; all adds the mappings
// and lists that contain them.
func fileFormat(t *testing.T) (leaves, all map[string]bool) {
	leaves, all = map[string]bool{}, map[string]bool{}
	var walk func(prefix string, typ reflect.Type)
	walk = func(prefix string, typ reflect.Type) {
		for i := 0; i < typ.NumField(); i++ {
			f := typ.Field(i)
			key, _, _ := strings.Cut(f.Tag.Get("mapstructure"), ",")
			if key == "" {
				t.Errorf("%s%s has no mapstructure key", prefix, f.Name)
				continue
			}
			path, ft := prefix+key, f.Type
			switch ft.Kind() {
			case reflect.Map:
				all[path] = true
				path, ft = path+".<name>", ft.Elem()
			case reflect.Slice:
				if ft.Elem().Kind() == reflect.Struct {
					path, ft = path+"[]", ft.Elem()
				}
			}
			all[path] = true
			if ft.Kind() == reflect.Struct {
				walk(path+".", ft)
			} else {
				leaves[path] = true
			}
		}
	}
	walk("", reflect.TypeOf(rawConfig{}))
	return leaves, all
}

// Every key of the raw* structs (the per-entry parts of the file) is a
// per-entry setting declared in Settings, and every per-entry setting is a
// key of them; settings at fixed paths have a Field instead (newTable
// refuses one without), so they need no raw field.
func TestSettingsMatchTheFileFormat(t *testing.T) {
	leaves, all := fileFormat(t)
	if len(leaves) < 20 {
		t.Fatalf("found only %d keys in rawConfig: is the walk broken?", len(leaves))
	}
	for p := range leaves {
		s, ok := settings.byPath[p]
		switch {
		case !ok:
			t.Errorf("%s is a key of raw.go but not declared in Settings: add it to settings_table.go", p)
		case s.Field != nil:
			t.Errorf("%s has a Field and a raw.go field: delete the raw one, the generic pass binds it", p)
		}
	}
	for _, s := range Settings {
		perEntry := strings.Contains(s.Path, "[]") || strings.Contains(s.Path, "<name>")
		if perEntry && !all[s.Path] {
			t.Errorf("Settings declares %s, a per-entry setting raw.go does not have", s.Path)
		}
		if s.Section == "" || s.Type == "" || s.Doc == "" || s.DocDefault() == "" {
			t.Errorf("%s: section, type, default and doc are all required", s.Path)
		}
	}
}

func TestRestartNeeded(t *testing.T) {
	const twoNodes = "nodes:\n  - {name: ns1, report: 127.0.0.1:7411}\n  - {name: ns2, report: 127.0.0.2:7411}"
	base := strings.Replace(validYAML, "nodes:\n  - {name: ns1, report: 127.0.0.1:7411}", twoNodes, 1)
	cases := []struct {
		name, from, to string
		want           []string
	}{
		{"nothing changed", "", "", nil},
		{"probe settings apply live", "checks: [ping, lag]", "checks: [ping, lag]\n  interval: 2s\n  stale_after: 6s", nil},
		{"own DNS listener", "{name: ns1, report: 127.0.0.1:7411}", "{name: ns1, report: 127.0.0.1:7411, dns: [\"127.0.0.1:5300\"]}", []string{"nodes[].dns"}},
		{"own report address and admin", "{name: ns1, report: 127.0.0.1:7411}", "{name: ns1, report: 127.0.0.1:7412, admin: 127.0.0.1:9000}", []string{"nodes[].report", "nodes[].admin"}},
		{"another node's listener", "{name: ns2, report: 127.0.0.2:7411}", "{name: ns2, report: 127.0.0.2:7411, dns: [\"127.0.0.2:5300\"]}", nil},
		{"socket layout", "security:", "dns: {reuse_port: 2}\nsecurity:", []string{"dns.reuse_port"}},
	}
	old, err := Parse([]byte(base))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cur, err := Parse([]byte(strings.Replace(base, tc.from, tc.to, 1)))
			if err != nil {
				t.Fatal(err)
			}
			if got := RestartNeeded(old, cur, "ns1"); !slices.Equal(got, tc.want) {
				t.Errorf("RestartNeeded = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestAddingASettingIsOneRow proves config/doc.go's claim: a row added to
// a copy of the table, with nothing else edited, is a known key of the
// file, parsed, defaulted, range-checked, overridable by AAGTM_* and by
// flag, and watched by the reload rules. (docs/config.md's tables are
// rendered from the rows by `go test ./docs -run TestConfigReference
// -update`, which reads Settings the same way.)
func TestAddingASettingIsOneRow(t *testing.T) {
	var grace time.Duration // the typed field a real row would point into Config
	row := Setting{Section: "probes", Path: "probes.grace", Type: "duration", Value: "2s", Restart: true,
		Doc: "A test-only setting.", Field: func(*Config) any { return &grace }, Min: "1s", Max: "10s"}
	tbl, err := newTable(append(slices.Clone(Settings), row))
	if err != nil {
		t.Fatal(err)
	}
	withGrace := func(v string) string {
		return strings.Replace(validYAML, "checks: [ping, lag]", "checks: [ping, lag]\n  grace: "+v, 1)
	}
	flags := func(args ...string) *pflag.FlagSet {
		fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
		fs.String("probes.grace", "", "")
		if err := fs.Parse(args); err != nil {
			t.Fatal(err)
		}
		return fs
	}
	cases := []struct {
		name    string
		file    string
		opts    Options
		want    time.Duration
		wantErr string
	}{
		{"default when left out", validYAML, Options{}, 2 * time.Second, ""},
		{"from the file", withGrace("5s"), Options{}, 5 * time.Second, ""},
		{"from the environment", withGrace("5s"), Options{Environ: []string{"AAGTM_PROBES_GRACE=7s"}}, 7 * time.Second, ""},
		{"from a flag", withGrace("5s"), Options{Environ: []string{"AAGTM_PROBES_GRACE=7s"}, Flags: flags("--probes.grace=3s")}, 3 * time.Second, ""},
		{"below Min", withGrace("500ms"), Options{}, 0, "probes.grace: 500ms: use 1s to 10s (default 2s)"},
		{"above Max", withGrace("1m"), Options{}, 0, "probes.grace: 1m0s: use 1s to 10s (default 2s)"},
		{"not a duration", withGrace("soon"), Options{}, 0, `probes.grace: "soon" is not a duration: write it like 500ms`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			grace = 0
			if tc.opts.Environ == nil {
				tc.opts.Environ = []string{}
			}
			_, err := tbl.parse([]byte(tc.file), tc.opts, "")
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if grace != tc.want {
				t.Errorf("probes.grace = %s, want %s", grace, tc.want)
			}
		})
	}

	t.Run("reload rules", func(t *testing.T) {
		old, err := tbl.parse([]byte(validYAML), Options{Environ: []string{}}, "")
		if err != nil {
			t.Fatal(err)
		}
		cur, err := tbl.parse([]byte(withGrace("5s")), Options{Environ: []string{}}, "")
		if err != nil {
			t.Fatal(err)
		}
		if got := tbl.restartNeeded(old, cur, "ns1"); !slices.Equal(got, []string{"probes.grace"}) {
			t.Errorf("restartNeeded = %v, want [probes.grace]", got)
		}
	})
	t.Run("only the row makes it known", func(t *testing.T) {
		_, err := Parse([]byte(withGrace("5s")))
		if err == nil || !strings.Contains(err.Error(), "probes.grace: unknown setting") {
			t.Errorf("the shipped table accepted probes.grace: %v", err)
		}
		if _, ok := tbl.overridable()["probes.grace"]; !ok || row.DocDefault() != "`2s`" {
			t.Errorf("the row is not overridable or documented: overridable %v, default %q", ok, row.DocDefault())
		}
	})
}

// Declarations the generic pass cannot honour are refused when the table
// is built, so a bad row fails every test rather than a user's load.
func TestBadDeclarationsAreRefused(t *testing.T) {
	var n int
	var text string
	field := func(p any) func(*Config) any { return func(*Config) any { return p } }
	cases := []struct {
		name    string
		row     Setting
		wantErr string
	}{
		{"no field", Setting{Path: "probes.x", Type: "int", Value: 1}, "no Field"},
		{"field on a list entry", Setting{Path: "nodes[].x", Type: "int", Field: field(&n)}, "fixed path"},
		{"duration bound on an int", Setting{Path: "probes.x", Type: "int", Field: field(&n), Min: "1s"}, "only int and duration"},
		{"default of the wrong type", Setting{Path: "probes.x", Type: "int", Field: field(&n), Value: "many"}, "does not bind"},
		{"bounds on text", Setting{Path: "probes.x", Type: "string", Field: field(&text), Max: 3}, "only int and duration"},
		{"zero without bounds", Setting{Path: "probes.x", Type: "int", Field: field(&n), Zero: "off"}, "Zero"},
		{"declared twice", Setting{Path: "probes.interval", Type: "int", Field: field(&n)}, "declared twice"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := newTable(append(slices.Clone(Settings), tc.row))
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}
