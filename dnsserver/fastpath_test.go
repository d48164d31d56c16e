package dnsserver

import (
	"bytes"
	"encoding/hex"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/miekg/dns"

	"github.com/aagtm/aagtm/config"
)

// fullPathReply is the full path's reply to the datagram pkt sent as a,
// from v, before rate limiting, as the UDP loop packs it; nil when it
// sends none.
func fullPathReply(pkt []byte, a asker, v *view) []byte {
	l := &udpLoop{s: New(Options{}, nil), view: v, cookies: a.cookies, amplification: a.amplification}
	return l.full(nil, pkt, a, time.Now())
}

// checkFastPath makes s compare every reply of its UDP fast path with the
// full path's for the same query, view and time, failing t on a
// difference: every test that queries a started server over UDP is a
// differential test. It returns the number of fast path replies.
func checkFastPath(t testing.TB, s *Server) *atomic.Int64 {
	var n atomic.Int64
	s.fastHook = func(pkt []byte, a asker, v *view, fast []byte) {
		n.Add(1)
		if full := fullPathReply(pkt, a, v); !bytes.Equal(fast, full) {
			t.Errorf("fast path reply differs from the full path's\nquery %x\nfast  %x\nfull  %x", pkt, fast, full)
		}
	}
	return &n
}

// fastCorpus is the generated corpus of the differential test: every
// combination that matters to the fast path's decisions (names and their
// case, types, EDNS payload sizes and DO, ECS prefixes of both families,
// cookies in every state, IDs and the RD and CD bits), as datagrams.
func fastCorpus(t testing.TB, jar *cookieJar, client netip.Addr, now uint32) [][]byte {
	names := []string{cacheHost, "CaChE." + zone, "CACHE.GTM.EXAMPLE.COM.", "orders." + zone, "cloud." + zone,
		manyHost, "broken." + zone, "pending." + zone, "_why." + cacheHost, zone, "ns1." + zone, "nope." + zone,
		"x.cache." + zone, "cache.example.org.", "c\\.ache." + zone}
	types := []uint16{dns.TypeA, dns.TypeAAAA, dns.TypeTXT, dns.TypeANY, dns.TypeMX}
	good := jar.make([]byte("clientck"), client, now)
	old := jar.make([]byte("clientck"), client, now-cookieRenewAge-1)
	edns := []func(*dns.Msg){
		func(*dns.Msg) {},
		withEDNS(512), withEDNS(4096), withEDNS(100),
		func(m *dns.Msg) { m.SetEdns0(1232, true) },
		withECS("10.2.3.0/24"), withECS("10.1.0.0/16"), withECS("10.2.0.128/25"), withECS("192.0.2.0/24"),
		withECS("0.0.0.0/0"), withECS("2001:db8:1::/48"), withECS("2001:db8::/32"), withECS("::ffff:10.2.0.0/112"),
		withECS("10.0.0.0/7"),
		withCookie("0102030405060708"),
		withCookie(hex.EncodeToString(good[:])),
		withCookie(hex.EncodeToString(old[:])),
		withCookie("0102030405060708" + "01000000aabbccdd0011223344556677"), // bad
		withCookie("01020304050607"),                                        // malformed
		func(m *dns.Msg) { withECS("10.2.3.0/24")(m); withCookie(hex.EncodeToString(good[:]))(m) },
		func(m *dns.Msg) { withECS("10.2.3.0/24")(m); withECS("10.1.3.0/24")(m) },
		func(m *dns.Msg) { m.SetEdns0(1232, false); m.IsEdns0().SetVersion(1) },
		func(m *dns.Msg) {
			m.SetEdns0(1232, false)
			m.IsEdns0().Option = append(m.IsEdns0().Option, &dns.EDNS0_NSID{Code: dns.EDNS0NSID})
		},
	}
	flags := []func(*dns.Msg){
		func(*dns.Msg) {},
		func(m *dns.Msg) { m.RecursionDesired = true },
		func(m *dns.Msg) { m.CheckingDisabled = true; m.AuthenticatedData = true },
		func(m *dns.Msg) { m.Opcode = dns.OpcodeNotify },
		func(m *dns.Msg) { m.Question[0].Qclass = dns.ClassCHAOS },
	}
	rng := rand.New(rand.NewPCG(1, 2))
	var out [][]byte
	for _, name := range names {
		for _, qt := range types {
			for _, e := range edns {
				for _, f := range flags {
					m := query(name, qt, e, f)
					m.Id = uint16(rng.Uint32())
					b, err := m.Pack()
					if err != nil {
						t.Fatalf("pack %v: %v", m, err)
					}
					out = append(out, b)
				}
			}
		}
	}
	return out
}

