package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRedactURL(t *testing.T) {
	cases := []struct{ in, want string }{
		{"rediss://user:hunter2@h:1", "rediss://user:xxxxx@h:1"},
		{"redis://:hunter2@h:1/0", "redis://:xxxxx@h:1/0"},
		{"redis://h:1", "redis://h:1"},
		{"rediss://user@h:1", "rediss://user@h:1"},
		// Text that is not a URL is masked all the same.
		{"redis://default:Sup3r%Secret@host:x", "redis://default:xxxxx@host:x"},
		{"redis://default:pa/ss@word@host:1", "redis://default:xxxxx@host:1"},
		{"default:hunter2@host:1", "default:xxxxx@host:1"},
		{"https://admin:hunter2@cluster:9443", "https://admin:xxxxx@cluster:9443"},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			if got := RedactURL(tc.in); got != tc.want {
				t.Errorf("RedactURL(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

// A password never appears in a load error, whatever is wrong with its
// URL, nor in what feeds the config hash (published in /v1/status and acks).
func TestPasswordsNeverInErrorsOrHash(t *testing.T) {
	const secret = "Sup3r%Secret"
	withURL := func(u string) string {
		return strings.Replace(validYAML, `"redis://10.1.0.10:12000"`, `"`+u+`"`, 1)
	}
	malformed := []struct{ name, url, want string }{
		{"bad escape and port", "redis://default:" + secret + "@host:x", "members[0].redis"},
		{"slash in password", "redis://default:" + secret + "/x@host:1", "members[0].redis"},
		{"wrong scheme", "http://default:" + secret + "@host:1", "members[0].redis"},
		{"no scheme", "default:" + secret + "@host:1", "members[0].redis"},
		{"bad database number", "redis://default:Sup3rSecret@host:1/db", "invalid database number"},
		{"unknown option", "redis://default:Sup3rSecret@host:1/0?nope=1", "unexpected option"},
	}
	for _, tc := range malformed {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(withURL(tc.url)))
			if err == nil {
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v does not name %s", err, tc.want)
			}
			if strings.Contains(err.Error(), "Sup3r") {
				t.Errorf("error shows the password: %v", err)
			}
		})
	}

	a, err := Parse([]byte(withURL("rediss://default:Sup3rSecret@h:1")))
	if err != nil {
		t.Fatal(err)
	}
	b, err := Parse([]byte(withURL("rediss://default:0therSecret@h:1")))
	if err != nil {
		t.Fatal(err)
	}
	if in := string(hashInput(a)); strings.Contains(in, "Sup3rSecret") || !strings.Contains(in, "rediss://default:xxxxx@h:1") {
		t.Errorf("hash input shows the password or lost the member:\n%s", in)
	}
	if a.Hash != b.Hash {
		t.Error("the password changed the config hash: it feeds it")
	}
	c, err := Parse([]byte(withURL("rediss://default:Sup3rSecret@h2:1")))
	if err != nil {
		t.Fatal(err)
	}
	if c.Hash == a.Hash {
		t.Error("a member's host left the hash unchanged")
	}
}

// Credential files other users can read: a warning, an error with Strict.
func TestCredentialFilePermissions(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("tok-"+name), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil { // past the umask
			t.Fatal(err)
		}
		return p
	}
	cases := []struct {
		name    string
		mode    os.FileMode
		setting string // YAML inserted into validYAML
		field   string
		warn    bool
	}{
		{"agent token 0600", 0o600, "agents: [{id: a, region: us-east, token_file: %s}]", "agents[0].token_file", false},
		{"agent token 0400", 0o400, "agents: [{id: a, region: us-east, token_file: %s}]", "agents[0].token_file", false},
		{"agent token 0640", 0o640, "agents: [{id: a, region: us-east, token_file: %s}]", "agents[0].token_file", true},
		{"agent token 0644", 0o644, "agents: [{id: a, region: us-east, token_file: %s}]", "agents[0].token_file", true},
		{"admin token 0604", 0o604, "security: {insecure: true, admin_token_file: %s}", "security.admin_token_file", true},
		{"admin token 0600", 0o600, "security: {insecure: true, admin_token_file: %s}", "security.admin_token_file", false},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := write(strings.ReplaceAll(tc.name, " ", "-"), tc.mode)
			y := validYAML
			if strings.HasPrefix(tc.setting, "security:") {
				y = strings.Replace(y, "security:\n  insecure: true\n", "", 1)
			}
			y += strings.Replace(tc.setting, "%s", f, 1) + "\n"
			p := filepath.Join(dir, "c"+string(rune('a'+i))+".yaml")
			if err := os.WriteFile(p, []byte(y), 0o600); err != nil {
				t.Fatal(err)
			}
			cfg, err := Load(Options{Path: p, Environ: []string{}})
			if err != nil {
				t.Fatalf("refused without strict: %v", err)
			}
			warned := len(cfg.Warnings) == 1 && strings.HasPrefix(cfg.Warnings[0], tc.field+": ") && strings.Contains(cfg.Warnings[0], "chmod 600 "+f)
			if warned != tc.warn || (!tc.warn && len(cfg.Warnings) > 0) {
				t.Errorf("warnings %q, want a warning naming %s: %v", cfg.Warnings, tc.field, tc.warn)
			}
			_, err = Load(Options{Path: p, Environ: []string{}, Strict: true})
			if tc.warn != (err != nil) {
				t.Errorf("strict load error %v, want an error: %v", err, tc.warn)
			}
			if err != nil && !strings.Contains(err.Error(), tc.field) {
				t.Errorf("strict error %v does not name %s", err, tc.field)
			}
		})
	}
}
