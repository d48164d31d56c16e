package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestAgentTokenFiles(t *testing.T) {
	dir := t.TempDir()
	for f, content := range map[string]string{"use.token": "secret-use\n", "euw.token": "secret-euw\n", "copy.token": "secret-use", "empty.token": " \n"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write := func(agents string) string {
		y := strings.Replace(validYAML, "probes:", agents+"\nprobes:", 1)
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
	// The node's ingest refuses these at start; the loader (and so
	// `aagtm check`) refuses them too.
	refused := []struct {
		name, agents string
		environ      []string
		want         []string
	}{
		{"one token file for two agents", "agents:\n  - {id: a-use, region: us-east, token_file: use.token}\n  - {id: a-euw, region: eu-west, token_file: use.token}",
			nil, []string{"agents[1].token_file", "each agent needs its own token"}},
		{"one token in two files", "agents:\n  - {id: a-use, region: us-east, token_file: use.token}\n  - {id: a-euw, region: eu-west, token_file: copy.token}",
			nil, []string{"agents[1].token_file", `agent "a-euw" has the same token as agent "a-use"`}},
		{"empty token file", "agents:\n  - {id: a-use, region: us-east, token_file: empty.token}",
			nil, []string{"agents[0].token_file", "is empty"}},
		{"missing token file", "agents:\n  - {id: a-use, region: us-east, token_file: nowhere.token}",
			nil, []string{"agents[0].token_file", "fix the path or create the file"}},
		{"tokens in plaintext without insecure", "agents:\n  - {id: a-use, region: us-east, token_file: use.token}",
			[]string{"AAGTM_SECURITY_INSECURE=false"}, []string{"security: agents[].token_file tokens would travel in plaintext", "set tls {cert, key, ca}"}},
	}
	for _, tc := range refused {
		t.Run(tc.name+" is refused", func(t *testing.T) {
			_, err := Load(Options{Path: write(tc.agents), Environ: append([]string{}, tc.environ...)})
			for _, w := range tc.want {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("error %v, want it to contain %q", err, w)
				}
			}
		})
	}
}
