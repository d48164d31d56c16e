package config

// The raw* types mirror the per-entry parts of the YAML file (lists and
// <name> mappings: zone.ns[], regions, databases, agents[], nodes[]) one to
// one, strings for durations and addresses, so that decoding never fails on
// a value: every value problem is reported by validation with its path and
// fix. Settings at fixed paths (zone.soa.*, probes.*, security.*, dns.*,
// ...) have no raw field: the generic pass (bind.go) writes them into the
// typed Config from Settings' Field.

type rawConfig struct {
	Zone      rawZone                `mapstructure:"zone"`
	Regions   map[string]rawRegion   `mapstructure:"regions"`
	Databases map[string]rawDatabase `mapstructure:"databases"`
	Agents    []rawAgent             `mapstructure:"agents"`
	Nodes     []rawNode              `mapstructure:"nodes"`
}

type rawZone struct {
	NS []rawNameServer `mapstructure:"ns"`
}

type rawNameServer struct {
	Name      string   `mapstructure:"name"`
	Address   string   `mapstructure:"address"`
	Addresses []string `mapstructure:"addresses"`
}

type rawRegion struct {
	Subnets []string `mapstructure:"subnets"`
	Prefer  []string `mapstructure:"prefer"`
}

type rawDatabase struct {
	Mode         string      `mapstructure:"mode"`
	Order        []string    `mapstructure:"order"`
	TTL          string      `mapstructure:"ttl"`
	LagTolerance string      `mapstructure:"lag_tolerance"`
	FailbackHold string      `mapstructure:"failback_hold"`
	WhenAllDown  string      `mapstructure:"when_all_down"`
	Members      []rawMember `mapstructure:"members"`
}

type rawMember struct {
	Name      string   `mapstructure:"name"`
	Region    string   `mapstructure:"region"`
	Addresses []string `mapstructure:"addresses"`
	CNAME     string   `mapstructure:"cname"`
	Redis     string   `mapstructure:"redis"`
	Port      *int     `mapstructure:"port"` // nil: the redis URL's port
	REST      rawREST  `mapstructure:"rest"`
}

type rawREST struct {
	URL                string `mapstructure:"url"`
	BDB                int    `mapstructure:"bdb"`
	LagTolerance       string `mapstructure:"lag_tolerance"`
	InsecureSkipVerify bool   `mapstructure:"insecure_skip_verify"`
}

type rawAgent struct {
	ID        string `mapstructure:"id"`
	Region    string `mapstructure:"region"`
	TokenFile string `mapstructure:"token_file"`
}

type rawNode struct {
	Name        string         `mapstructure:"name"`
	Report      string         `mapstructure:"report"`
	Listen      string         `mapstructure:"listen"`
	DNS         []string       `mapstructure:"dns"`
	Admin       string         `mapstructure:"admin"`
	AdminTLS    rawAdminTLS    `mapstructure:"admin_tls"`
	StateFile   string         `mapstructure:"state_file"`
	Sentinel    string         `mapstructure:"sentinel"`
	SentinelTLS rawSentinelTLS `mapstructure:"sentinel_tls"`
}

type rawSentinelTLS struct {
	Cert string `mapstructure:"cert"`
	Key  string `mapstructure:"key"`
}

type rawAdminTLS struct {
	Cert string `mapstructure:"cert"`
	Key  string `mapstructure:"key"`
	CA   string `mapstructure:"ca"`
}