// TestFastPathMatchesFullPath is the differential test: the generated
// corpus, from several clients, with and without the amplification cap,
// through a UDP loop (fast path first) and through the full path alone,
// with rate limiting on at a low rate so that drops and slips happen:
// the replies (or their absence) must be byte for byte the same, and the
// fast path must have answered the common queries.
func TestFastPathMatchesFullPath(t *testing.T) {
	clients := []netip.Addr{
		netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("10.2.0.1"),
		netip.MustParseAddr("2001:db8:1::1"), netip.MustParseAddr("192.0.2.7"),
	}
	tests := []struct {
		name          string
		amplification int
		rl            config.RateLimit
	}{
		{"defaults", 4, config.RateLimit{ResponsesPerSecond: 200, Slip: 2, IPv4PrefixLen: 24, IPv6PrefixLen: 56}},
		{"no cap, low rate", 0, config.RateLimit{ResponsesPerSecond: 20, Slip: 3}},
		{"tight cap, no rate limit", 2, config.RateLimit{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := Options{RateLimit: tt.rl, UDPAmplificationLimit: tt.amplification, CookieSecrets: [][16]byte{testSecret}}
			loop := func() *udpLoop {
				s := New(opts, hclog.NewNullLogger())
				s.Update(testConfig(), testSnapshot(1))
				l, err := newUDPLoop(s, nil)
				if err != nil {
					t.Fatal(err)
				}
				return l
			}
			fast, full := loop(), loop()
			now := time.Now()
			var fastHits, answered, total int
			for _, client := range clients {
				corpus := fastCorpus(t, fast.cookies, client, cookieTime(now))
				for i, pkt := range corpus {
					at := now.Add(time.Duration(i) * time.Millisecond)
					a := asker{client: client, now: cookieTime(at), cookies: fast.cookies, amplification: fast.amplification}
					if _, _, ok := fastAnswer(nil, pkt, a, fast.view, &fastQuery{}); ok {
						fastHits++
					}
					got := fast.answer(nil, pkt, client, at)
					want := full.full(nil, pkt, a, at)
					total++
					if want != nil {
						answered++
					}
					if !bytes.Equal(got, want) {
						req := new(dns.Msg)
						_ = req.Unpack(pkt)
						t.Fatalf("client %s query %v:\nfast %x\nfull %x", client, req, got, want)
					}
				}
			}
			t.Logf("%d queries, %d answered, %d on the fast path", total, answered, fastHits)
			if fastHits < total/20 {
				t.Errorf("fast path answered %d of %d queries, want the common ones (over 5%%)", fastHits, total)
			}
			if answered == total && tt.rl.ResponsesPerSecond > 0 {
				t.Errorf("no query was rate limited; the test does not exercise the limiter")
			}
		})
	}
}

// FuzzFastPath feeds arbitrary datagrams to the fast path: whatever it
// answers must be byte for byte the full path's reply, and nothing may
// panic.
func FuzzFastPath(f *testing.F) {
	jar := newCookieJar([][16]byte{testSecret})
	client := netip.MustParseAddr("10.2.0.1")
	now := cookieTime(time.Now())
	for i, pkt := range fastCorpus(f, jar, client, now) {
		if i%7 == 0 {
			f.Add(pkt)
		}
	}
	s := New(Options{CookieSecrets: [][16]byte{testSecret}}, hclog.NewNullLogger())
	s.Update(testConfig(), testSnapshot(1))
	v := s.view.Load()
	var fq fastQuery
	f.Fuzz(func(t *testing.T, pkt []byte) {
		for _, amplification := range []int{0, 4} {
			a := asker{client: client, now: now, cookies: jar, amplification: amplification}
			fast, _, ok := fastAnswer(nil, pkt, a, v, &fq)
			if !ok {
				continue
			}
			if full := fullPathReply(pkt, a, v); !bytes.Equal(fast, full) {
				t.Fatalf("query %x\nfast %x\nfull %x", pkt, fast, full)
			}
		}
	})
}

// TestFastPathServesManyClients: with rate limiting on at its default,
// queries from several loopback addresses (each its own /24) all get
// answers, from the fast path, identical to the full path's.
func TestFastPathServesManyClients(t *testing.T) {
	rl := config.RateLimit{ResponsesPerSecond: 200, Slip: 2, IPv4PrefixLen: 24, IPv6PrefixLen: 56}
	_, addr, hits := startCheckedServer(t, Options{RateLimit: rl}, testConfig(), testSnapshot(1))
	const sources, perSource = 5, 50
	for i := 1; i <= sources; i++ {
		src := &net.UDPAddr{IP: net.IPv4(127, 0, byte(i), 1)}
		c := &dns.Client{Net: "udp", Timeout: 2 * time.Second, Dialer: &net.Dialer{LocalAddr: src}}
		for j := range perSource {
			name := cacheHost
			if j%2 == 1 {
				name = "CaChE." + zone // 0x20
			}
			r, _, err := c.Exchange(query(name, dns.TypeA, withEDNS(1232)), addr)
			if err != nil {
				t.Fatalf("from %s: %v", src, err)
			}
			if len(r.Answer) != 1 || r.Truncated || r.Answer[0].Header().Name != name {
				t.Fatalf("from %s, within the limit: %v", src, r)
			}
		}
	}
	if got := hits.Load(); got != sources*perSource {
		t.Errorf("fast path answered %d of %d queries", got, sources*perSource)
	}
}
