// Package reportwire holds what both ends of the report channel share: the
// credential files (tokens, certificates, CA bundles), the config
// fingerprint carried in reports and acks, and the transport limits both
// sides agree on. The credential files themselves are read by the config
// package (config.ReadToken, config.LoadKeyPair, config.LoadCA), whose
// validation loads them too. The agent (package probes) and the node's ingest (package
// ingest) use it; it opens no connection and decides nothing.
package reportwire

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
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
// with their passwords masked), probe settings and agents (id and region).
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
				Redis: config.RedactURL(m.Redis), REST: config.RedactURL(m.REST.URL), BDB: m.REST.BDB,
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
