package reportwire

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aagtm/aagtm/config"
)

func TestCertIdentity(t *testing.T) {
	uri := func(s string) *url.URL {
		u, err := url.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	cases := []struct {
		name string
		cert x509.Certificate
		want string
	}{
		{"CN only", x509.Certificate{Subject: pkix.Name{CommonName: "agent-use"}}, "agent-use"},
		{"URI SAN wins over CN", x509.Certificate{Subject: pkix.Name{CommonName: "host-1"}, URIs: []*url.URL{uri("aagtm-agent://agent-euw")}}, "agent-euw"},
		{"other URI schemes are ignored", x509.Certificate{Subject: pkix.Name{CommonName: "agent-use"}, URIs: []*url.URL{uri("spiffe://x/agent-euw")}}, "agent-use"},
		{"DNS SANs are ignored", x509.Certificate{Subject: pkix.Name{CommonName: "agent-use"}, DNSNames: []string{"host-1.example.net"}}, "agent-use"},
		{"nothing", x509.Certificate{}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := CertIdentity(&tc.cert); got != tc.want {
				t.Errorf("CertIdentity = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestReadToken(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good")
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(good, []byte("  s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if tok, err := ReadToken("agents[0].token_file", good); err != nil || tok != "s3cret" {
		t.Errorf("ReadToken = %q, %v", tok, err)
	}
	for _, p := range []string{empty, filepath.Join(dir, "missing")} {
		if _, err := ReadToken("agents[0].token_file", p); err == nil || !strings.HasPrefix(err.Error(), "agents[0].token_file: ") {
			t.Errorf("ReadToken(%s) error %v, want one naming the field", p, err)
		}
	}
}

// Token files are node-local: they do not change the config hash.
func TestFingerprintIgnoresTokenFiles(t *testing.T) {
	cfg := &config.Config{Agents: []config.Agent{{ID: "a", Region: "r"}}}
	h := Fingerprint(cfg)
	cfg.Agents[0].TokenFile = "/etc/aagtm/a.token"
	if Fingerprint(cfg) != h {
		t.Error("a token file path changed the fingerprint")
	}
	cfg.Agents[0].Region = "s"
	if Fingerprint(cfg) == h {
		t.Error("an agent's region change kept the fingerprint")
	}
}
