package probes

import (
	"github.com/aagtm/aagtm/config"
	"github.com/aagtm/aagtm/internal/reportwire"
)

// configHash is the hash agents put in reports: the loader's cfg.Hash when
// set, else ConfigHash (configs built in code).
func configHash(cfg *config.Config) string { return reportwire.ConfigHash(cfg) }

// ConfigHash returns a short fingerprint of the parts of cfg that agents and
// nodes must agree on: regions, databases and their members (Redis URLs
// with passwords masked), probe settings and agents (id and region).
// Node-local settings (listen addresses, certificates, token files, DNS) are
// left out, so two processes reading the same file on different hosts get
// the same hash. Reports and acks carry cfg.Hash (set by the config loader)
// when it is set and this hash otherwise; a mismatch is logged on both
// sides.
func ConfigHash(cfg *config.Config) string { return reportwire.Fingerprint(cfg) }
