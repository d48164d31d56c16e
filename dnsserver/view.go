package dnsserver

import (
	"fmt"
	"hash/fnv"
	"maps"
	"math"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/miekg/dns"

	"github.com/aagtm/aagtm/config"
	"github.com/aagtm/aagtm/policy"
)

// view is an immutable, precomputed picture of the zone: everything the
// query path needs, so that answering is a few lookups. Every []dns.RR in a
// view is shared by concurrent queries and clipped (cap == len), so that a
// reply appending to it copies instead of writing into it. A view built
// from the previous one (next) shares the records, names and prepared
// replies of every host whose answers did not change.
type view struct {
	// cfg, node and maxUDP are what the view was built from; snap is the
	// snapshot it serves (nil: none yet). The _why reasons are read from
	// snap when asked for, so a newer snapshot with the same answers needs
	// no rebuild.
	cfg  *config.Config
	node string
	snap *policy.Snapshot
	// zone is the zone name, lower case FQDN; "" until the first Update.
	zone string
	// names maps every existing name of the zone (lower case FQDN) to its
	// data: apex, NS hosts, database hosts, _why names and empty
	// non-terminals. A name in the zone that is not here is NXDOMAIN.
	names map[string]*name
	// negative is the authority section of NXDOMAIN and NODATA replies:
	// the SOA with TTL min(SOA TTL, SOA MINIMUM) (RFC 2308 §3).
	negative []dns.RR
	// chaos maps the CH-class names we answer (id.server., hostname.bind.)
	// to their TXT record.
	chaos map[string][]dns.RR
	// regions maps a client address to a region index.
	regions regionTable
	// maxUDP caps the EDNS0 UDP payload size honoured.
	maxUDP int
	// fast holds the UDP fast path's prepared replies by database
	// hostname (lower case FQDN); nil in the empty view.
	fast map[string]*fastName
}

// name is the data of one existing name of the zone. At most one of static,
// host and why is used; an empty name is an empty non-terminal (NODATA for
// every type).
type name struct {
	// static holds fixed RRsets by type: the apex SOA and NS, the A/AAAA
	// of name servers inside the zone.
	static map[uint16][]dns.RR
	// glue holds the additional section by query type (NS at the apex).
	glue map[uint16][]dns.RR
	// any is the reply to a qtype ANY query (RFC 8482: one small subset).
	any []dns.RR
	// host is set for a database hostname.
	host *host
	// why is set for _why.<host>.
	why *host
}

// host holds one database hostname's answers, one per client region.
type host struct {
	// name is the hostname (lower case FQDN), its key in the snapshot.
	name string
	// answers is indexed by region index; nil where the snapshot holds no
	// answer for that region.
	answers []*hostAnswer
	// db is the database served at name; src is the snapshot's answers
	// its records were built from.
	db  *config.Database
	src *policy.HostAnswers
	// pending is the TXT served at _why.<host> while there is no answer.
	pending []dns.RR
}

// hostAnswer is one policy.Answer turned into records.
type hostAnswer struct {
	servFail        bool
	regionDependent bool
	// a, aaaa and all (both, in preference order) are the address records;
	// cname is set instead when the answer is an alias.
	a, aaaa, all []dns.RR
	cname        []dns.RR
	// ttl is the records' TTL, also that of the TXT record at _why.<host>.
	ttl uint32
}

// lookup returns the answer for region index r, falling back to the
// default region's, or nil when there is none.
func (h *host) lookup(r int, def int) *hostAnswer {
	a, _ := h.lookupIndex(r, def)
	return a
}

// lookupIndex is lookup that also returns the region index of the answer.
func (h *host) lookupIndex(r int, def int) (*hostAnswer, int) {
	if r >= 0 && r < len(h.answers) && h.answers[r] != nil {
		return h.answers[r], r
	}
	if def >= 0 && def < len(h.answers) {
		return h.answers[def], def
	}
	return nil, -1
}

const whyLabel = "_why."

// newEmptyView is the view before the first Update: it answers CH
// id.server and SERVFAIL for every IN query.
func newEmptyView(node string, maxUDP int) *view {
	return &view{
		node:    node,
		names:   map[string]*name{},
		chaos:   chaosRecords(node),
		regions: regionTable{def: -1},
		maxUDP:  maxUDP,
	}
}

