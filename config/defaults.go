package config

import "time"

// Defaults, in one place. docs/config.md lists each with its field; a test
// keeps the two in step.
const (
	// DefaultTTL is a database's answer TTL.
	DefaultTTL = 5 * time.Second
	// DefaultLagTolerance is the lag above which a member is lagging.
	DefaultLagTolerance = 500 * time.Millisecond
	// DefaultFailbackHold is how long a recovered member waits for traffic.
	DefaultFailbackHold = 30 * time.Second
	// DefaultMode is a database's answer mode.
	DefaultMode = ModeNearest
	// DefaultWhenAllDown fails open.
	DefaultWhenAllDown = AllDownAll
	// DefaultRESTLagTolerance is availability_lag_tolerance_ms of the rest check.
	DefaultRESTLagTolerance = 100 * time.Millisecond
	// DefaultDNSListen is where a node's DNS server listens.
	DefaultDNSListen = ":53"
	// DefaultAdminListen is where a node's admin HTTP API listens: loopback.
	DefaultAdminListen = "127.0.0.1:8053"
)

// defaultValues are the settings viper falls back to, keyed by their path in
// the file. They also make these keys settable from AAGTM_* variables
// (AAGTM_PROBES_INTERVAL=250ms).
var defaultValues = map[string]any{
	"zone.soa.refresh":                    "1h",
	"zone.soa.retry":                      "10m",
	"zone.soa.expire":                     "168h",
	"zone.soa.negative_ttl":               "5s",
	"zone.soa.ttl":                        "1h",
	"zone.soa.serial":                     0,
	"zone.soa.mbox":                       "",
	"default_region":                      "",
	"probes.interval":                     "1s",
	"probes.timeout":                      "500ms",
	"probes.rise":                         2,
	"probes.fall":                         2,
	"probes.quorum":                       "majority",
	"probes.stale_after":                  "3s",
	"probes.checks":                       []string{"ping", "keyspace", "lag"},
	"probes.read_only":                    false,
	"probes.keyspace_keys":                16,
	"probes.key_ttl":                      "60s",
	"probes.heartbeat_prefix":             "aagtm:hb:",
	"probes.heartbeat_interval":           "100ms",
	"security.insecure":                   false,
	"security.token_file":                 "",
	"security.admin_token_file":           "",
	"security.tls.cert":                   "",
	"security.tls.key":                    "",
	"security.tls.ca":                     "",
	"security.tls.server_name":            "",
	"dns.max_udp_size":                    1232,
	"dns.reuse_port":                      1,
	"dns.rate_limit.responses_per_second": 0,
	"dns.rate_limit.slip":                 2,
	"dns.rate_limit.ipv4_prefix_len":      24,
	"dns.rate_limit.ipv6_prefix_len":      56,
}
