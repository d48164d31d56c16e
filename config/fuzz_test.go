package config

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse feeds arbitrary text to the loader: it must return a config or
// an error, never panic, and a config it accepts must be usable.
func FuzzParse(f *testing.F) {
	f.Add([]byte(validYAML))
	files, _ := filepath.Glob("../examples/*.yaml")
	for _, file := range files {
		if b, err := os.ReadFile(file); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte("zone: {name: 1}\nregions: []\n"))
	f.Add([]byte("databases: {cache: {members: [{addresses: [::1]}]}}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse(data)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error text")
			}
			return
		}
		if len(cfg.Databases) == 0 || len(cfg.Regions) == 0 || len(cfg.Nodes) == 0 {
			t.Fatalf("accepted a config without databases, regions or nodes")
		}
		if _, ok := cfg.Region(cfg.DefaultRegion); !ok {
			t.Fatalf("accepted default_region %q that is not declared", cfg.DefaultRegion)
		}
		for _, d := range cfg.Databases {
			for _, m := range d.Members {
				if _, ok := cfg.Region(m.Region); !ok {
					t.Fatalf("accepted member %s in undeclared region %q", m.Name, m.Region)
				}
				if (len(m.Addresses) == 0) == (m.CNAME == "") {
					t.Fatalf("accepted member %s without exactly one of addresses/cname", m.Name)
				}
			}
		}
		if cfg.Probes.Timeout >= cfg.Probes.Interval || cfg.Probes.Rise < 1 || cfg.Probes.Fall < 1 {
			t.Fatalf("accepted invalid probe settings %+v", cfg.Probes)
		}
	})
}
