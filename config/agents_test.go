package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestAgentTokenFiles(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"use.token", "euw.token"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("secret-"+f+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write := func(agents string) string {
		y := strings.Replace(validYAML, "probes:", agents+"\nprobes:", 1)
		y = strings.Replace(y, "insecure: true", "insecure: false\n  tls: {}", 1)
		p := filepath.Join(dir, "aagtm.yaml")
		if err := os.WriteFile(p, []byte(y), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}

	t.Run("relative to the config file, bound per agent", func(t *testing.T) {
		p := write("agents:\n  - {id: a-use, region: us-east, token_file: use.token}\n  - {id: a-euw, region: eu-west, token_file: " + filepath.Join(dir, "euw.token") + "}")
		cfg, err := Load(Options{Path: p, Environ: []string{}})
		if err != nil {
			t.Fatal(err)
		}
		a, _ := cfg.Agent("a-use")
		if want := filepath.Join(dir, "use.token"); a.TokenFile != want {
			t.Errorf("a-use token file %q, want %q", a.TokenFile, want)
		}
		if b, _ := cfg.Agent("a-euw"); b.TokenFile != filepath.Join(dir, "euw.token") {
			t.Errorf("a-euw token file %q", b.TokenFile)
		}
	})
	t.Run("one token file for two agents is refused", func(t *testing.T) {
		p := write("agents:\n  - {id: a-use, region: us-east, token_file: use.token}\n  - {id: a-euw, region: eu-west, token_file: use.token}")
		_, err := Load(Options{Path: p, Environ: []string{}})
		if err == nil || !strings.Contains(err.Error(), "agents[1].token_file") || !strings.Contains(err.Error(), "each agent needs its own token") {
			t.Fatalf("error %v, want agents[1].token_file shared with a-euw", err)
		}
	})
}
