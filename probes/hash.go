package probes

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/url"

	"github.com/aagtm/aagtm/config"
)

// configHash is the hash agents put in reports and nodes in acks: the
// loader's cfg.Hash when set, else ConfigHash (configs built in code).
func configHash(cfg *config.Config) string {
	if cfg.Hash != "" {
		return cfg.Hash
	}
	return ConfigHash(cfg)
}

// ConfigHash returns a short fingerprint of the parts of cfg that agents and
// nodes must agree on: regions, databases and their members (Redis URLs
// without credentials), probe settings and agents. Node-local settings
// (listen addresses, certificates, DNS) are left out, so two processes
// reading the same file on different hosts get the same hash. Reports and
// acks carry cfg.Hash (set by the config loader) when it is set and this
// hash otherwise; a mismatch is logged on both sides.
func ConfigHash(cfg *config.Config) string {
	type member struct {
		Name, Database, Region, Redis, REST string
		BDB                                 int
	}
	type db struct {
		Name    string
		Members []member
	}
	h := struct {
		Regions   []string
		Databases []db
		Probes    config.Probes
		Agents    []config.Agent
	}{Regions: cfg.RegionNames(), Probes: cfg.Probes, Agents: cfg.Agents}
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
		panic("probes: hash config: " + err.Error())
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
