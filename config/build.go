package config

import (
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// problems collects validation errors, each prefixed with its field path.
type problems []error

func (p *problems) add(path, format string, args ...any) {
	*p = append(*p, fmt.Errorf("%s: %s", path, fmt.Sprintf(format, args...)))
}

// fqdn canonicalises a domain name: lower case, trailing dot.
func (p *problems) fqdn(path, s string) string {
	name := strings.ToLower(strings.TrimSpace(s))
	if name == "" {
		p.add(path, "missing: give a domain name such as gtm.example.com.")
		return ""
	}
	if !strings.HasSuffix(name, ".") {
		name += "."
	}
	if !validDomain(name) {
		p.add(path, "%q is not a valid domain name: use letters, digits and hyphens in dot-separated labels of at most 63 characters", s)
	}
	return name
}

func validDomain(name string) bool {
	if len(name) > 254 || name == "." {
		return false
	}
	for _, label := range strings.Split(strings.TrimSuffix(name, "."), ".") {
		if !validLabel(label) && !(label == "*") {
			return false
		}
	}
	return true
}

// validLabel accepts a hostname label (letters, digits, hyphen, underscore).
func validLabel(l string) bool {
	if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
		return false
	}
	for _, r := range l {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}

func (p *problems) hostPort(path, s string, required bool) string {
	s = strings.TrimSpace(s)
	if s == "" {
		if required {
			p.add(path, "missing: give host:port, e.g. 127.0.0.1:7411")
		}
		return ""
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		p.add(path, "%q is not host:port: write it like 10.0.0.5:7411 or [::1]:7411", s)
		return s
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		p.add(path, "port %q is not a number from 0 to 65535", port)
	}
	_ = host
	return s
}

// addErr adds an error that already names its field.
func (p *problems) addErr(err error) { *p = append(*p, err) }

// readable reports whether file can be opened, adding a problem naming
// path when it cannot.
func (p *problems) readable(path, file string) bool {
	f, err := os.Open(file)
	if err != nil {
		p.add(path, "cannot read %s: %v; fix the path or create the file", file, err)
		return false
	}
	f.Close()
	return true
}

// keyPair checks, when both are set, that the cert and key files of the
// TLS block at path can be read and load as a pair, as the listener will
// load them at start.
func (p *problems) keyPair(path, certFile, keyFile string) {
	cert := certFile != "" && p.readable(path+".cert", certFile)
	key := keyFile != "" && p.readable(path+".key", keyFile)
	if cert && key {
		if _, err := tls.LoadX509KeyPair(certFile, keyFile); err != nil {
			p.add(path, "cert %s and key %s do not load as a pair: %v", certFile, keyFile, err)
		}
	}
}

// build converts the decoded file into the typed Config, validating every
// field: the generic pass binds the settings at fixed paths from doc, the
// build* functions the per-entry sections from raw, then check the rules
// that span settings.
func (t *table) build(raw *rawConfig, doc map[string]any, baseDir string) (*Config, []error) {
	var p problems
	cfg := &Config{}
	t.bind(&p, cfg, doc, baseDir)
	buildZone(&p, raw, cfg)
	buildRegions(&p, raw, cfg)
	buildAgents(&p, raw, cfg, baseDir)
	buildProbes(&p, cfg)
	buildDatabases(&p, raw, cfg)
	buildNodes(&p, raw, cfg, baseDir)
	buildSecurity(&p, cfg)
	buildDNS(&p, cfg)
	return cfg, p
}

func buildZone(p *problems, raw *rawConfig, cfg *Config) {
	z := &cfg.Zone
	z.Name = p.fqdn("zone.name", z.Name)
	if len(raw.Zone.NS) == 0 {
		p.add("zone.ns", "no name servers: list at least one, e.g. [{name: ns1.%s, address: 192.0.2.53}]", orExample(z.Name))
	}
	seen := map[string]bool{}
	for i, ns := range raw.Zone.NS {
		path := fmt.Sprintf("zone.ns[%d]", i)
		n := NameServer{Name: p.fqdn(path+".name", ns.Name)}
		if seen[n.Name] && n.Name != "" {
			p.add(path+".name", "%s is listed twice: remove the duplicate", n.Name)
		}
		seen[n.Name] = true
		addrs := ns.Addresses
		if ns.Address != "" {
			addrs = append([]string{ns.Address}, addrs...)
		}
		for j, a := range addrs {
			ip, err := netip.ParseAddr(strings.TrimSpace(a))
			if err != nil {
				p.add(fmt.Sprintf("%s.addresses[%d]", path, j), "%q is not an IP address", a)
				continue
			}
			n.Addresses = append(n.Addresses, ip.Unmap())
		}
		if z.Name != "" && inZone(n.Name, z.Name) && len(n.Addresses) == 0 {
			p.add(path, "%s is inside the zone, so it needs glue: add address: <its IP>", n.Name)
		}
		z.NS = append(z.NS, n)
	}
	if z.SOA.MBox == "" {
		z.SOA.MBox = "hostmaster." + z.Name
	} else {
		z.SOA.MBox = p.fqdn("zone.soa.mbox", strings.Replace(z.SOA.MBox, "@", ".", 1))
	}
}

func orExample(zone string) string {
	if zone == "" {
		return "gtm.example.com."
	}
	return zone
}

// inZone reports whether name is zone or below it (both canonical FQDNs).
func inZone(name, zone string) bool {
	return name == zone || strings.HasSuffix(name, "."+zone)
}

func buildRegions(p *problems, raw *rawConfig, cfg *Config) {
	if len(raw.Regions) == 0 {
		p.add("regions", "no regions: declare at least one, e.g. us-east: {subnets: [10.1.0.0/16]}")
	}
	names := sortedKeys(raw.Regions)
	declared := map[string]bool{}
	for _, n := range names {
		declared[n] = true
	}
	owner := map[netip.Prefix]string{}
	for _, name := range names {
		r := raw.Regions[name]
		path := "regions." + name
		if !validLabel(name) {
			p.add(path, "region name %q: use letters, digits and hyphens", name)
		}
		reg := Region{Name: name}
		for i, s := range r.Subnets {
			sp := fmt.Sprintf("%s.subnets[%d]", path, i)
			pfx, err := netip.ParsePrefix(strings.TrimSpace(s))
			if err != nil {
				p.add(sp, "%q is not a CIDR prefix: write it like 10.1.0.0/16 or 2001:db8::/32", s)
				continue
			}
			if pfx.Masked() != pfx {
				p.add(sp, "%s has host bits set: did you mean %s?", s, pfx.Masked())
				continue
			}
			if pfx.Addr().Is4In6() {
				// An IPv4-mapped prefix (masked, so at least /96) means
				// the IPv4 clients it maps: ClientRegion compares
				// addresses unmapped.
				pfx = netip.PrefixFrom(pfx.Addr().Unmap(), pfx.Bits()-96)
			}
			if other, dup := owner[pfx]; dup {
				p.add(sp, "%s is also a subnet of region %s: an identical prefix cannot pick a region; keep it in one", pfx, other)
				continue
			}
			owner[pfx] = name
			reg.Subnets = append(reg.Subnets, pfx)
		}
		for i, pr := range r.Prefer {
			pr = strings.ToLower(strings.TrimSpace(pr))
			if !declared[pr] {
				p.add(fmt.Sprintf("%s.prefer[%d]", path, i), "%q is not a declared region (declared: %s)", pr, strings.Join(names, ", "))
				continue
			}
			reg.Prefer = append(reg.Prefer, pr)
		}
		cfg.Regions = append(cfg.Regions, reg)
	}
	def := strings.ToLower(strings.TrimSpace(cfg.DefaultRegion))
	switch {
	case def == "" && len(names) == 1:
		def = names[0]
	case def == "" && len(names) > 1:
		p.add("default_region", "missing: name the region of clients that match no subnet (one of: %s)", strings.Join(names, ", "))
	case def != "" && !declared[def]:
		p.add("default_region", "%q is not a declared region (declared: %s)", def, strings.Join(names, ", "))
	}
	cfg.DefaultRegion = def
}

// buildAgents resolves relative token_file paths against baseDir, like the
// security files.
func buildAgents(p *problems, raw *rawConfig, cfg *Config, baseDir string) {
	if len(raw.Agents) == 0 {
		for _, r := range cfg.Regions {
			cfg.Agents = append(cfg.Agents, Agent{ID: r.Name, Region: r.Name})
		}
		return
	}
	seen := map[string]bool{}
	for i, a := range raw.Agents {
		path := fmt.Sprintf("agents[%d]", i)
		ag := Agent{ID: strings.TrimSpace(a.ID), Region: strings.ToLower(strings.TrimSpace(a.Region)), TokenFile: a.TokenFile}
		if ag.TokenFile != "" && !filepath.IsAbs(ag.TokenFile) && baseDir != "" {
			ag.TokenFile = filepath.Join(baseDir, ag.TokenFile)
		}
		if ag.ID == "" {
			p.add(path+".id", "missing: give the agent a unique id (with mTLS, what its certificate names: URI SAN aagtm-agent://<id>, else CN)")
		} else if seen[ag.ID] {
			p.add(path+".id", "%q is used twice: agent ids must be unique", ag.ID)
		}
		seen[ag.ID] = true
		if _, ok := cfg.Region(ag.Region); !ok {
			p.add(path+".region", "%q is not a declared region (declared: %s)", a.Region, strings.Join(cfg.RegionNames(), ", "))
		}
		cfg.Agents = append(cfg.Agents, ag)
	}
	// Paths name agents by their index in the file, before sorting.
	files := map[string]string{}  // token file → agent id
	tokens := map[string]string{} // token → agent id
	for i, a := range cfg.Agents {
		if a.TokenFile == "" {
			continue
		}
		field := fmt.Sprintf("agents[%d].token_file", i)
		if other, ok := files[a.TokenFile]; ok {
			p.add(field, "%s is also the token file of agent %q: each agent needs its own token, so a node knows who reports",
				a.TokenFile, other)
			continue
		}
		files[a.TokenFile] = a.ID
		if !p.readable(field, a.TokenFile) {
			continue
		}
		tok, err := ReadToken(field, a.TokenFile)
		if err != nil {
			p.addErr(err)
			continue
		}
		if other, ok := tokens[tok]; ok {
			p.add(field, "agent %q has the same token as agent %q: give each agent its own token, so a node knows who reports", a.ID, other)
		}
		tokens[tok] = a.ID
	}
	sort.Slice(cfg.Agents, func(i, j int) bool { return cfg.Agents[i].ID < cfg.Agents[j].ID })
}

// buildProbes checks the probe rules that span settings; the generic pass
// has parsed, defaulted and range-checked each one.
func buildProbes(p *problems, cfg *Config) {
	pr := &cfg.Probes
	if pr.Timeout > 0 && pr.Timeout >= pr.Interval {
		p.add("probes.timeout", "%s must be shorter than probes.interval (%s): lower the timeout or raise the interval", pr.Timeout, pr.Interval)
	}
	if pr.StaleAfter <= pr.Interval {
		p.add("probes.stale_after", "%s must be longer than probes.interval (%s): 3× the interval is a good value", pr.StaleAfter, pr.Interval)
	}
	if pr.HeartbeatInterval > pr.Interval {
		p.add("probes.heartbeat_interval", "%s: use 10ms up to probes.interval (%s); 100ms is a good value", pr.HeartbeatInterval, pr.Interval)
	}
	if pr.Quorum.Kind == "count" && pr.Quorum.Count > len(cfg.Agents) {
		p.add("probes.quorum", "%d: must be from 1 to the number of agents (%d)", pr.Quorum.Count, len(cfg.Agents))
	}
	if pr.HasCheck(CheckCommand) && len(pr.Command.Args) == 0 {
		p.add("probes.command.args", "the command check is on but no command is set: e.g. args: [PING], expect: PONG")
	}
}

// HasCheck reports whether the check is enabled.
func (p Probes) HasCheck(c Check) bool {
	for _, k := range p.Checks {
		if k == c {
			return true
		}
	}
	return false
}

func buildDatabases(p *problems, raw *rawConfig, cfg *Config) {
	if len(raw.Databases) == 0 {
		p.add("databases", "no databases: declare at least one, e.g. cache: {members: [...]}")
	}
	memberDB := map[string]string{}
	for _, name := range sortedKeys(raw.Databases) {
		r := raw.Databases[name]
		path := "databases." + name
		d := Database{Name: name, Host: name + "." + cfg.Zone.Name}
		if !validLabel(name) || strings.HasPrefix(name, "_") {
			p.add(path, "%q cannot be a DNS label: use letters, digits and hyphens", name)
		}
		p.setting(path+".mode", "databases.<name>.mode", r.Mode, &d.Mode)
		p.setting(path+".ttl", "databases.<name>.ttl", r.TTL, &d.TTL)
		p.setting(path+".lag_tolerance", "databases.<name>.lag_tolerance", r.LagTolerance, &d.LagTolerance)
		if d.LagTolerance > 0 && cfg.Probes.HasCheck(CheckLag) && d.LagTolerance <= 2*cfg.Probes.HeartbeatInterval {
			p.add(path+".lag_tolerance", "%s is within the lag's resolution (2 × probes.heartbeat_interval = %s): raise it or lower the heartbeat interval", d.LagTolerance, 2*cfg.Probes.HeartbeatInterval)
		}
		p.setting(path+".failback_hold", "databases.<name>.failback_hold", r.FailbackHold, &d.FailbackHold)
		p.setting(path+".when_all_down", "databases.<name>.when_all_down", r.WhenAllDown, &d.WhenAllDown)
		if len(r.Members) == 0 {
			p.add(path+".members", "no members: list at least one")
		}
		local := map[string]bool{}
		for i, rm := range r.Members {
			m := buildMember(p, fmt.Sprintf("%s.members[%d]", path, i), rm, name, cfg)
			if m.Name != "" {
				if other, dup := memberDB[m.Name]; dup {
					p.add(fmt.Sprintf("%s.members[%d].name", path, i), "%q is already a member of database %s: member names are unique across databases", m.Name, other)
				}
				memberDB[m.Name] = name
				local[m.Name] = true
			}
			d.Members = append(d.Members, m)
		}
		inOrder := map[string]bool{}
		for i, o := range r.Order {
			o = strings.TrimSpace(o)
			op := fmt.Sprintf("%s.order[%d]", path, i)
			switch {
			case !local[o]:
				p.add(op, "%q is not a member of %s", o, name)
			case inOrder[o]:
				p.add(op, "%q is listed twice", o)
			default:
				inOrder[o] = true
				d.Order = append(d.Order, o)
			}
		}
		if len(d.Order) > 0 && len(d.Order) != len(local) {
			p.add(path+".order", "lists %d of %d members: list every member once", len(d.Order), len(local))
		}
		cfg.Databases = append(cfg.Databases, d)
	}
}

func buildMember(p *problems, path string, r rawMember, db string, cfg *Config) Member {
	m := Member{Name: strings.TrimSpace(r.Name), Database: db, Region: strings.ToLower(strings.TrimSpace(r.Region)), Redis: strings.TrimSpace(r.Redis)}
	if m.Name == "" {
		p.add(path+".name", "missing: give the member a unique name, e.g. %s-%s", db, orDefault(m.Region, "us-east"))
	}
	if _, ok := cfg.Region(m.Region); !ok {
		if m.Region == "" {
			p.add(path+".region", "missing: name the region the member runs in (declared: %s)", strings.Join(cfg.RegionNames(), ", "))
		} else {
			p.add(path+".region", "%q is not a declared region (declared: %s)", r.Region, strings.Join(cfg.RegionNames(), ", "))
		}
	}
	switch {
	case len(r.Addresses) > 0 && r.CNAME != "":
		p.add(path, "has both addresses and cname: a member is answered either by address (A/AAAA) or by name (CNAME); keep one")
	case len(r.Addresses) == 0 && r.CNAME == "":
		p.add(path, "has neither addresses nor cname: add addresses: [IP] or cname: host.example.net.")
	}
	for i, a := range r.Addresses {
		ip, err := netip.ParseAddr(strings.TrimSpace(a))
		if err != nil {
			p.add(fmt.Sprintf("%s.addresses[%d]", path, i), "%q is not an IP address", a)
			continue
		}
		m.Addresses = append(m.Addresses, ip.Unmap())
	}
	if r.CNAME != "" {
		m.CNAME = p.fqdn(path+".cname", r.CNAME)
	}
	if m.Redis == "" {
		if cfg.Probes.HasCheck(CheckPing) || cfg.Probes.HasCheck(CheckEcho) || cfg.Probes.HasCheck(CheckKeyspace) || cfg.Probes.HasCheck(CheckLag) || cfg.Probes.HasCheck(CheckCommand) {
			p.add(path+".redis", "missing: give the URL probes connect to, e.g. redis://10.1.0.10:12000 or rediss://user:pass@host:port")
		}
	} else if err := checkRedisURL(m.Redis); err != nil {
		p.add(path+".redis", "%q is not a redis URL: %v", RedactURL(m.Redis), err)
	}
	m.Port = memberPort(p, path+".port", r.Port, m.Redis)
	m.REST = REST{URL: strings.TrimRight(strings.TrimSpace(r.REST.URL), "/"), BDB: r.REST.BDB, InsecureSkipVerify: r.REST.InsecureSkipVerify}
	p.setting(path+".rest.lag_tolerance", "databases.<name>.members[].rest.lag_tolerance", r.REST.LagTolerance, &m.REST.LagTolerance)
	if cfg.Probes.HasCheck(CheckREST) {
		if u, err := url.Parse(m.REST.URL); m.REST.URL == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https") {
			p.add(path+".rest.url", "the rest check is on: give the cluster's REST API URL, e.g. https://cluster.example.com:9443")
		}
		if m.REST.BDB < 1 {
			p.add(path+".rest.bdb", "the rest check is on: give the database uid (a positive number)")
		}
	}
	return m
}

