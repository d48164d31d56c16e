package sentinel

import (
	"net"
	"net/netip"
	"sort"
	"strconv"
	"strings"

	"github.com/aagtm/aagtm/config"
	"github.com/aagtm/aagtm/policy"
)

// master is the address a database name answers for one client region.
type master struct {
	// member is the answered member's name.
	member string
	// host is an IP literal, or the member's hostname for a CNAME member.
	host string
	// port is the member's Redis port, as a decimal string (Sentinel
	// replies carry ports as bulk strings).
	port string
}

// valid reports whether m is an answer (not "no master").
func (m master) valid() bool { return m.host != "" }

// view is an immutable picture of every database's master per client
// region, built from one config and one snapshot. Commands read the
// current view through an atomic pointer, so a reply never mixes two.
type view struct {
	cfg *config.Config
	// names are the database names, sorted (SENTINEL MASTERS, ROLE).
	names []string
	// masters maps database name → region name → its master; a region
	// without an entry has no master (no answer yet, or SERVFAIL).
	masters map[string]map[string]master
	// serial is the snapshot serial (config-epoch).
	serial uint64
	// peers are the other nodes' Sentinel endpoints (SENTINEL SENTINELS).
	peers []peer
	// downAfter is what down-after-milliseconds reports: how long a
	// member fails before the answer moves (probes.fall × probes.interval).
	downAfter string
}

// peer is another node's Sentinel endpoint.
type peer struct {
	name, host, port string
}

// emptyView answers no database until the first Update.
func emptyView() *view {
	return &view{cfg: &config.Config{}, masters: map[string]map[string]master{}, downAfter: "0"}
}

// buildView computes the masters of every database for every region of
// cfg from snap, and the peers of node self.
func buildView(cfg *config.Config, snap *policy.Snapshot, self string) *view {
	v := &view{cfg: cfg, masters: map[string]map[string]master{}}
	if snap != nil {
		v.serial = snap.Serial
	}
	v.downAfter = strconv.FormatInt(cfg.Probes.Interval.Milliseconds()*int64(cfg.Probes.Fall), 10)
	regions := cfg.ClientRegions()
	for i := range cfg.Databases {
		db := &cfg.Databases[i]
		v.names = append(v.names, db.Name)
		byRegion := map[string]master{}
		v.masters[db.Name] = byRegion
		if snap == nil {
			continue
		}
		for _, r := range regions {
			a, ok := snap.Lookup(db.Host, r)
			if !ok || a == nil {
				continue
			}
			if m := masterOf(cfg, a); m.valid() {
				byRegion[r] = m
			}
		}
	}
	sort.Strings(v.names)
	v.peers = peersOf(cfg, self)
	return v
}

// masterOf is the address a Sentinel client should connect to for answer
// a: its first record, the one DNS lists first (a CNAME answer is one
// record), with the member's port (members[].port, by default its redis
// URL's). A SERVFAIL answer has none.
func masterOf(cfg *config.Config, a *policy.Answer) master {
	if a.ServFail || len(a.Records) == 0 {
		return master{}
	}
	rec := a.Records[0]
	m := master{member: rec.Member, port: strconv.Itoa(config.DefaultRedisPort)}
	if member, _, ok := cfg.Member(rec.Member); ok {
		m.port = strconv.Itoa(member.Port)
	}
	switch rec.Kind {
	case policy.RecordCNAME:
		m.host = strings.TrimSuffix(rec.Target, ".")
	case policy.RecordA, policy.RecordAAAA:
		if rec.Addr.IsValid() {
			m.host = rec.Addr.Unmap().String()
		}
	}
	return m
}

// peersOf lists the Sentinel endpoints of the nodes other than self that
// serve one: the host of nodes[].sentinel, or, when that host is
// unspecified (0.0.0.0, ::, empty), the host of nodes[].report, the
// address clients and agents already reach the node at.
func peersOf(cfg *config.Config, self string) []peer {
	var out []peer
	for _, n := range cfg.Nodes {
		if n.Name == self || n.Sentinel == "" {
			continue
		}
		host, port, err := net.SplitHostPort(n.Sentinel)
		if err != nil {
			continue
		}
		if ip, err := netip.ParseAddr(host); host == "" || (err == nil && ip.IsUnspecified()) {
			if rh, _, err := net.SplitHostPort(n.Report); err == nil {
				host = rh
			}
		}
		out = append(out, peer{name: n.Name, host: host, port: port})
	}
	return out
}

// regionOf is the client region of a connection from addr: the rule DNS
// applies to a resolver's or ECS address (config.ClientRegion).
func (v *view) regionOf(addr netip.Addr) string {
	r, _ := v.cfg.ClientRegion(addr)
	return r
}

// lookup returns the master of name for a client in region. name is a
// database name, or "<db>@<region>" to name the region explicitly. ok is
// false when name is no database (or names an unknown region); m is
// invalid when the database has no master now.
func (v *view) lookup(name, region string) (m master, ok bool) {
	db := name
	if i := strings.LastIndexByte(name, '@'); i >= 0 {
		db, region = name[:i], name[i+1:]
		if _, known := v.cfg.Region(region); !known && region != v.cfg.DefaultRegion {
			return master{}, false
		}
	}
	byRegion, ok := v.masters[db]
	if !ok {
		return master{}, false
	}
	if m, ok := byRegion[region]; ok {
		return m, true
	}
	return byRegion[v.cfg.DefaultRegion], true
}
