package config

import (
	"reflect"
	"slices"
	"strings"
	"testing"
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
