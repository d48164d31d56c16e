package config

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// Config is the whole, validated configuration shared by every GTM node
// (`aagtm serve`) and every probe agent (`aagtm probe`). One file feeds both,
// so nodes and agents never disagree about members.
type Config struct {
	// Zone is the DNS zone the GTM is authoritative for.
	Zone Zone
	// Regions lists the declared regions, sorted by name.
	Regions []Region
	// DefaultRegion is the region of a client whose address matches no
	// region subnet.
	DefaultRegion string
	// Databases lists the databases, sorted by name; each answers
	// <name>.<zone>.
	Databases []Database
	// Probes holds the health-check settings shared by every agent.
	Probes Probes
	// Agents lists the probe agents (vantages), sorted by ID. When the file
	// declares none, one agent per region is implied, with ID = region name.
	Agents []Agent
	// Nodes lists the GTM nodes, sorted by name: where agents send reports,
	// and where operators' commands fan out.
	Nodes []Node
	// Security holds the report-channel and admin credentials.
	Security Security
	// DNS holds the DNS-server settings every node uses.
	DNS DNS

	// Source is the file the config was loaded from.
	Source string `json:"-"`
	// Hash identifies the effective settings; agents and nodes compare it
	// to notice that they run different configs. No secret feeds it.
	Hash string `json:"-"`
	// Warnings are problems that do not stop the config from working
	// (credential files other users can read); Options.Strict makes them
	// errors instead.
	Warnings []string `json:"-"`

	// file is the decoded file with overrides and defaults applied, keyed
	// like Settings' paths: what the reload rules compare.
	file map[string]any
}

// Zone is the authoritative zone: its apex SOA and NS set.
type Zone struct {
	// Name is the zone's FQDN, lower case with the trailing dot.
	Name string
	// NS lists the zone's name servers, in the order they are answered.
	NS []NameServer
	// SOA holds the apex SOA fields.
	SOA SOA
}

// NameServer is one NS record of the zone apex, with optional glue.
type NameServer struct {
	// Name is the server's FQDN, lower case with the trailing dot.
	Name string
	// Addresses are glue addresses, answered in the additional section when
	// Name is inside the zone.
	Addresses []netip.Addr
}

// SOA holds the zone apex SOA record fields (RFC 1035 §3.3.13).
type SOA struct {
	// MBox is the responsible person's mailbox as an FQDN
	// (hostmaster.example.com. for hostmaster@example.com).
	MBox string
	// Serial is the zone serial; 0 means "derive from the config".
	Serial uint32
	// Refresh, Retry and Expire are the secondary-server timers.
	Refresh time.Duration
	Retry   time.Duration
	Expire  time.Duration
	// NegativeTTL is the SOA MINIMUM field: how long resolvers cache
	// NXDOMAIN and NODATA answers (RFC 2308 §4).
	NegativeTTL time.Duration
	// TTL is the TTL of the SOA and NS records themselves.
	TTL time.Duration
}

// Region is one declared region: where clients and members live.
type Region struct {
	// Name is the region's name, e.g. us-east.
	Name string
	// Subnets are the client networks that belong to this region. When
	// subnets of several regions overlap, the longest prefix wins.
	// IPv4-mapped IPv6 prefixes are stored as the IPv4 prefix they map.
	Subnets []netip.Prefix
	// Prefer is this region's nearness order of regions, nearest first.
	// Regions it leaves out follow in declaration (name) order.
	Prefer []string
}

// Mode is how a database's answer is chosen.
type Mode string

// The answer modes.
const (
	// ModeNearest gives each client region its nearest eligible member.
	ModeNearest Mode = "nearest"
	// ModeFailover gives every client the first eligible member of one
	// global order.
	ModeFailover Mode = "failover"
	// ModeAll gives every eligible member, nearest first.
	ModeAll Mode = "all"
)

// AllDown is what a database answers when no member is eligible.
type AllDown string

// The when_all_down choices.
const (
	// AllDownAll fails open: every member is answered.
	AllDownAll AllDown = "all"
	// AllDownLast keeps the last good answer.
	AllDownLast AllDown = "last"
	// AllDownServfail answers SERVFAIL.
	AllDownServfail AllDown = "servfail"
)

// Database is one Active-Active database, answered under one hostname.
type Database struct {
	// Name is the database's name and the hostname's first label.
	Name string
	// Host is the hostname it answers: Name + "." + zone, lower case.
	Host string
	// Mode is nearest, failover or all.
	Mode Mode
	// Order is the global member order for failover mode; empty means the
	// members' order in the file.
	Order []string
	// TTL is the TTL of the answer records.
	TTL time.Duration
	// LagTolerance is the replication lag above which a member is lagging.
	LagTolerance time.Duration
	// FailbackHold is how long a recovered member must stay healthy and in
	// sync before it gets its traffic back.
	FailbackHold time.Duration
	// WhenAllDown decides the answer when no member is eligible.
	WhenAllDown AllDown
	// Members are the database's members, in the file's order.
	Members []Member
}

