package reportwire

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"net/url"
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

// Secrets never feed the fingerprint, which travels in every report and ack.
func TestFingerprintIgnoresPasswords(t *testing.T) {
	cfg := func(redis, rest string) *config.Config {
		return &config.Config{Databases: []config.Database{{Name: "cache", Members: []config.Member{{
			Name: "m", Redis: redis, REST: config.REST{URL: rest},
		}}}}}
	}
	cases := []struct {
		name        string
		redis, rest string
		same        bool
	}{
		{"redis password", "rediss://u:Other@h:1", "https://admin:Sup3r@h:9443", true},
		{"rest password", "rediss://u:Sup3r@h:1", "https://admin:Other@h:9443", true},
		{"member host", "rediss://u:Sup3r@h2:1", "https://admin:Sup3r@h:9443", false},
	}
	base := Fingerprint(cfg("rediss://u:Sup3r@h:1", "https://admin:Sup3r@h:9443"))
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := Fingerprint(cfg(tc.redis, tc.rest)); (got == base) != tc.same {
				t.Errorf("fingerprint equal = %v, want %v", got == base, tc.same)
			}
		})
	}
}