// buildView precomputes the view of cfg and snap. snap may be nil: database
// hosts then answer SERVFAIL. Problems that cannot stop serving (a database
// outside the zone, a malformed record) are logged and skipped.
func buildView(cfg *config.Config, snap *policy.Snapshot, node string, maxUDP int, log hclog.Logger) *view {
	if cfg.Zone.Name == "" {
		log.Error("config has no zone name; answering SERVFAIL")
		return newEmptyView(node, maxUDP)
	}
	zone := canonical(cfg.Zone.Name)
	v := &view{
		cfg:     cfg,
		node:    node,
		snap:    snap,
		zone:    zone,
		names:   map[string]*name{},
		chaos:   chaosRecords(node),
		regions: newRegionTable(cfg),
		maxUDP:  maxUDP,
		fast:    map[string]*fastName{},
	}
	nsTTL := ttlSeconds(cfg.Zone.SOA.TTL)

	// Apex: SOA and NS, glue for the name servers inside the zone.
	soa := &dns.SOA{
		Hdr:     dns.RR_Header{Name: zone, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: nsTTL},
		Ns:      zone,
		Mbox:    canonical(cfg.Zone.SOA.MBox),
		Serial:  soaSerial(cfg),
		Refresh: ttlSeconds(cfg.Zone.SOA.Refresh),
		Retry:   ttlSeconds(cfg.Zone.SOA.Retry),
		Expire:  ttlSeconds(cfg.Zone.SOA.Expire),
		Minttl:  ttlSeconds(cfg.Zone.SOA.NegativeTTL),
	}
	if len(cfg.Zone.NS) > 0 {
		soa.Ns = canonical(cfg.Zone.NS[0].Name)
	}
	if cfg.Zone.SOA.MBox == "" {
		soa.Mbox = "hostmaster." + zone
	}
	neg := dns.Copy(soa).(*dns.SOA)
	neg.Hdr.Ttl = min(soa.Hdr.Ttl, soa.Minttl) // RFC 2308 §3
	v.negative = []dns.RR{neg}

	apex := v.add(zone)
	apex.static = map[uint16][]dns.RR{dns.TypeSOA: {soa}}
	apex.any = []dns.RR{soa}
	var nsRRs, glue []dns.RR
	for _, ns := range cfg.Zone.NS {
		target := canonical(ns.Name)
		nsRRs = append(nsRRs, &dns.NS{
			Hdr: dns.RR_Header{Name: zone, Rrtype: dns.TypeNS, Class: dns.ClassINET, Ttl: nsTTL},
			Ns:  target,
		})
		if !inZone(target, zone) || len(ns.Addresses) == 0 {
			continue
		}
		var a, aaaa []dns.RR
		for _, addr := range ns.Addresses {
			if rr := addressRR(target, addr.Unmap().AsSlice(), nsTTL); rr != nil {
				if addr.Unmap().Is4() {
					a = append(a, rr)
				} else {
					aaaa = append(aaaa, rr)
				}
			}
		}
		glue = append(append(glue, a...), aaaa...)
		n := v.add(target)
		if n.static == nil {
			n.static = map[uint16][]dns.RR{}
		}
		n.static[dns.TypeA] = append(n.static[dns.TypeA], a...)
		n.static[dns.TypeAAAA] = append(n.static[dns.TypeAAAA], aaaa...)
		if target != zone {
			n.any = append(append(n.any, a...), aaaa...)
		}
	}
	apex.static[dns.TypeNS] = nsRRs
	apex.glue = map[uint16][]dns.RR{dns.TypeNS: glue}

	// Database hosts and their _why names.
	for i := range cfg.Databases {
		db := &cfg.Databases[i]
		hostname := canonical(db.Host)
		if !inZone(hostname, zone) || hostname == zone {
			log.Warn("database host outside the zone, not served", "db", db.Name, "host", hostname, "zone", zone)
			continue
		}
		h := v.buildHost(hostname, db, hostAnswers(snap, hostname), log)
		n := v.add(hostname)
		if n.static != nil {
			log.Warn("database host is also a name server name; serving the database", "db", db.Name, "host", hostname)
			n.static, n.any = nil, nil
		}
		n.host = h
		v.add(whyLabel + hostname).why = h
		v.prepareFast(hostname, h)
	}

	// Empty non-terminals: every ancestor of a name, up to the apex,
	// exists (NODATA, not NXDOMAIN: RFC 8020).
	owners := make([]string, 0, len(v.names))
	for owner := range v.names {
		owners = append(owners, owner)
	}
	for _, owner := range owners {
		for p := parent(owner); p != "" && p != zone && inZone(p, zone); p = parent(p) {
			v.add(p)
		}
	}
	for _, n := range v.names {
		n.any = slices.Clip(n.any)
		for t, rrs := range n.static {
			n.static[t] = slices.Clip(rrs)
		}
		for t, rrs := range n.glue {
			n.glue[t] = slices.Clip(rrs)
		}
	}
	return v
}

