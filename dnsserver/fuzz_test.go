package dnsserver

import (
	"encoding/binary"
	"encoding/hex"
	"net/netip"
	"testing"

	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/miekg/dns"
)

// FuzzAnswer feeds arbitrary bytes to the request path as dns.Server does:
// what miekg/dns cannot unpack never reaches answer (miekg/dns answers
// FORMERR or drops it); everything else must get a reply that packs,
// unpacks, matches the request ID and fits the UDP size it allows, and
// over UDP the amplification cap. No panics, whatever the input.
func FuzzAnswer(f *testing.F) {
	seed := func(m *dns.Msg) {
		b, err := m.Pack()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	seed(query(cacheHost, dns.TypeA))
	seed(query("CaChE."+zone, dns.TypeAAAA, withECS("10.2.3.0/24")))
	seed(query(manyHost, dns.TypeA, withEDNS(512)))
	seed(query("_why."+cacheHost, dns.TypeTXT, withECS("2001:db8:1::/48")))
	seed(query(zone, dns.TypeNS, withEDNS(4096)))
	seed(query("nope."+zone, dns.TypeA))
	seed(query("id.server.", dns.TypeTXT, func(m *dns.Msg) { m.Question[0].Qclass = dns.ClassCHAOS }))
	seed(query("cloud."+zone, dns.TypeANY, func(m *dns.Msg) { m.SetEdns0(1232, true); m.IsEdns0().SetVersion(1) }))
	seed(query(cacheHost, dns.TypeA, func(m *dns.Msg) { m.Question = append(m.Question, m.Question[0]) }))

	v := buildView(testConfig(), manySnapshot(), "node-a", DefaultMaxUDPSize, hclog.NewNullLogger())
	clients := []netip.Addr{
		netip.MustParseAddr("127.0.0.1"),
		netip.MustParseAddr("10.2.0.1"),
		netip.MustParseAddr("2001:db8:1::1"),
		{},
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		req := new(dns.Msg)
		if err := req.Unpack(data); err != nil {
			return
		}
		for i, client := range clients {
			tcp := i%2 == 1
			a := testAsker(client, tcp)
			a.amplification = fuzzAmplification
			resp, out := answerInto(new(dns.Msg), req, a, v)
			if resp == nil {
				if !req.Response {
					t.Fatalf("no reply to request %v", req)
				}
				continue
			}
			b, err := resp.Pack()
			if err != nil {
				t.Fatalf("reply does not pack: %v\nrequest: %v\nreply: %v", err, req, resp)
			}
			back := new(dns.Msg)
			if err := back.Unpack(b); err != nil {
				t.Fatalf("reply does not unpack: %v\nrequest: %v\nreply: %v", err, req, resp)
			}
			if back.Id != req.Id || !back.Response {
				t.Fatalf("reply id %d QR %v to request id %d", back.Id, back.Response, req.Id)
			}
			if !tcp {
				limit := dns.MinMsgSize
				if opt := req.IsEdns0(); opt != nil {
					limit = min(max(int(opt.UDPSize()), dns.MinMsgSize), DefaultMaxUDPSize)
				}
				if len(b) > limit {
					t.Fatalf("UDP reply of %d bytes, limit %d\nrequest: %v", len(b), limit, req)
				}
				if out.cookie != cookieGood && len(b) > fuzzAmplification*len(data) {
					t.Fatalf("UDP reply of %d bytes to a %d-byte query without a valid cookie\nrequest: %v", len(b), len(data), req)
				}
			}
		}
	})
}

// fuzzAmplification is the amplification cap under fuzzing: the smallest
// one the config accepts, the hardest to keep.
const fuzzAmplification = 2

