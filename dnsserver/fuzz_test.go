package dnsserver

import (
	"net/netip"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/miekg/dns"
)

// FuzzAnswer feeds arbitrary bytes to the request path as dns.Server does:
// what miekg/dns cannot unpack never reaches answer (miekg/dns answers
// FORMERR or drops it); everything else must get a reply that packs,
// unpacks, matches the request ID and fits the UDP size it allows. No
// panics, whatever the input.
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
			resp := answer(req, testAsker(client, tcp), v)
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
			}
		}
	})
}
