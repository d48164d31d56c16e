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

// DNS server defaults; docs/config.md says why each is what it is.
const (
	// DefaultDNSResponsesPerSecond is the response rate limit per client
	// network and name: NSD's default (rrl-ratelimit 200).
	DefaultDNSResponsesPerSecond = 200
	// DefaultDNSUDPAmplificationLimit caps a UDP reply without a valid
	// server cookie at 4 times the query's size.
	DefaultDNSUDPAmplificationLimit = 4
	// DefaultDNSTCPMaxConnections caps a node's open TCP connections.
	DefaultDNSTCPMaxConnections = 1000
	// DefaultDNSTCPMaxConnectionsPerSource caps the TCP connections of one
	// IPv4 address or IPv6 /64.
	DefaultDNSTCPMaxConnectionsPerSource = 20
	// DefaultDNSTCPReadTimeout bounds the wait for a new connection's
	// first query.
	DefaultDNSTCPReadTimeout = 2 * time.Second
	// DefaultDNSTCPIdleTimeout bounds the wait between queries on a
	// connection.
	DefaultDNSTCPIdleTimeout = 10 * time.Second
	// DefaultDNSTCPMaxQueries is the number of queries one connection may
	// send before it is closed.
	DefaultDNSTCPMaxQueries = 100
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
	"dns.rate_limit.responses_per_second": DefaultDNSResponsesPerSecond,
	"dns.rate_limit.slip":                 2,
	"dns.rate_limit.ipv4_prefix_len":      24,
	"dns.rate_limit.ipv6_prefix_len":      56,
	"dns.cookie_secret_file":              "",
	"dns.udp_amplification_limit":         DefaultDNSUDPAmplificationLimit,
	"dns.tcp.max_connections":             DefaultDNSTCPMaxConnections,
	"dns.tcp.max_connections_per_source":  DefaultDNSTCPMaxConnectionsPerSource,
	"dns.tcp.read_timeout":                DefaultDNSTCPReadTimeout.String(),
	"dns.tcp.idle_timeout":                DefaultDNSTCPIdleTimeout.String(),
	"dns.tcp.max_queries":                 DefaultDNSTCPMaxQueries,
}
