package dnsserver

import (
	"math/bits"
	"net/netip"

	"github.com/aagtm/aagtm/config"
)

// regionTable maps a client address to a region, with the same rule as
// config.MatchRegion (longest matching subnet; the default region when none
// matches), and computes the ECS scope that answer is valid for.
type regionTable struct {
	// names are the region names by index: the declared regions in order,
	// then the default region if it is not one of them.
	names []string
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
	t := regionTable{def: -1}
	for i, r := range cfg.Regions {
		t.names = append(t.names, r.Name)
		for _, p := range r.Subnets {
			if p = unmapPrefix(p); p.IsValid() {
				t.subnets = append(t.subnets, regionSubnet{prefix: p, region: i})
			}
		}
		if r.Name == cfg.DefaultRegion {
			t.def = i
		}
	}
	if t.def < 0 && cfg.DefaultRegion != "" {
		t.def = len(t.names)
		t.names = append(t.names, cfg.DefaultRegion)
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
	if !addr.IsValid() {
		return t.def, 0
	}
	region, best := t.def, -1
	for _, s := range t.subnets {
		if s.prefix.Bits() > best && s.prefix.Contains(addr) {
			region, best = s.region, s.prefix.Bits()
		}
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

// unmapPrefix returns p masked, an IPv4-mapped IPv6 prefix as IPv4.
func unmapPrefix(p netip.Prefix) netip.Prefix {
	if a := p.Addr(); a.Is4In6() {
		if p.Bits() < 96 {
			return netip.Prefix{}
		}
		p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	return p.Masked()
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