// memberPort is the port of members[].port: set, it must be a TCP port;
// unset, the port of the redis URL, DefaultRedisPort when the URL names
// none (or is missing or invalid, which is reported on its own).
func memberPort(p *problems, path string, set *int, redisURL string) int {
	if set != nil {
		if *set < 1 || *set > 65535 {
			p.add(path, "%d is not a TCP port: give 1–65535, or leave it out to use the redis URL's port", *set)
		}
		return *set
	}
	if u, err := url.Parse(redisURL); err == nil {
		if port, err := strconv.Atoi(u.Port()); err == nil && port > 0 {
			return port
		}
	}
	return DefaultRedisPort
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// buildNodes resolves relative state_file and admin_tls paths against
// baseDir, like the security files.
func buildNodes(p *problems, raw *rawConfig, cfg *Config, baseDir string) {
	rel := relativeTo(baseDir)
	if len(raw.Nodes) == 0 {
		p.add("nodes", "no nodes: list the GTM nodes agents report to, e.g. [{name: ns1, report: 10.0.0.5:7411}]")
	}
	seen := map[string]bool{}
	for i, r := range raw.Nodes {
		path := fmt.Sprintf("nodes[%d]", i)
		n := Node{Name: strings.TrimSpace(r.Name), StateFile: rel(r.StateFile)}
		if n.Name == "" {
			p.add(path+".name", "missing: give the node a unique name (it answers CH TXT id.server)")
		} else if seen[n.Name] {
			p.add(path+".name", "%q is used twice: node names must be unique", n.Name)
		}
		seen[n.Name] = true
		n.Report = p.hostPort(path+".report", r.Report, true)
		n.Listen = p.hostPort(path+".listen", r.Listen, false)
		if n.Listen == "" {
			n.Listen = n.Report
		}
		for j, a := range r.DNS {
			n.DNS = append(n.DNS, p.hostPort(fmt.Sprintf("%s.dns[%d]", path, j), a, true))
		}
		if len(n.DNS) == 0 {
			n.DNS = append([]string(nil), DefaultDNSListen...)
		}
		n.Admin = p.hostPort(path+".admin", r.Admin, false)
		if n.Admin == "" {
			n.Admin = DefaultAdminListen
		}
		if sec := cfg.Security; sec.Insecure && sec.AdminTokenFile == "" && !n.AdminLoopback() {
			p.add(path+".admin", "%s is not a loopback address and security.admin_token_file is not set: "+
				"security.insecure opens drain and force only on loopback; set security.admin_token_file, or bind admin to 127.0.0.1", n.Admin)
		}
		n.AdminTLS = AdminTLS{Cert: rel(r.AdminTLS.Cert), Key: rel(r.AdminTLS.Key), CA: rel(r.AdminTLS.CA)}
		if n.AdminTLS.Enabled() {
			if n.AdminTLS.Cert == "" || n.AdminTLS.Key == "" {
				p.add(path+".admin_tls", "HTTPS needs cert and key together (ca is what the CLI verifies them with): set both")
			}
			p.keyPair(path+".admin_tls", n.AdminTLS.Cert, n.AdminTLS.Key)
			if n.AdminTLS.CA != "" && p.readable(path+".admin_tls.ca", n.AdminTLS.CA) {
				if _, err := LoadCAFile(path+".admin_tls.ca", n.AdminTLS.CA); err != nil {
					p.addErr(err)
				}
			}
		}
		n.Sentinel = p.hostPort(path+".sentinel", r.Sentinel, false)
		n.SentinelTLS = SentinelTLS{Cert: rel(r.SentinelTLS.Cert), Key: rel(r.SentinelTLS.Key)}
		if n.SentinelTLS.Enabled() {
			if n.Sentinel == "" {
				p.add(path+".sentinel_tls", "set but nodes[].sentinel is not: set the Sentinel listen address, e.g. 0.0.0.0:26379, or remove sentinel_tls")
			}
			if n.SentinelTLS.Cert == "" || n.SentinelTLS.Key == "" {
				p.add(path+".sentinel_tls", "TLS needs cert and key together: set both")
			}
			p.keyPair(path+".sentinel_tls", n.SentinelTLS.Cert, n.SentinelTLS.Key)
		}
		cfg.Nodes = append(cfg.Nodes, n)
	}
	sort.SliceStable(cfg.Nodes, func(i, j int) bool { return cfg.Nodes[i].Name < cfg.Nodes[j].Name })
}

// buildSecurity checks the credential files the node and the agent load
// at start (the generic pass resolved their paths against the config
// file's folder) and that reports are protected.
func buildSecurity(p *problems, cfg *Config) {
	s := &cfg.Security
	if s.TLS.Enabled() {
		if s.TLS.Cert == "" || s.TLS.Key == "" || s.TLS.CA == "" {
			p.add("security.tls", "mTLS needs cert, key and ca together: set all three")
		}
		// The node and the agent load these at start; so does check.
		cert := s.TLS.Cert != "" && p.readable("security.tls.cert", s.TLS.Cert)
		key := s.TLS.Key != "" && p.readable("security.tls.key", s.TLS.Key)
		if cert && key {
			if _, err := LoadKeyPair(s.TLS); err != nil {
				p.addErr(err)
			}
		}
		if s.TLS.CA != "" && p.readable("security.tls.ca", s.TLS.CA) {
			if _, err := LoadCA(s.TLS.CA); err != nil {
				p.addErr(err)
			}
		}
	}
	if s.SentinelPasswordFile != "" && p.readable("security.sentinel_password_file", s.SentinelPasswordFile) {
		if _, err := ReadToken("security.sentinel_password_file", s.SentinelPasswordFile); err != nil {
			p.addErr(err)
		}
	}
	if s.AdminTokenFile != "" && p.readable("security.admin_token_file", s.AdminTokenFile) {
		if _, err := ReadToken("security.admin_token_file", s.AdminTokenFile); err != nil {
			p.addErr(err)
		}
	}
	switch {
	case s.Insecure || s.TLS.Enabled():
	case cfg.HasAgentTokens():
		p.add("security", "agents[].token_file tokens would travel in plaintext: set tls {cert, key, ca} so they travel over TLS, or insecure: true for a lab")
	default:
		p.add("security", "reports would travel unauthenticated: set tls {cert, key, ca} (with or without agents[].token_file), or insecure: true for a lab")
	}
}

// relativeTo returns a function that resolves a relative file path against
// baseDir, the config file's folder, so a config and its files can move
// together; empty and absolute paths are kept.
func relativeTo(baseDir string) func(string) string {
	return func(f string) string {
		if f == "" || filepath.IsAbs(f) || baseDir == "" {
			return f
		}
		return filepath.Join(baseDir, f)
	}
}

// buildDNS checks the DNS rules that span settings and the cookie secret
// file; the generic pass has range-checked each setting.
func buildDNS(p *problems, cfg *Config) {
	d := cfg.DNS
	if f := d.CookieSecretFile; f != "" {
		if _, err := ReadCookieSecrets(f); err != nil {
			p.add("dns.cookie_secret_file", "%v", err)
		}
	}
	if n := d.TCP.MaxConnectionsPerSource; n > d.TCP.MaxConnections && d.TCP.MaxConnections > 0 {
		p.add("dns.tcp.max_connections_per_source", "%d: use 1 to dns.tcp.max_connections (%d)", n, d.TCP.MaxConnections)
	}
}

// MaxCookieSecrets is the most secrets a cookie secret file may hold: a
// rollover needs two (the new one and the previous one).
const MaxCookieSecrets = 4

// ReadCookieSecrets reads a DNS Cookies secret file: one secret per line,
// 32 hex digits (128 bits, the SipHash-2-4 key of RFC 9018); blank lines
// and lines starting with # are skipped. The first secret makes server
// cookies; all are accepted, so a secret can be rolled over across nodes.
// Errors say what is wrong and how to fix it; they never quote a secret.
func ReadCookieSecrets(file string) ([][16]byte, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("cannot read %s: %w; fix the path or create the file (openssl rand -hex 16)", file, err)
	}
	var out [][16]byte
	for i, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		var s [16]byte
		if len(line) != 32 {
			return nil, fmt.Errorf("%s line %d: a secret is 32 hex digits (128 bits), this line has %d characters; make one with: openssl rand -hex 16", file, i+1, len(line))
		}
		if _, err := hex.Decode(s[:], []byte(line)); err != nil {
			return nil, fmt.Errorf("%s line %d: a secret is 32 hex digits (128 bits); make one with: openssl rand -hex 16", file, i+1)
		}
		if s == ([16]byte{}) {
			return nil, fmt.Errorf("%s line %d: an all-zero secret is no secret; make one with: openssl rand -hex 16", file, i+1)
		}
		out = append(out, s)
	}
	switch {
	case len(out) == 0:
		return nil, fmt.Errorf("%s holds no secret: put one line of 32 hex digits in it (openssl rand -hex 16)", file)
	case len(out) > MaxCookieSecrets:
		return nil, fmt.Errorf("%s holds %d secrets, at most %d: keep the current one first and the previous one after it", file, len(out), MaxCookieSecrets)
	}
	return out, nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
