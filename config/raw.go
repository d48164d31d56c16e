package config

// The raw* types mirror the YAML file one to one (strings for durations and
// addresses) so that decoding never fails on a value: every value problem is
// reported by validation with its path and fix.

type rawConfig struct {
	Zone          rawZone                `mapstructure:"zone"`
	Regions       map[string]rawRegion   `mapstructure:"regions"`
	DefaultRegion string                 `mapstructure:"default_region"`
	Databases     map[string]rawDatabase `mapstructure:"databases"`
	Probes        rawProbes              `mapstructure:"probes"`
	Agents        []rawAgent             `mapstructure:"agents"`
	Nodes         []rawNode              `mapstructure:"nodes"`
	Security      rawSecurity            `mapstructure:"security"`
	DNS           rawDNS                 `mapstructure:"dns"`
}

type rawZone struct {
	Name string          `mapstructure:"name"`
	NS   []rawNameServer `mapstructure:"ns"`
	SOA  rawSOA          `mapstructure:"soa"`
}

type rawNameServer struct {
	Name      string   `mapstructure:"name"`
	Address   string   `mapstructure:"address"`
	Addresses []string `mapstructure:"addresses"`
}

type rawSOA struct {
	MBox        string `mapstructure:"mbox"`
	Serial      uint32 `mapstructure:"serial"`
	Refresh     string `mapstructure:"refresh"`
	Retry       string `mapstructure:"retry"`
	Expire      string `mapstructure:"expire"`
	NegativeTTL string `mapstructure:"negative_ttl"`
	TTL         string `mapstructure:"ttl"`
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

type rawProbes struct {
	Interval          string          `mapstructure:"interval"`
	Timeout           string          `mapstructure:"timeout"`
	Rise              int             `mapstructure:"rise"`
	Fall              int             `mapstructure:"fall"`
	Quorum            string          `mapstructure:"quorum"`
	StaleAfter        string          `mapstructure:"stale_after"`
	Checks            []string        `mapstructure:"checks"`
	ReadOnly          bool            `mapstructure:"read_only"`
	KeyspaceKeys      int             `mapstructure:"keyspace_keys"`
	KeyTTL            string          `mapstructure:"key_ttl"`
	HeartbeatPrefix   string          `mapstructure:"heartbeat_prefix"`
	HeartbeatInterval string          `mapstructure:"heartbeat_interval"`
	Command           rawCommandCheck `mapstructure:"command"`
}

type rawCommandCheck struct {
	Args   []string `mapstructure:"args"`
	Expect string   `mapstructure:"expect"`
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

type rawSecurity struct {
	TLS                  rawTLS `mapstructure:"tls"`
	TokenFile            string `mapstructure:"token_file"` // removed: refused with an error naming agents[].token_file
	Insecure             bool   `mapstructure:"insecure"`
	AdminTokenFile       string `mapstructure:"admin_token_file"`
	SentinelPasswordFile string `mapstructure:"sentinel_password_file"`
}

type rawTLS struct {
	Cert       string `mapstructure:"cert"`
	Key        string `mapstructure:"key"`
	CA         string `mapstructure:"ca"`
	ServerName string `mapstructure:"server_name"`
}

type rawDNS struct {
	MaxUDPSize            int          `mapstructure:"max_udp_size"`
	ReusePort             int          `mapstructure:"reuse_port"`
	RateLimit             rawRateLimit `mapstructure:"rate_limit"`
	CookieSecretFile      string       `mapstructure:"cookie_secret_file"`
	UDPAmplificationLimit int          `mapstructure:"udp_amplification_limit"`
	TCP                   rawDNSTCP    `mapstructure:"tcp"`
}

type rawDNSTCP struct {
	MaxConnections          int    `mapstructure:"max_connections"`
	MaxConnectionsPerSource int    `mapstructure:"max_connections_per_source"`
	ReadTimeout             string `mapstructure:"read_timeout"`
	IdleTimeout             string `mapstructure:"idle_timeout"`
	MaxQueries              int    `mapstructure:"max_queries"`
}

type rawRateLimit struct {
	ResponsesPerSecond int `mapstructure:"responses_per_second"`
	Slip               int `mapstructure:"slip"`
	IPv4PrefixLen      int `mapstructure:"ipv4_prefix_len"`
	IPv6PrefixLen      int `mapstructure:"ipv6_prefix_len"`
}