// Member is one Active-Active member (one region's instance of a database).
type Member struct {
	// Name is unique across all databases.
	Name string
	// Database is the owning database's name.
	Database string
	// Region is the region the member runs in.
	Region string
	// Addresses are answered as A/AAAA records. Exclusive with CNAME.
	Addresses []netip.Addr
	// CNAME is answered as a CNAME record (cloud endpoints). Exclusive with
	// Addresses. FQDN, lower case.
	CNAME string
	// Redis is the URL the probes connect to: redis:// or rediss://, with
	// optional user, password and database number.
	Redis string
	// Port is the port the Sentinel endpoint answers for the member: the
	// configured port, else the Redis URL's, else DefaultRedisPort.
	Port int
	// REST is the Redis Software lag-aware availability endpoint, used by
	// the rest check.
	REST REST
}

// REST addresses Redis Software's lag-aware availability API for a member.
type REST struct {
	// URL is the cluster's REST base URL, e.g. https://cluster:9443.
	URL string
	// BDB is the database uid in the cluster.
	BDB int
	// LagTolerance is availability_lag_tolerance_ms; default 100ms.
	LagTolerance time.Duration
	// InsecureSkipVerify disables TLS verification of the REST endpoint.
	InsecureSkipVerify bool
}

// Quorum says how many voting vantages must agree a member is down (the
// policy package's doc states the rule: majority, any, all or a number N,
// which decides only with at least N voting vantages).
type Quorum struct {
	// Kind is "majority", "any", "all" or "count".
	Kind string
	// Count is the number of vantages when Kind is "count".
	Count int
}

// parseText reads a quorum as written in the config (probes.quorum):
// majority, any, all, or a number of agents of at least 1.
func (q *Quorum) parseText(text string) error {
	word := strings.ToLower(strings.TrimSpace(text))
	switch word {
	case "majority", "any", "all":
		*q = Quorum{Kind: word}
		return nil
	}
	n, err := strconv.Atoi(word)
	switch {
	case err != nil:
		return fmt.Errorf("%q: use majority, any, all or a number of agents", text)
	case n < 1:
		return fmt.Errorf("%d: a number of agents must be at least 1", n)
	}
	*q = Quorum{Kind: "count", Count: n}
	return nil
}

// String returns the quorum as written in the config.
func (q Quorum) String() string {
	if q.Kind == "count" {
		return strconv.Itoa(q.Count)
	}
	return q.Kind
}

// Check names a health check.
type Check string

// The health checks.
const (
	CheckPing     Check = "ping"
	CheckEcho     Check = "echo"
	CheckKeyspace Check = "keyspace"
	CheckLag      Check = "lag"
	CheckREST     Check = "rest"
	CheckCommand  Check = "command"
)

// Probes holds the health-check settings every agent uses.
type Probes struct {
	// Interval is the time between probe rounds.
	Interval time.Duration
	// Timeout bounds each check of each member; must be below Interval.
	Timeout time.Duration
	// Rise is the number of consecutive passes that bring a member up.
	Rise int
	// Fall is the number of consecutive failures that bring a member down.
	Fall int
	// Quorum is how many voting vantages must say down.
	Quorum Quorum
	// StaleAfter is how long a silent vantage counts; after it the vantage
	// is absent, not down.
	StaleAfter time.Duration
	// Checks are the checks run each round.
	Checks []Check
	// ReadOnly disables every check that writes (keyspace, lag heartbeat).
	ReadOnly bool
	// KeyspaceKeys is how many probe keys spread over the hash slots when
	// the member does not speak the OSS Cluster API.
	KeyspaceKeys int
	// KeyTTL is the expiry of probe keys.
	KeyTTL time.Duration
	// HeartbeatPrefix prefixes heartbeat keys: <prefix>{<region>}.
	HeartbeatPrefix string
	// HeartbeatInterval is how often each agent writes its region's
	// heartbeat to its local members: the resolution of measured lag.
	HeartbeatInterval time.Duration
	// Command is the custom command check.
	Command CommandCheck
}

// CommandCheck is a custom command (or Lua script) with an expected reply.
type CommandCheck struct {
	// Args is the command and its arguments, e.g. [EVAL, "return 1", 0].
	Args []string
	// Expect is the expected reply, as text.
	Expect string
}

