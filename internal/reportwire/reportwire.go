// Package reportwire holds what both ends of the report channel share: the
// credential files (tokens, certificates, CA bundles), the config
// fingerprint carried in reports and acks, and the transport limits both
// sides agree on. The agent (package probes) and the node's ingest (package
// ingest) use it; it opens no connection and decides nothing.
package reportwire

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/aagtm/aagtm/config"
)

// Limits both ends agree on.
const (
	// MaxMessageSize bounds one report or ack in bytes.
	MaxMessageSize = 1 << 20
	// KeepaliveTime is how often an agent pings an idle connection; nodes
	// permit pings half as far apart and no closer.
	KeepaliveTime = 10 * time.Second
)

// ErrNoProtection is returned when the report channel would be plaintext
// and unauthenticated without security.insecure.
var ErrNoProtection = errors.New("security: the report channel has no protection: " +
	"set security.tls (cert, key and ca) for mTLS, or agents[].token_file with security.tls " +
	"for per-agent bearer tokens over TLS; security.insecure: true allows plaintext (tests and demos only)")

// ReadToken reads a bearer token file: its content, surrounding whitespace
// trimmed. field names the setting in errors (e.g. "agents[0].token_file",
// "security.admin_token_file", "--token-file").
func ReadToken(field, path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("%s: %w", field, err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("%s: %s is empty; put the token in it", field, path)
	}
	return tok, nil
}

// LoadCA reads the report channel's PEM bundle (security.tls.ca) into a
// pool.
func LoadCA(path string) (*x509.CertPool, error) { return LoadCAFile("security.tls.ca", path) }

// LoadCAFile reads a PEM bundle into a pool; field names the setting in
// errors (e.g. "nodes[ns1].admin_tls.ca").
func LoadCAFile(field, path string) (*x509.CertPool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", field, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("%s: %s holds no PEM certificate", field, path)
	}
	return pool, nil
}

// LoadKeyPair loads this process's certificate and key.
func LoadKeyPair(t config.TLS) (tls.Certificate, error) {
	if t.Cert == "" || t.Key == "" {
		return tls.Certificate{}, errors.New("security.tls: cert and key must both be set")
	}
	c, err := tls.LoadX509KeyPair(t.Cert, t.Key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("security.tls: load cert %s and key %s: %w", t.Cert, t.Key, err)
	}
	return c, nil
}

// AgentURIScheme is the scheme of the URI SAN that names an agent in its
// certificate: aagtm-agent://<agent id>.
const AgentURIScheme = "aagtm-agent"

// CertIdentity returns the agent id a client certificate asserts, by one
// rule: the host of the first URI SAN with scheme aagtm-agent
// (aagtm-agent://agent-use) if the certificate has one, else the subject's
// common name. DNS SANs are ignored: they usually name the host, not the
// agent. It returns "" when the certificate names nobody.
func CertIdentity(c *x509.Certificate) string {
	for _, u := range c.URIs {
		if u.Scheme == AgentURIScheme {
			return u.Host
		}
	}
	return c.Subject.CommonName
}

// ConfigHash returns the hash agents put in reports and nodes in acks: the
// loader's cfg.Hash when set, else Fingerprint(cfg) (configs built in code).
func ConfigHash(cfg *config.Config) string {
	if cfg.Hash != "" {
		return cfg.Hash
	}
	return Fingerprint(cfg)
}

// Fingerprint returns a short fingerprint of the parts of cfg that agents
// and nodes must agree on: regions, databases and their members (Redis URLs
// without credentials), probe settings and agents (id and region).
// Node-local settings (listen addresses, certificates, token files, DNS)
// are left out, so two processes reading the same file on different hosts
// get the same hash.
func Fingerprint(cfg *config.Config) string {
	type member struct {
		Name, Database, Region, Redis, REST string
		BDB                                 int
	}
	type db struct {
		Name    string
		Members []member
	}
	type agent struct{ ID, Region string }
	h := struct {
		Regions   []string
		Databases []db
		Probes    config.Probes
		Agents    []agent
	}{Regions: cfg.RegionNames(), Probes: cfg.Probes}
	for _, a := range cfg.Agents {
		h.Agents = append(h.Agents, agent{ID: a.ID, Region: a.Region})
	}
	for _, d := range cfg.Databases {
		x := db{Name: d.Name}
		for _, m := range d.Members {
			x.Members = append(x.Members, member{
				Name: m.Name, Database: m.Database, Region: m.Region,
				Redis: stripUserinfo(m.Redis), REST: stripUserinfo(m.REST.URL), BDB: m.REST.BDB,
			})
		}
		h.Databases = append(h.Databases, x)
	}
	b, err := json.Marshal(h)
	if err != nil { // cannot happen: plain structs of strings and numbers
		panic("reportwire: hash config: " + err.Error())
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}

// stripUserinfo drops user and password from a URL, so that secrets never
// feed a hash that travels the network.
func stripUserinfo(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return ""
	}
	u.User = nil
	return u.String()
}