// FuzzEDNSOptions feeds arbitrary OPT option data to the query path: a
// COOKIE option with arbitrary content, then arbitrary further option
// bytes. A COOKIE of a malformed length gets FORMERR (RFC 7873 §5.2.2);
// any other reply that is not FORMERR or BADVERS carries the client
// cookie with a server cookie that this node takes back as valid; over
// UDP without a valid server cookie the reply stays within the
// amplification cap. No panics, whatever the input.
func FuzzEDNSOptions(f *testing.F) {
	client := netip.MustParseAddr("192.0.2.1")
	jar := testAsker(client, false).cookies
	issued := jar.make([]byte("clientck"), client, cookieTime(time.Now()))
	ecs, _ := hex.DecodeString("000800070001180a0203") // ECS 10.2.3.0/24
	f.Add([]byte("clientck"), []byte(nil), false)
	f.Add(issued[:], []byte(nil), false)
	f.Add(issued[:], ecs, true)
	f.Add(append([]byte("clientck"), make([]byte, 16)...), []byte(nil), false)
	f.Add([]byte("short"), []byte(nil), false)
	f.Add(make([]byte, 41), ecs, false)
	f.Add([]byte("clientck"), []byte{0, 10, 0, 3, 1, 2, 3}, false) // a second, malformed COOKIE
	f.Add([]byte{}, []byte{0, 12, 0, 4, 0, 0, 0, 0}, false)        // padding

	v := buildView(testConfig(), manySnapshot(), "node-a", DefaultMaxUDPSize, hclog.NewNullLogger())
	names := []string{cacheHost, manyHost, "_why." + cacheHost, zone}
	f.Fuzz(func(t *testing.T, cookie, options []byte, tcp bool) {
		rdata := binary.BigEndian.AppendUint16(nil, dns.EDNS0COOKIE)
		rdata = binary.BigEndian.AppendUint16(rdata, uint16(len(cookie)))
		rdata = append(append(rdata, cookie...), options...)
		if len(cookie) > 0xffff || len(rdata) > 0xffff {
			return
		}
		for _, name := range names {
			wire, err := query(name, dns.TypeA).Pack()
			if err != nil {
				t.Fatal(err)
			}
			wire[11] = 1                                                                            // ARCOUNT: the OPT record below
			wire = append(wire, 0, byte(dns.TypeOPT>>8), byte(dns.TypeOPT), 0x04, 0xd0, 0, 0, 0, 0) // root, OPT, 1232, TTL
			wire = binary.BigEndian.AppendUint16(wire, uint16(len(rdata)))
			wire = append(wire, rdata...)
			req := new(dns.Msg)
			if err := req.Unpack(wire); err != nil {
				return // miekg/dns answers FORMERR before the handler
			}
			a := testAsker(client, tcp)
			a.cookies = jar
			a.amplification = fuzzAmplification
			resp, out := answerInto(new(dns.Msg), req, a, v)
			b, err := resp.Pack()
			if err != nil {
				t.Fatalf("reply does not pack: %v\nrequest: %v\nreply: %v", err, req, resp)
			}
			back := new(dns.Msg)
			if err := back.Unpack(b); err != nil {
				t.Fatalf("reply does not unpack: %v", err)
			}
			wellFormed := len(cookie) == clientCookieLen || (len(cookie) >= minCookieLen && len(cookie) <= maxCookieLen)
			switch {
			case !wellFormed:
				if back.Rcode != dns.RcodeFormatError {
					t.Fatalf("COOKIE of %d bytes answered %s, want FORMERR", len(cookie), dns.RcodeToString[back.Rcode])
				}
			case back.Rcode != dns.RcodeFormatError && back.Rcode != dns.RcodeBadVers:
				got, ok := parseCookie(&dns.EDNS0_COOKIE{Cookie: cookieOf(back)})
				if !ok || got.n != clientCookieLen+serverCookieLen || string(got.raw[:clientCookieLen]) != string(cookie[:clientCookieLen]) {
					t.Fatalf("reply cookie %q to client cookie %x", cookieOf(back), cookie[:clientCookieLen])
				}
				if st := jar.check(&got, client, a.now); st != cookieGood {
					t.Fatalf("reply cookie checks as %d, want good", st)
				}
			}
			if !tcp && out.cookie != cookieGood && len(b) > fuzzAmplification*len(wire) {
				t.Fatalf("UDP reply of %d bytes to a %d-byte query without a valid cookie", len(b), len(wire))
			}
		}
	})
}
