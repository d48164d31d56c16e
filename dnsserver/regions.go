package dnsserver

import (
	"math/bits"
	"net/netip"

	"github.com/aagtm/aagtm/config"
)

// regionTable maps a client address to a region by config.ClientRegion,
// the rule the Sentinel endpoint applies too, and computes the ECS scope
// that answer is valid for.
type regionTable struct {
	cfg *config.Config // nil: every address gets def
	// names are the region names by index: cfg.ClientRegions().
	names []string
	// index maps a region name to its index in names.
	index map[string]int
	// subnets are every region subnet, in config order.
	subnets []regionSubnet
	// def is the default region's index, -1 when there is none.
	def int
}

type regionSubnet struct {
	prefix netip.Prefix
	region int
}

func newRegionTable(cfg *config.Config) regionTable {
	t := regionTable{cfg: cfg, names: cfg.ClientRegions(), index: map[string]int{}, def: -1}
	for i, name := range t.names {
		t.index[name] = i
	}
	if i, ok := t.index[cfg.DefaultRegion]; ok {
		t.def = i
	}
	for i, r := range cfg.Regions {
		for _, p := range r.Subnets { // IPv4-mapped prefixes unmapped by config
			t.subnets = append(t.subnets, regionSubnet{prefix: p, region: i})
		}
	}
	return t
}

// lookup returns the region index of addr and the ECS scope prefix length
// of that choice: the shortest prefix of addr whose every address gets the
// same region (RFC 7871 §7.2.1). That is the matched subnet's length,
// lengthened where a more specific subnet of another region lies inside it
// (or, for the default region, anywhere near addr).
func (t *regionTable) lookup(addr netip.Addr) (region, scope int) {
	addr = addr.Unmap()
	if t.cfg == nil || !addr.IsValid() {
		return t.def, 0
	}
	region, best := t.def, -1
	if name, matched := t.cfg.ClientRegion(addr); matched.IsValid() {
		region, best = t.index[name], matched.Bits()
	}
	scope = max(best, 0)
	for _, s := range t.subnets {
		if s.region == region || s.prefix.Bits() <= best || s.prefix.Addr().Is4() != addr.Is4() {
			continue
		}
		// s does not contain addr (it would have won), so they share
		// fewer than s.Bits() leading bits; one more bit separates them.
		if c := commonBits(addr, s.prefix.Addr()); c >= scope {
			scope = c + 1
		}
	}
	return region, scope
}

// commonBits returns the number of leading bits a and b (same family)
// share.
func commonBits(a, b netip.Addr) int {
	if a.Is4() {
		x, y := a.As4(), b.As4()
		return bits.LeadingZeros32(be32(x[:]) ^ be32(y[:]))
	}
	x, y := a.As16(), b.As16()
	if hi := be64(x[:8]) ^ be64(y[:8]); hi != 0 {
		return bits.LeadingZeros64(hi)
	}
	return 64 + bits.LeadingZeros64(be64(x[8:])^be64(y[8:]))
}

func be32(b []byte) uint32 {
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

func be64(b []byte) uint64 {
	return uint64(be32(b[:4]))<<32 | uint64(be32(b[4:8]))
}