// next is the view of cfg and snap, built from v: when cfg, node and
// maxUDP are v's, it shares v's names, records and prepared replies, and
// builds anew only the hosts whose answers changed (none when the answers'
// serial did not move: only the reasons _why serves are newer). Otherwise
// it is buildView.
func (v *view) next(cfg *config.Config, snap *policy.Snapshot, node string, maxUDP int, log hclog.Logger) *view {
	if v == nil || v.cfg != cfg || v.node != node || v.maxUDP != maxUDP || v.snap == nil || snap == nil || v.fast == nil {
		return buildView(cfg, snap, node, maxUDP, log)
	}
	nv := *v
	nv.snap = snap
	if snap.Serial == v.snap.Serial {
		return &nv
	}
	nv.names, nv.fast = maps.Clone(v.names), maps.Clone(v.fast)
	for owner, n := range v.names {
		if n.host == nil {
			continue
		}
		ha := hostAnswers(snap, owner)
		if ha.SameAnswers(n.host.src) {
			continue
		}
		h := nv.buildHost(owner, n.host.db, ha, log)
		nv.names[owner] = &name{host: h}
		nv.names[whyLabel+owner] = &name{why: h}
		delete(nv.fast, owner)
		nv.prepareFast(owner, h)
	}
	return &nv
}

// hostAnswers is snap's answers for hostname, nil when snap is nil or has
// none.
func hostAnswers(snap *policy.Snapshot, hostname string) *policy.HostAnswers {
	if snap == nil {
		return nil
	}
	return snap.Hosts[hostname]
}

// buildHost turns the database db's answers ha (nil: none yet) at hostname
// into records, one answer per client region of v.
func (v *view) buildHost(hostname string, db *config.Database, ha *policy.HostAnswers, log hclog.Logger) *host {
	h := &host{name: hostname, db: db, src: ha, answers: make([]*hostAnswer, len(v.regions.names))}
	h.pending = []dns.RR{txtRR(whyLabel+hostname, 0, "no answer yet: the policy engine has not produced one for this host")}
	if ha == nil {
		return h
	}
	built := map[*policy.Answer]*hostAnswer{} // regions sharing an answer share records
	for r, region := range v.regions.names {
		a := ha.ByRegion[region]
		if a == nil {
			continue
		}
		if b, ok := built[a]; ok {
			h.answers[r] = b
			continue
		}
		b := buildAnswer(hostname, db, a, log)
		built[a] = b
		h.answers[r] = b
	}
	return h
}

// add returns the name owner, creating it if needed.
func (v *view) add(owner string) *name {
	n := v.names[owner]
	if n == nil {
		n = &name{}
		v.names[owner] = n
	}
	return n
}

// buildAnswer turns a policy answer into records. The first record decides
// the kind: a CNAME answer is that one CNAME (RFC 1034 §3.6.2: nothing else
// at an alias), an address answer is every A and AAAA record, CNAMEs among
// them dropped.
func buildAnswer(hostname string, db *config.Database, a *policy.Answer, log hclog.Logger) *hostAnswer {
	ttl := ttlSeconds(a.TTL)
	if a.TTL <= 0 {
		ttl = ttlSeconds(db.TTL)
	}
	b := &hostAnswer{servFail: a.ServFail, regionDependent: a.RegionDependent, ttl: ttl}
	if len(a.Records) > 0 && a.Records[0].Kind == policy.RecordCNAME {
		target := canonical(a.Records[0].Target)
		if _, ok := dns.IsDomainName(target); !ok || target == "." {
			log.Warn("bad CNAME target, answer dropped", "host", hostname, "target", a.Records[0].Target)
			return b
		}
		b.cname = []dns.RR{&dns.CNAME{
			Hdr:    dns.RR_Header{Name: hostname, Rrtype: dns.TypeCNAME, Class: dns.ClassINET, Ttl: ttl},
			Target: target,
		}}
		return b
	}
	for _, rec := range a.Records {
		addr := rec.Addr.Unmap()
		switch {
		case rec.Kind == policy.RecordA && addr.Is4():
			rr := addressRR(hostname, addr.AsSlice(), ttl)
			b.a = append(b.a, rr)
			b.all = append(b.all, rr)
		case rec.Kind == policy.RecordAAAA && addr.Is6():
			rr := addressRR(hostname, addr.AsSlice(), ttl)
			b.aaaa = append(b.aaaa, rr)
			b.all = append(b.all, rr)
		default:
			log.Debug("record skipped", "host", hostname, "member", rec.Member, "kind", rec.Kind, "addr", rec.Addr, "target", rec.Target)
		}
	}
	b.a, b.aaaa, b.all = slices.Clip(b.a), slices.Clip(b.aaaa), slices.Clip(b.all)
	// One family only (the usual case): share the backing array, a smaller
	// view is a faster garbage collection.
	switch {
	case len(b.aaaa) == 0:
		b.all = b.a
	case len(b.a) == 0:
		b.all = b.aaaa
	}
	return b
}

