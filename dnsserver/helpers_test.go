package dnsserver

import (
	"context"
	"fmt"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/miekg/dns"

	"github.com/aagtm/aagtm/config"
	"github.com/aagtm/aagtm/policy"
)

const zone = "gtm.example.com."

// testConfig is a zone with two regions and one database per behaviour:
//
//	cache   nearest: us-east 10.1.0.10 (+AAAA), eu-west 10.2.0.10
//	orders  failover: everyone 10.1.0.20, not region dependent
//	cloud   nearest, CNAME per region
//	many    all: 60 A records
//	broken  when_all_down servfail
//	pending in the config, not in the snapshot
func testConfig() *config.Config {
	db := func(name string, mode config.Mode) config.Database {
		return config.Database{Name: name, Host: name + "." + zone, Mode: mode, TTL: 5 * time.Second}
	}
	return &config.Config{
		Zone: config.Zone{
			Name: zone,
			NS: []config.NameServer{
				{Name: "ns1." + zone, Addresses: []netip.Addr{netip.MustParseAddr("192.0.2.53"), netip.MustParseAddr("2001:db8::53")}},
				{Name: "ns2.example.net."},
				{Name: "ns3.anycast." + zone, Addresses: []netip.Addr{netip.MustParseAddr("192.0.2.54")}},
			},
			SOA: config.SOA{
				MBox: "hostmaster.example.com.", Serial: 2024010101,
				Refresh: time.Hour, Retry: 10 * time.Minute, Expire: 24 * time.Hour,
				NegativeTTL: 5 * time.Second, TTL: time.Hour,
			},
		},
		Regions: []config.Region{
			{Name: "eu-west", Subnets: []netip.Prefix{netip.MustParsePrefix("10.2.0.0/16")}},
			{Name: "us-east", Subnets: []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16"), netip.MustParsePrefix("2001:db8:1::/48")}},
		},
		DefaultRegion: "us-east",
		Databases: []config.Database{
			db("broken", config.ModeFailover),
			db("cache", config.ModeNearest),
			db("cloud", config.ModeNearest),
			db("many", config.ModeAll),
			db("orders", config.ModeFailover),
			db("pending", config.ModeNearest),
		},
	}
}

func aRec(member, addr string) policy.Record {
	a := netip.MustParseAddr(addr)
	k := policy.RecordA
	if a.Is6() {
		k = policy.RecordAAAA
	}
	return policy.Record{Kind: k, Member: member, Addr: a}
}

// testSnapshot builds the answers of testConfig; gen shows up in the
// reasons so tests can tell snapshots apart.
func testSnapshot(gen int) *policy.Snapshot {
	ttl := 5 * time.Second
	use := &policy.Answer{
		Records:         []policy.Record{aRec("cache-use", "10.1.0.10"), aRec("cache-use", "2001:db8:1::10")},
		TTL:             ttl,
		Members:         []string{"cache-use"},
		Reason:          fmt.Sprintf("gen %d: cache-use is the nearest eligible member for us-east", gen),
		RegionDependent: true,
	}
	euw := &policy.Answer{
		Records:         []policy.Record{aRec("cache-euw", "10.2.0.10")},
		TTL:             ttl,
		Members:         []string{"cache-euw"},
		Reason:          fmt.Sprintf("gen %d: cache-euw is the nearest eligible member for eu-west", gen),
		RegionDependent: true,
	}
	orders := &policy.Answer{
		Records: []policy.Record{aRec("orders-use", "10.1.0.20")},
		TTL:     ttl,
		Members: []string{"orders-use"},
		Reason:  fmt.Sprintf("gen %d: orders-use is first in the failover order", gen),
	}
	cloudUse := &policy.Answer{
		Records:         []policy.Record{{Kind: policy.RecordCNAME, Member: "cloud-use", Target: "redis-1.us.cloud.example.net."}},
		TTL:             ttl,
		Reason:          "cloud-use nearest",
		RegionDependent: true,
	}
	cloudEuw := &policy.Answer{
		Records:         []policy.Record{{Kind: policy.RecordCNAME, Member: "cloud-euw", Target: "redis-2.eu.cloud.example.net."}},
		TTL:             ttl,
		Reason:          "cloud-euw nearest",
		RegionDependent: true,
	}
	many := &policy.Answer{TTL: ttl, Reason: "all members"}
	for i := 1; i <= 60; i++ {
		many.Records = append(many.Records, aRec(fmt.Sprintf("many-%d", i), fmt.Sprintf("10.3.%d.%d", gen%250, i)))
	}
	broken := &policy.Answer{ServFail: true, TTL: ttl, Reason: "no member eligible; when_all_down: servfail"}
	both := func(db string, a *policy.Answer) *policy.HostAnswers {
		return &policy.HostAnswers{Database: db, Host: db + "." + zone, ByRegion: map[string]*policy.Answer{"us-east": a, "eu-west": a}}
	}
	return &policy.Snapshot{
		Serial: uint64(gen),
		Hosts: map[string]*policy.HostAnswers{
			"cache." + zone:  {Database: "cache", Host: "cache." + zone, ByRegion: map[string]*policy.Answer{"us-east": use, "eu-west": euw}},
			"cloud." + zone:  {Database: "cloud", Host: "cloud." + zone, ByRegion: map[string]*policy.Answer{"us-east": cloudUse, "eu-west": cloudEuw}},
			"orders." + zone: both("orders", orders),
			"many." + zone:   both("many", many),
			"broken." + zone: both("broken", broken),
		},
	}
}

// startServer runs a server on 127.0.0.1:0 until the test ends and returns
// it with its address. Every UDP fast path reply is checked against the
// full path's (checkFastPath).
func startServer(t testing.TB, opts Options, cfg *config.Config, snap *policy.Snapshot) (*Server, string) {
	t.Helper()
	s, addr, _ := startCheckedServer(t, opts, cfg, snap)
	return s, addr
}

// startCheckedServer is startServer also returning the number of fast
// path replies so far.
func startCheckedServer(t testing.TB, opts Options, cfg *config.Config, snap *policy.Snapshot) (*Server, string, *atomic.Int64) {
	t.Helper()
	if opts.Listen == nil {
		opts.Listen = []string{"127.0.0.1:0"}
	}
	if opts.Node == "" {
		opts.Node = "node-a"
	}
	s := New(opts, hclog.New(&hclog.LoggerOptions{Output: hclog.DefaultOutput, Level: hclog.Warn, Name: t.Name()}))
	if cfg != nil {
		s.Update(cfg, snap)
	}
	hits := checkFastPath(t, s)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- s.Run(ctx) }()
	select {
	case <-s.Ready():
	case err := <-errc:
		cancel()
		t.Fatalf("Run: %v", err)
	case <-time.After(5 * time.Second):
		cancel()
		t.Fatal("server not ready after 5s")
	}
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-errc:
			if err != nil {
				t.Errorf("Run returned %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Run did not return after cancel")
		}
	})
	return s, s.Addrs()[0].String(), hits
}