// Agent is one probe agent: a vantage bound to a region.
type Agent struct {
	// ID is the agent's identity; with mTLS it is what the client
	// certificate names: its URI SAN aagtm-agent://<id> if it has one, else
	// its common name.
	ID string
	// Region is the region the agent runs in and may report for.
	Region string
	// TokenFile holds the agent's own bearer token (agents[].token_file;
	// relative paths resolved against the config file's folder). A node
	// maps each token to exactly this agent; the agent sends it. Empty:
	// the agent authenticates by certificate (or not at all with
	// security.insecure).
	TokenFile string
}

// Node is one GTM node (`aagtm serve`).
type Node struct {
	// Name names the node in `dig CH TXT id.server` and logs.
	Name string
	// Report is the address agents dial to stream reports (host:port).
	Report string
	// Listen is the address the node's ingest listens on; default Report.
	Listen string
	// DNS are the addresses the node's DNS server listens on, UDP and TCP.
	DNS []string
	// Admin is the admin HTTP address; loopback by default.
	Admin string
	// AdminTLS, when enabled, serves the admin API over HTTPS.
	AdminTLS AdminTLS
	// StateFile is where the node persists overrides and last state.
	StateFile string
	// Sentinel is the address the node serves the Redis Sentinel protocol
	// on (host:port); empty: not served.
	Sentinel string
	// SentinelTLS, when enabled, serves the Sentinel endpoint over TLS.
	SentinelTLS SentinelTLS
}

// SentinelTLS is a node's Sentinel TLS setting (nodes[].sentinel_tls): the
// node serves with Cert and Key.
type SentinelTLS struct {
	// Cert and Key are the listener's certificate and key (PEM).
	Cert string
	Key  string
}

// Enabled reports whether the Sentinel endpoint is served over TLS.
func (t SentinelTLS) Enabled() bool { return t.Cert != "" || t.Key != "" }