// addressRR returns an A record for a 4-byte address, an AAAA record for a
// 16-byte one, and nil otherwise.
func addressRR(owner string, ip net.IP, ttl uint32) dns.RR {
	switch len(ip) {
	case net.IPv4len:
		return &dns.A{Hdr: dns.RR_Header{Name: owner, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: ttl}, A: ip}
	case net.IPv6len:
		return &dns.AAAA{Hdr: dns.RR_Header{Name: owner, Rrtype: dns.TypeAAAA, Class: dns.ClassINET, Ttl: ttl}, AAAA: ip}
	}
	return nil
}

// txtRR returns a TXT record holding text, split into character-strings of
// at most 255 bytes (RFC 1035 §3.3.14).
func txtRR(owner string, ttl uint32, text string) dns.RR {
	return &dns.TXT{
		Hdr: dns.RR_Header{Name: owner, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: ttl},
		Txt: splitTXT(text),
	}
}

// splitTXT cuts raw text into 255-byte pieces and escapes each the way
// miekg/dns expects TXT data (a backslash starts an escape).
func splitTXT(text string) []string {
	var out []string
	for len(text) > 0 || out == nil {
		n := min(len(text), 255)
		out = append(out, strings.ReplaceAll(text[:n], `\`, `\\`))
		text = text[n:]
	}
	return out
}

// chaosRecords returns the CH TXT records naming the node
// (`dig CH TXT id.server`, RFC 4892; hostname.bind is BIND's older name).
func chaosRecords(node string) map[string][]dns.RR {
	out := map[string][]dns.RR{}
	for _, owner := range []string{"id.server.", "hostname.bind."} {
		rr := txtRR(owner, 0, node).(*dns.TXT)
		rr.Hdr.Class = dns.ClassCHAOS
		out[owner] = []dns.RR{rr}
	}
	return out
}

// soaSerial returns the configured serial or, when it is 0, a 32-bit FNV-1a
// hash of the config's DNS-visible content (zone, regions, databases and
// their members' answers): the same on every node that loads the same file,
// different after a change. It is not monotonic; aagtm serves no zone
// transfers, so no secondary ever compares serials.
func soaSerial(cfg *config.Config) uint32 {
	if cfg.Zone.SOA.Serial != 0 {
		return cfg.Zone.SOA.Serial
	}
	h := fnv.New32a()
	fmt.Fprintf(h, "%v|%v|%s", cfg.Zone, cfg.Regions, cfg.DefaultRegion)
	for _, db := range cfg.Databases {
		fmt.Fprintf(h, "|%s %s %s %v %s %v", db.Name, db.Host, db.Mode, db.Order, db.TTL, db.WhenAllDown)
		for _, m := range db.Members {
			fmt.Fprintf(h, "|%s %s %v %s", m.Name, m.Region, m.Addresses, m.CNAME)
		}
	}
	if s := h.Sum32(); s != 0 {
		return s
	}
	return 1
}

// ttlSeconds converts d to a TTL, clamped to [0, 2^31-1] (RFC 2181 §8).
func ttlSeconds(d time.Duration) uint32 {
	s := d / time.Second
	switch {
	case s <= 0:
		return 0
	case s > math.MaxInt32:
		return math.MaxInt32
	}
	return uint32(s)
}

// canonical returns name lower case and fully qualified.
func canonical(name string) string {
	return dns.Fqdn(strings.ToLower(name))
}

// inZone reports whether the lower-case FQDN name is zone or below it.
func inZone(name, zone string) bool {
	if zone == "." {
		return true
	}
	if len(name) == len(zone) {
		return name == zone
	}
	dot := len(name) - len(zone) - 1
	if dot < 1 || name[dot] != '.' || name[dot+1:] != zone {
		return false
	}
	// The dot must separate labels, not be an escaped \. inside one.
	escapes := 0
	for i := dot - 1; i >= 0 && name[i] == '\\'; i-- {
		escapes++
	}
	return escapes%2 == 0
}

// parent returns the name one label up, "" above the root. Escaped dots
// (\.) inside a label are not label separators.
func parent(name string) string {
	for i := 0; i < len(name); i++ {
		switch name[i] {
		case '\\':
			i++
		case '.':
			if i+1 < len(name) {
				return name[i+1:]
			}
			return ""
		}
	}
	return ""
}