// testSecret is the cookie secret of the tests that call answer directly
// (RFC 9018 Appendix A's).
var testSecret = [16]byte{0xe5, 0xe9, 0x73, 0xe5, 0xa6, 0xb2, 0xa4, 0x3f, 0x48, 0xe7, 0xdc, 0x84, 0x9e, 0x37, 0xbf, 0xcf}

// testAsker is a query from client over TCP (tcp) or UDP, now, checked
// against testSecret, without an amplification cap.
func testAsker(client netip.Addr, tcp bool) asker {
	return asker{client: client, tcp: tcp, now: cookieTime(time.Now()), cookies: newCookieJar([][16]byte{testSecret})}
}

// query is a request builder: name, type, then options.
func query(name string, qtype uint16, opts ...func(*dns.Msg)) *dns.Msg {
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	m.RecursionDesired = false
	for _, o := range opts {
		o(m)
	}
	return m
}

// withEDNS adds an OPT record with the given UDP size.
func withEDNS(size uint16) func(*dns.Msg) {
	return func(m *dns.Msg) { m.SetEdns0(size, false) }
}

// withECS adds an OPT record (if missing) with a client subnet option.
func withECS(prefix string) func(*dns.Msg) {
	return func(m *dns.Msg) {
		p := netip.MustParsePrefix(prefix)
		if m.IsEdns0() == nil {
			m.SetEdns0(1232, false)
		}
		fam := uint16(1)
		if p.Addr().Is6() {
			fam = 2
		}
		o := m.IsEdns0()
		o.Option = append(o.Option, &dns.EDNS0_SUBNET{
			Code: dns.EDNS0SUBNET, Family: fam, SourceNetmask: uint8(p.Bits()),
			Address: p.Masked().Addr().AsSlice(),
		})
	}
}

// exchange sends m to addr over net ("udp" or "tcp") and returns the reply.
func exchange(t testing.TB, network, addr string, m *dns.Msg) *dns.Msg {
	t.Helper()
	c := &dns.Client{Net: network, Timeout: 2 * time.Second, UDPSize: 65535}
	r, _, err := c.Exchange(m, addr)
	if err != nil {
		t.Fatalf("exchange %s %v: %v", network, m.Question, err)
	}
	return r
}

// rrStrings returns the presentation form of rrs, OPT records left out.
func rrStrings(rrs []dns.RR) []string {
	var out []string
	for _, rr := range rrs {
		if rr.Header().Rrtype != dns.TypeOPT {
			out = append(out, rr.String())
		}
	}
	return out
}

// ecsOf returns the client subnet option of m, nil when there is none.
func ecsOf(m *dns.Msg) *dns.EDNS0_SUBNET {
	if o := m.IsEdns0(); o != nil {
		for _, e := range o.Option {
			if s, ok := e.(*dns.EDNS0_SUBNET); ok {
				return s
			}
		}
	}
	return nil
}
