package testenv

import (
	"testing"
	"time"

	"github.com/aagtm/aagtm/config"
)

// The regions and agents of ReportConfig.
const (
	RegionUse = "us-east"
	RegionEuw = "eu-west"
	AgentUse  = "agent-use"
	AgentEuw  = "agent-euw"
)

// ReportConfig returns the config the report channel's tests share: two
// regions (RegionUse, RegionEuw), one agent in each (AgentUse, AgentEuw),
// one database "cache" with the given members, a 100ms probe interval with
// the ping check, and insecure reports.
func ReportConfig(members ...config.Member) *config.Config {
	for i := range members {
		members[i].Database = "cache"
	}
	return &config.Config{
		Regions:       []config.Region{{Name: RegionEuw}, {Name: RegionUse}},
		DefaultRegion: RegionUse,
		Databases: []config.Database{{
			Name: "cache", Host: "cache.gtm.example.com.", Mode: config.ModeNearest, Members: members,
		}},
		Probes: config.Probes{
			Interval:          100 * time.Millisecond,
			Timeout:           80 * time.Millisecond,
			Rise:              2,
			Fall:              2,
			Quorum:            config.Quorum{Kind: "majority"},
			StaleAfter:        time.Second,
			Checks:            []config.Check{config.CheckPing},
			KeyspaceKeys:      4,
			KeyTTL:            10 * time.Second,
			HeartbeatPrefix:   "aagtm:hb:",
			HeartbeatInterval: 20 * time.Millisecond,
		},
		Agents:   []config.Agent{{ID: AgentEuw, Region: RegionEuw}, {ID: AgentUse, Region: RegionUse}},
		Security: config.Security{Insecure: true},
	}
}

// Member returns a member of region probed at the redis URL url.
func Member(name, region, url string) config.Member {
	return config.Member{Name: name, Region: region, Redis: url}
}

// PKI is a test CA with a node certificate (for 127.0.0.1, CN ns1) and
// one agent's client certificate, on disk.
type PKI struct {
	CA                  *CA
	NodeCert, NodeKey   string
	AgentCert, AgentKey string
}

// NewPKI makes a CA and issues the node's certificate and agent's.
func NewPKI(t testing.TB, agent string) *PKI {
	t.Helper()
	p := &PKI{CA: NewCA(t, "aagtm test CA")}
	p.NodeCert, p.NodeKey = p.CA.Server(t, "ns1")
	p.AgentCert, p.AgentKey = p.CA.Client(t, agent)
	return p
}

// NodeSecurity is a node's mTLS settings: its certificate, and the CA that
// verifies agents.
func (p *PKI) NodeSecurity() config.Security {
	return config.Security{TLS: config.TLS{Cert: p.NodeCert, Key: p.NodeKey, CA: p.CA.Path}}
}

// AgentSecurity is the agent's mTLS settings: its certificate, and the CA
// that verifies the node.
func (p *PKI) AgentSecurity() config.Security {
	return config.Security{TLS: config.TLS{Cert: p.AgentCert, Key: p.AgentKey, CA: p.CA.Path}}
}