// AdminLoopback reports whether the admin address is on loopback only
// (127.0.0.0/8, ::1 or localhost), where security.insecure may open
// mutations without a token.
func (n Node) AdminLoopback() bool {
	host, _, err := net.SplitHostPort(n.Admin)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// AdminTLS is a node's admin HTTPS setting (nodes[].admin_tls): the node
// serves with Cert and Key; the CLI verifies the node's certificate with CA
// (the system roots when CA is empty).
type AdminTLS struct {
	// Cert and Key are the node's admin certificate and key (PEM).
	Cert string
	Key  string
	// CA is the PEM bundle the CLI verifies the certificate with.
	CA string
}

// Enabled reports whether the admin API is served over HTTPS.
func (t AdminTLS) Enabled() bool { return t.Cert != "" || t.Key != "" || t.CA != "" }

// Security holds credentials for the report channel and the admin API.
type Security struct {
	// TLS holds certificate paths for mTLS between agents and nodes.
	TLS TLS
	// Insecure allows plaintext, unauthenticated reports (tests, demo).
	Insecure bool
	// AdminTokenFile holds the token that mutating admin calls need.
	AdminTokenFile string
	// SentinelPasswordFile holds the password Sentinel clients must give;
	// empty: none.
	SentinelPasswordFile string
}

// TLS holds PEM file paths.
type TLS struct {
	// Cert and Key are this process's certificate and key.
	Cert string
	Key  string
	// CA verifies the peer's certificate.
	CA string
	// ServerName overrides the name agents verify the node's certificate for.
	ServerName string
}

// Enabled reports whether mTLS is configured.
func (t TLS) Enabled() bool { return t.Cert != "" || t.Key != "" || t.CA != "" }

// DNS holds DNS-server settings.
type DNS struct {
	// MaxUDPSize caps the advertised EDNS0 UDP size honoured (default 1232).
	MaxUDPSize int
	// ReusePort is the number of UDP listeners per address with SO_REUSEPORT.
	ReusePort int
	// RateLimit is response rate limiting; zero disables it.
	RateLimit RateLimit
	// CookieSecretFile holds the DNS Cookies server secrets (RFC 7873,
	// RFC 9018), one 32-hex-digit secret per line: the first makes server
	// cookies, every one is accepted. "": a random secret per node.
	CookieSecretFile string
	// UDPAmplificationLimit caps a UDP reply to a query without a valid
	// server cookie at this multiple of the query's size; larger replies
	// become an empty TC reply. 0 disables the cap.
	UDPAmplificationLimit int
	// TCP bounds the TCP connections a node holds.
	TCP DNSTCP
}

// DNSTCP bounds a node's DNS-over-TCP connections.
type DNSTCP struct {
	// MaxConnections caps the connections open at once; more are reset.
	MaxConnections int
	// MaxConnectionsPerSource caps the connections of one IPv4 address or
	// IPv6 /64.
	MaxConnectionsPerSource int
	// ReadTimeout is how long a new connection may take to send its first
	// query.
	ReadTimeout time.Duration
	// IdleTimeout is how long a connection may wait between queries.
	IdleTimeout time.Duration
	// MaxQueries is the number of queries answered on one connection
	// before it is closed.
	MaxQueries int
}

// RateLimit is per-client-/24 and per-name response rate limiting.
type RateLimit struct {
	// ResponsesPerSecond per client network and name; 0 disables it.
	ResponsesPerSecond int
	// Slip answers every Nth limited query with TC instead of dropping it.
	Slip int
	// IPv4PrefixLen and IPv6PrefixLen group clients (default 24 and 56).
	IPv4PrefixLen int
	IPv6PrefixLen int
}

// Database returns the database named name.
func (c *Config) Database(name string) (*Database, bool) {
	for i := range c.Databases {
		if c.Databases[i].Name == name {
			return &c.Databases[i], true
		}
	}
	return nil, false
}

// Member returns the member named name and its database.
func (c *Config) Member(name string) (*Member, *Database, bool) {
	for i := range c.Databases {
		d := &c.Databases[i]
		for j := range d.Members {
			if d.Members[j].Name == name {
				return &d.Members[j], d, true
			}
		}
	}
	return nil, nil, false
}

// Region returns the region named name.
func (c *Config) Region(name string) (*Region, bool) {
	for i := range c.Regions {
		if c.Regions[i].Name == name {
			return &c.Regions[i], true
		}
	}
	return nil, false
}

// Node returns the node named name.
func (c *Config) Node(name string) (*Node, bool) {
	for i := range c.Nodes {
		if c.Nodes[i].Name == name {
			return &c.Nodes[i], true
		}
	}
	return nil, false
}

// Agent returns the agent with the given ID.
func (c *Config) Agent(id string) (*Agent, bool) {
	for i := range c.Agents {
		if c.Agents[i].ID == id {
			return &c.Agents[i], true
		}
	}
	return nil, false
}

// RegionNames returns the declared region names, sorted.
func (c *Config) RegionNames() []string {
	out := make([]string, len(c.Regions))
	for i, r := range c.Regions {
		out[i] = r.Name
	}
	return out
}

// MatchRegion returns the region whose subnet contains addr, choosing the
// longest matching prefix when subnets overlap, and that prefix. ok is false
// when no subnet matches (callers then use DefaultRegion).
func (c *Config) MatchRegion(addr netip.Addr) (region string, prefix netip.Prefix, ok bool) {
	addr = addr.Unmap()
	best := -1
	for _, r := range c.Regions {
		for _, p := range r.Subnets {
			if p.Contains(addr) && p.Bits() > best {
				best, region, prefix, ok = p.Bits(), r.Name, p, true
			}
		}
	}
	return region, prefix, ok
}

// ClientRegion is the region of a client at addr: the one rule that DNS
// (for the ECS or resolver address) and the Sentinel endpoint (for the
// connection's source address) both apply. It is the region of the
// longest subnet containing addr (MatchRegion), else DefaultRegion;
// matched is that subnet, the zero Prefix when the default applies.
func (c *Config) ClientRegion(addr netip.Addr) (region string, matched netip.Prefix) {
	if r, p, ok := c.MatchRegion(addr); ok {
		return r, p
	}
	return c.DefaultRegion, netip.Prefix{}
}

// ClientRegions lists every region ClientRegion can return: the declared
// regions in order, then DefaultRegion if it is not one of them (only in
// a config that was not validated).
func (c *Config) ClientRegions() []string {
	out := c.RegionNames()
	if _, ok := c.Region(c.DefaultRegion); !ok && c.DefaultRegion != "" {
		out = append(out, c.DefaultRegion)
	}
	return out
}

// Preference returns the nearness order of every declared region as seen
// from region from: its prefer list, then the remaining regions by name.
func (c *Config) Preference(from string) []string {
	out := make([]string, 0, len(c.Regions))
	seen := map[string]bool{}
	if r, ok := c.Region(from); ok {
		for _, p := range r.Prefer {
			if !seen[p] {
				out = append(out, p)
				seen[p] = true
			}
		}
	}
	if !seen[from] {
		if _, ok := c.Region(from); ok {
			out = append([]string{from}, out...)
			seen[from] = true
		}
	}
	for _, r := range c.Regions {
		if !seen[r.Name] {
			out = append(out, r.Name)
			seen[r.Name] = true
		}
	}
	return out
}

// HasAgentTokens reports whether any agent has a token file.
func (c *Config) HasAgentTokens() bool {
	for _, a := range c.Agents {
		if a.TokenFile != "" {
			return true
		}
	}
	return false
}
