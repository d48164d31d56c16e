package dnsserver

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/aagtm/aagtm/config"
	"github.com/aagtm/aagtm/policy"
)

// The records of testConfig/testSnapshot(1), as dig prints them.
const (
	soaRR      = zone + "\t3600\tIN\tSOA\tns1." + zone + " hostmaster.example.com. 2024010101 3600 600 86400 5"
	negSOA     = zone + "\t5\tIN\tSOA\tns1." + zone + " hostmaster.example.com. 2024010101 3600 600 86400 5"
	cacheUSE   = "cache." + zone + "\t5\tIN\tA\t10.1.0.10"
	cacheUSE6  = "cache." + zone + "\t5\tIN\tAAAA\t2001:db8:1::10"
	cacheEUW   = "cache." + zone + "\t5\tIN\tA\t10.2.0.10"
	ordersA    = "orders." + zone + "\t5\tIN\tA\t10.1.0.20"
	cloudUSE   = "cloud." + zone + "\t5\tIN\tCNAME\tredis-1.us.cloud.example.net."
	cloudEUW   = "cloud." + zone + "\t5\tIN\tCNAME\tredis-2.eu.cloud.example.net."
	ns1        = zone + "\t3600\tIN\tNS\tns1." + zone
	ns2        = zone + "\t3600\tIN\tNS\tns2.example.net."
	ns3        = zone + "\t3600\tIN\tNS\tns3.anycast." + zone
	glue3      = "ns3.anycast." + zone + "\t3600\tIN\tA\t192.0.2.54"
	glueA      = "ns1." + zone + "\t3600\tIN\tA\t192.0.2.53"
	glueAAAA   = "ns1." + zone + "\t3600\tIN\tAAAA\t2001:db8::53"
	whyUSE     = "_why.cache." + zone + "\t5\tIN\tTXT\t\"gen 1: cache-use is the nearest eligible member for us-east\""
	whyEUW     = "_why.cache." + zone + "\t5\tIN\tTXT\t\"gen 1: cache-euw is the nearest eligible member for eu-west\""
	noECS      = -1 // want.scope: the reply must carry no ECS option
	manyHost   = "many." + zone
	manyCount  = 100
	cacheHost  = "cache." + zone
	ordersHost = "orders." + zone
)

// want is what a reply must be. Sections compare exactly (OPT left out)
// unless check is set, which then replaces the section comparison.
type want struct {
	rcode             int
	aa, tc            bool
	answer, ns, extra []string
	opt               bool
	scope             int // ECS scope echoed; noECS: no ECS option
	check             func(t *testing.T, r *dns.Msg)
}

func TestServe(t *testing.T) {
	cfg := testConfig()
	snap := manySnapshot()
	_, addr := startServer(t, Options{}, cfg, snap)

	rd := func(m *dns.Msg) { m.RecursionDesired = true }
	class := func(c uint16) func(*dns.Msg) { return func(m *dns.Msg) { m.Question[0].Qclass = c } }
	opcode := func(o int) func(*dns.Msg) { return func(m *dns.Msg) { m.Opcode = o } }
	questions := func(n int) func(*dns.Msg) {
		return func(m *dns.Msg) {
			q := m.Question[0]
			m.Question = nil
			for range n {
				m.Question = append(m.Question, q)
			}
		}
	}
	ednsVersion := func(v uint8) func(*dns.Msg) {
		return func(m *dns.Msg) { m.SetEdns0(1232, false); m.IsEdns0().SetVersion(v) }
	}
	ecsZero := func(m *dns.Msg) {
		m.SetEdns0(1232, false)
		o := m.IsEdns0()
		o.Option = append(o.Option, &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 0})
	}
	manyAnswer := func(n int, tc bool, maxSize int) func(t *testing.T, r *dns.Msg) {
		return func(t *testing.T, r *dns.Msg) {
			if r.Truncated != tc {
				t.Errorf("TC = %v, want %v", r.Truncated, tc)
			}
			if n >= 0 && len(r.Answer) != n {
				t.Errorf("%d answers, want %d", len(r.Answer), n)
			}
			if n < 0 && len(r.Answer) >= manyCount {
				t.Errorf("%d answers, want fewer than %d", len(r.Answer), manyCount)
			}
			r.Compress = true // the size on the wire
			if l := r.Len(); maxSize > 0 && l > maxSize {
				t.Errorf("reply is %d bytes, above %d", l, maxSize)
			}
		}
	}

	tests := []struct {
		name string
		net  string // udp when empty
		q    *dns.Msg
		want want
	}{
		// Database hosts.
		{"A nearest default region", "", query(cacheHost, dns.TypeA), want{aa: true, answer: []string{cacheUSE}, scope: noECS}},
		{"A over TCP", "tcp", query(cacheHost, dns.TypeA), want{aa: true, answer: []string{cacheUSE}, scope: noECS}},
		{"AAAA", "", query(cacheHost, dns.TypeAAAA), want{aa: true, answer: []string{cacheUSE6}, scope: noECS}},
		{"A failover", "", query(ordersHost, dns.TypeA), want{aa: true, answer: []string{ordersA}, scope: noECS}},
		{"CNAME for A", "", query("cloud."+zone, dns.TypeA), want{aa: true, answer: []string{cloudUSE}, scope: noECS}},
		{"CNAME for AAAA", "", query("cloud."+zone, dns.TypeAAAA), want{aa: true, answer: []string{cloudUSE}, scope: noECS}},
		{"CNAME for MX", "", query("cloud."+zone, dns.TypeMX), want{aa: true, answer: []string{cloudUSE}, scope: noECS}},
		{"CNAME for CNAME", "", query("cloud."+zone, dns.TypeCNAME), want{aa: true, answer: []string{cloudUSE}, scope: noECS}},
		{"SERVFAIL answer", "", query("broken."+zone, dns.TypeA), want{rcode: dns.RcodeServerFailure, scope: noECS}},
		{"no answer in snapshot", "", query("pending."+zone, dns.TypeA), want{rcode: dns.RcodeServerFailure, scope: noECS}},
		{"ANY at host", "", query(cacheHost, dns.TypeANY), want{aa: true, answer: []string{cacheUSE, cacheUSE6}, scope: noECS}},
		{"RD copied RA clear", "", query(cacheHost, dns.TypeA, rd), want{aa: true, answer: []string{cacheUSE}, scope: noECS, check: func(t *testing.T, r *dns.Msg) {
			if !r.RecursionDesired || r.RecursionAvailable {
				t.Errorf("RD=%v RA=%v, want RD copied and RA clear", r.RecursionDesired, r.RecursionAvailable)
			}
		}}},

		// NODATA and NXDOMAIN carry the SOA with TTL min(TTL, MINIMUM).
		{"NODATA AAAA only IPv4", "", query(ordersHost, dns.TypeAAAA), want{aa: true, ns: []string{negSOA}, scope: noECS}},
		{"NODATA MX", "", query(cacheHost, dns.TypeMX), want{aa: true, ns: []string{negSOA}, scope: noECS}},
		{"NODATA TXT at host", "", query(cacheHost, dns.TypeTXT), want{aa: true, ns: []string{negSOA}, scope: noECS}},
		{"NODATA A at apex", "", query(zone, dns.TypeA), want{aa: true, ns: []string{negSOA}, scope: noECS}},
		{"NODATA A at _why", "", query("_why."+cacheHost, dns.TypeA), want{aa: true, ns: []string{negSOA}, scope: noECS}},
		{"NXDOMAIN", "", query("nope."+zone, dns.TypeA), want{rcode: dns.RcodeNameError, aa: true, ns: []string{negSOA}, scope: noECS}},
		{"NXDOMAIN below a host", "", query("x."+cacheHost, dns.TypeA), want{rcode: dns.RcodeNameError, aa: true, ns: []string{negSOA}, scope: noECS}},
		{"NXDOMAIN below _why", "", query("x._why."+cacheHost, dns.TypeTXT), want{rcode: dns.RcodeNameError, aa: true, ns: []string{negSOA}, scope: noECS}},

		// Apex.
		{"SOA", "", query(zone, dns.TypeSOA), want{aa: true, answer: []string{soaRR}, scope: noECS}},
		{"NS with glue", "", query(zone, dns.TypeNS), want{aa: true, answer: []string{ns1, ns2, ns3}, extra: []string{glueA, glueAAAA, glue3}, scope: noECS}},
		{"ANY at apex", "", query(zone, dns.TypeANY), want{aa: true, answer: []string{soaRR}, scope: noECS}},
		{"in-zone NS A", "", query("ns1."+zone, dns.TypeA), want{aa: true, answer: []string{glueA}, scope: noECS}},
		{"in-zone NS AAAA", "", query("ns1."+zone, dns.TypeAAAA), want{aa: true, answer: []string{glueAAAA}, scope: noECS}},
		{"in-zone NS no AAAA", "", query("ns3.anycast."+zone, dns.TypeAAAA), want{aa: true, ns: []string{negSOA}, scope: noECS}},
		{"empty non-terminal NODATA", "", query("anycast."+zone, dns.TypeA), want{aa: true, ns: []string{negSOA}, scope: noECS}},

		// Refused and errors.
		{"outside zone", "", query("example.org.", dns.TypeA), want{rcode: dns.RcodeRefused, scope: noECS}},
		{"suffix but not label", "", query("xgtm.example.com.", dns.TypeA), want{rcode: dns.RcodeRefused, scope: noECS}},
		{"zone transfer", "tcp", query(zone, dns.TypeAXFR), want{rcode: dns.RcodeRefused, scope: noECS}},
		{"class CH for a host", "", query(cacheHost, dns.TypeA, class(dns.ClassCHAOS)), want{rcode: dns.RcodeRefused, scope: noECS}},
		{"class HS", "", query(cacheHost, dns.TypeA, class(dns.ClassHESIOD)), want{rcode: dns.RcodeRefused, scope: noECS}},
		{"class ANY", "", query(cacheHost, dns.TypeA, class(dns.ClassANY)), want{rcode: dns.RcodeRefused, scope: noECS}},
		{"QDCOUNT 0", "", query(cacheHost, dns.TypeA, questions(0)), want{rcode: dns.RcodeFormatError, scope: noECS}},
		{"QDCOUNT 2", "", query(cacheHost, dns.TypeA, questions(2)), want{rcode: dns.RcodeFormatError, scope: noECS}},
		{"opcode STATUS", "", query(cacheHost, dns.TypeA, opcode(dns.OpcodeStatus)), want{rcode: dns.RcodeNotImplemented, scope: noECS}},
		{"opcode NOTIFY", "", query(zone, dns.TypeSOA, opcode(dns.OpcodeNotify)), want{rcode: dns.RcodeNotImplemented, scope: noECS}},
		{"opcode UPDATE", "", query(zone, dns.TypeSOA, opcode(dns.OpcodeUpdate)), want{rcode: dns.RcodeNotImplemented, scope: noECS}},

		// CH TXT id.server.
		{"CH id.server", "", query("id.server.", dns.TypeTXT, class(dns.ClassCHAOS)), want{aa: true, answer: []string{"id.server.\t0\tCH\tTXT\t\"node-a\""}, scope: noECS}},
		{"CH hostname.bind", "", query("hostname.bind.", dns.TypeTXT, class(dns.ClassCHAOS)), want{aa: true, answer: []string{"hostname.bind.\t0\tCH\tTXT\t\"node-a\""}, scope: noECS}},
		{"CH version.bind", "", query("version.bind.", dns.TypeTXT, class(dns.ClassCHAOS)), want{rcode: dns.RcodeRefused, scope: noECS}},

		// _why.
		{"_why TXT", "", query("_why."+cacheHost, dns.TypeTXT), want{aa: true, answer: []string{whyUSE}, scope: noECS}},
		{"_why TXT by ECS", "", query("_why."+cacheHost, dns.TypeTXT, withECS("10.2.7.0/24")), want{aa: true, answer: []string{whyEUW}, opt: true, scope: 16}},
		{"_why pending", "", query("_why.pending."+zone, dns.TypeTXT), want{aa: true, answer: []string{"_why.pending." + zone + "\t0\tIN\tTXT\t\"no answer yet: the policy engine has not produced one for this host\""}, scope: noECS}},

		// Case is preserved, matching is not case sensitive.
		{"mixed case", "", query("CaChE.GtM.ExAmPlE.cOm.", dns.TypeA), want{aa: true, answer: []string{"CaChE.GtM.ExAmPlE.cOm.\t5\tIN\tA\t10.1.0.10"}, scope: noECS, check: func(t *testing.T, r *dns.Msg) {
			if r.Question[0].Name != "CaChE.GtM.ExAmPlE.cOm." {
				t.Errorf("question %q, want case kept", r.Question[0].Name)
			}
		}}},
		{"mixed case _why", "", query("_WHY.Cache."+zone, dns.TypeTXT), want{aa: true, answer: []string{strings.Replace(whyUSE, "_why.cache.", "_WHY.Cache.", 1)}, scope: noECS}},
		{"mixed case apex NS", "", query("GTM.example.com.", dns.TypeNS), want{aa: true, answer: []string{strings.Replace(ns1, zone, "GTM.example.com.", 1), strings.Replace(ns2, zone, "GTM.example.com.", 1), strings.Replace(ns3, zone, "GTM.example.com.", 1)}, extra: []string{glueA, glueAAAA, glue3}, scope: noECS}},
		{"mixed case NXDOMAIN", "", query("NOPE.GTM.example.com.", dns.TypeA), want{rcode: dns.RcodeNameError, aa: true, ns: []string{negSOA}, scope: noECS}},

		// EDNS0: OPT only when asked, BADVERS for version 1.
		{"OPT when asked", "", query(cacheHost, dns.TypeA, withEDNS(1232)), want{aa: true, answer: []string{cacheUSE}, opt: true, scope: noECS, check: func(t *testing.T, r *dns.Msg) {
			if o := r.IsEdns0(); o.UDPSize() != DefaultMaxUDPSize || o.Version() != 0 {
				t.Errorf("OPT size %d version %d, want %d and 0", o.UDPSize(), o.Version(), DefaultMaxUDPSize)
			}
		}}},
		{"OPT on error too", "", query("example.org.", dns.TypeA, withEDNS(1232)), want{rcode: dns.RcodeRefused, opt: true, scope: noECS}},
		{"BADVERS", "", query(cacheHost, dns.TypeA, ednsVersion(1)), want{rcode: dns.RcodeBadVers, opt: true, scope: noECS, check: func(t *testing.T, r *dns.Msg) {
			if v := r.IsEdns0().Version(); v != 0 {
				t.Errorf("OPT version %d, want 0", v)
			}
		}}},
		{"DO bit copied", "", query(cacheHost, dns.TypeA, func(m *dns.Msg) { m.SetEdns0(1232, true) }), want{aa: true, answer: []string{cacheUSE}, opt: true, scope: noECS, check: func(t *testing.T, r *dns.Msg) {
			if !r.IsEdns0().Do() {
				t.Error("DO bit not copied")
			}
		}}},

		// UDP size: 512 without EDNS, the advertised size up to 1232, TC
		// when it does not fit, everything over TCP.
		{"UDP no EDNS truncated", "", query(manyHost, dns.TypeA), want{aa: true, tc: true, scope: noECS, check: manyAnswer(-1, true, 512)}},
		{"UDP EDNS 100 counts as 512", "", query(manyHost, dns.TypeA, withEDNS(100)), want{aa: true, tc: true, opt: true, scope: noECS, check: manyAnswer(-1, true, 512)}},
		{"UDP EDNS 4096 capped at 1232", "", query(manyHost, dns.TypeA, withEDNS(4096)), want{aa: true, tc: true, opt: true, scope: noECS, check: manyAnswer(-1, true, 1232)}},
		{"UDP EDNS 1232 small answer fits", "", query(cacheHost, dns.TypeANY, withEDNS(1232)), want{aa: true, answer: []string{cacheUSE, cacheUSE6}, opt: true, scope: noECS}},
		{"TCP full answer", "tcp", query(manyHost, dns.TypeA), want{aa: true, scope: noECS, check: manyAnswer(manyCount, false, 0)}},
		{"TCP full answer with EDNS 512", "tcp", query(manyHost, dns.TypeA, withEDNS(512)), want{aa: true, opt: true, scope: noECS, check: manyAnswer(manyCount, false, 0)}},

		// ECS picks the region and is echoed with the scope used.
		{"ECS us-east", "", query(cacheHost, dns.TypeA, withECS("10.1.3.0/24")), want{aa: true, answer: []string{cacheUSE}, opt: true, scope: 16}},
		{"ECS eu-west", "", query(cacheHost, dns.TypeA, withECS("10.2.3.0/24")), want{aa: true, answer: []string{cacheEUW}, opt: true, scope: 16}},
		{"ECS eu-west CNAME", "", query("cloud."+zone, dns.TypeA, withECS("10.2.3.0/24")), want{aa: true, answer: []string{cloudEUW}, opt: true, scope: 16}},
		{"ECS IPv6 us-east", "", query(cacheHost, dns.TypeA, withECS("2001:db8:1:500::/56")), want{aa: true, answer: []string{cacheUSE}, opt: true, scope: 48}},
		{"ECS no match default region", "", query(cacheHost, dns.TypeA, withECS("192.168.1.0/24")), want{aa: true, answer: []string{cacheUSE}, opt: true, scope: 1}},
		{"ECS failover scope 0", "", query(ordersHost, dns.TypeA, withECS("10.2.3.0/24")), want{aa: true, answer: []string{ordersA}, opt: true, scope: 0}},
		{"ECS NXDOMAIN scope 0", "", query("nope."+zone, dns.TypeA, withECS("10.2.3.0/24")), want{rcode: dns.RcodeNameError, aa: true, ns: []string{negSOA}, opt: true, scope: 0}},
		{"ECS NODATA scope 0", "", query(cacheHost, dns.TypeMX, withECS("10.2.3.0/24")), want{aa: true, ns: []string{negSOA}, opt: true, scope: 0}},
		{"ECS apex scope 0", "", query(zone, dns.TypeSOA, withECS("10.2.3.0/24")), want{aa: true, answer: []string{soaRR}, opt: true, scope: 0}},
		{"ECS source 0 uses resolver", "", query(cacheHost, dns.TypeA, ecsZero), want{aa: true, answer: []string{cacheUSE}, opt: true, scope: 0}},
		{"ECS over TCP", "tcp", query(cacheHost, dns.TypeA, withECS("10.2.3.0/24")), want{aa: true, answer: []string{cacheEUW}, opt: true, scope: 16}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			network := tt.net
			if network == "" {
				network = "udp"
			}
			r := exchange(t, network, addr, tt.q)
			checkReply(t, tt.q, r, tt.want)
		})
	}
}

// manySnapshot is testSnapshot(1) with manyCount records for "many", more
// than fit in 1232 bytes.
func manySnapshot() *policy.Snapshot {
	snap := testSnapshot(1)
	many := snap.Hosts[manyHost].ByRegion["us-east"]
	many.Records = many.Records[:0]
	for i := 1; i <= manyCount; i++ {
		many.Records = append(many.Records, aRec(fmt.Sprintf("many-%d", i), fmt.Sprintf("10.3.%d.%d", i/250, i%250)))
	}
	return snap
}

func checkReply(t *testing.T, q, r *dns.Msg, w want) {
	t.Helper()
	if r.Id != q.Id || !r.Response {
		t.Errorf("id %d response %v, want id %d and QR", r.Id, r.Response, q.Id)
	}
	if r.Rcode != w.rcode {
		t.Errorf("rcode %s, want %s", dns.RcodeToString[r.Rcode], dns.RcodeToString[w.rcode])
	}
	if r.Authoritative != w.aa {
		t.Errorf("AA %v, want %v", r.Authoritative, w.aa)
	}
	if r.Truncated != w.tc {
		t.Errorf("TC %v, want %v", r.Truncated, w.tc)
	}
	if r.RecursionAvailable {
		t.Error("RA set")
	}
	if len(q.Question) == 1 && (len(r.Question) != 1 || r.Question[0] != q.Question[0]) {
		t.Errorf("question %v, want %v", r.Question, q.Question)
	}
	if got := r.IsEdns0() != nil; got != w.opt {
		t.Errorf("OPT in reply %v, want %v", got, w.opt)
	}
	ecs := ecsOf(r)
	switch {
	case w.scope == noECS && ecs != nil:
		t.Errorf("ECS option %v in reply, want none", ecs)
	case w.scope != noECS && ecs == nil:
		t.Errorf("no ECS option in reply, want scope %d", w.scope)
	case w.scope != noECS:
		qe := ecsOf(q)
		if int(ecs.SourceScope) != w.scope {
			t.Errorf("ECS scope %d, want %d", ecs.SourceScope, w.scope)
		}
		if ecs.Family != qe.Family || ecs.SourceNetmask != qe.SourceNetmask || (qe.Family != 0 && !ecs.Address.Equal(qe.Address)) {
			t.Errorf("ECS echoed as %v, query had %v", ecs, qe)
		}
	}
	if w.check != nil {
		w.check(t, r)
		return
	}
	for _, s := range []struct {
		name      string
		got, want []string
	}{{"answer", rrStrings(r.Answer), w.answer}, {"authority", rrStrings(r.Ns), w.ns}, {"additional", rrStrings(r.Extra), w.extra}} {
		if !slices.Equal(s.got, s.want) {
			t.Errorf("%s section\n got: %q\nwant: %q", s.name, s.got, s.want)
		}
	}
}

// TestMalformedECS sends ECS options that miekg/dns cannot pack: they are
// built valid and then patched on the wire.
func TestMalformedECS(t *testing.T) {
	_, addr := startServer(t, Options{}, testConfig(), testSnapshot(1))
	tests := []struct {
		name   string
		prefix string
		patch  func(b []byte) // b ends with the ECS option's address bytes
	}{
		// Option: family(2) source(1) scope(1) address(ceil(source/8)).
		{"source prefix 33 for IPv4", "10.1.3.0/24", func(b []byte) { b[len(b)-5] = 33 }},
		{"source prefix 129 for IPv6", "2001:db8:1::/48", func(b []byte) { b[len(b)-8] = 129 }},
		{"address bits beyond source prefix", "10.16.0.0/12", func(b []byte) { b[len(b)-1] = 0x11 }},
		{"unknown family", "10.1.3.0/24", func(b []byte) { b[len(b)-7] = 9 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := query(cacheHost, dns.TypeA, withECS(tt.prefix))
			b, err := q.Pack()
			if err != nil {
				t.Fatal(err)
			}
			tt.patch(b)
			r := rawExchange(t, addr, nil, b)
			if r == nil {
				t.Fatal("no reply")
			}
			if r.Rcode != dns.RcodeFormatError {
				t.Errorf("rcode %s, want FORMERR", dns.RcodeToString[r.Rcode])
			}
			if r.Id != q.Id {
				t.Errorf("id %d, want %d", r.Id, q.Id)
			}
		})
	}
}

// rawExchange sends b over UDP from laddr (any when nil) and returns the
// parsed reply, or nil when none comes within 300ms.
func rawExchange(t testing.TB, addr string, laddr *net.UDPAddr, b []byte) *dns.Msg {
	t.Helper()
	out := rawExchangeBytes(t, addr, laddr, b)
	if out == nil {
		return nil
	}
	r := new(dns.Msg)
	if err := r.Unpack(out); err != nil {
		t.Fatalf("reply does not parse: %v", err)
	}
	return r
}

// rawExchangeBytes sends the datagram b to addr from laddr (any when nil)
// and returns the reply datagram, nil when none comes within 300ms.
func rawExchangeBytes(t testing.TB, addr string, laddr *net.UDPAddr, b []byte) []byte {
	t.Helper()
	raddr, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.DialUDP("udp", laddr, raddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write(b); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	buf := make([]byte, 65535)
	n, err := c.Read(buf)
	if err != nil {
		return nil
	}
	return buf[:n]
}

// TestMalformedPackets: garbage is answered FORMERR when the header
// parses, dropped otherwise, and the server goes on answering.
func TestMalformedPackets(t *testing.T) {
	reg := prometheus.NewRegistry()
	_, addr := startServer(t, Options{Registerer: reg}, testConfig(), testSnapshot(1))
	good, _ := query(cacheHost, dns.TypeA).Pack()
	tests := []struct {
		name    string
		b       []byte
		formerr bool
	}{
		{"empty", nil, false},
		{"short header", []byte{0x12, 0x34, 0x01}, false},
		{"truncated question", good[:len(good)-3], true},
		{"qdcount beyond data", append([]byte{0xab, 0xcd, 0, 0, 0xff, 0xff, 0, 0, 0, 0, 0, 0}, good[12:]...), true},
		{"label pointer loop", []byte{0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1}, true},
		{"response bit set", func() []byte { b := slices.Clone(good); b[2] |= 0x80; return b }(), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := rawExchange(t, addr, nil, tt.b)
			switch {
			case tt.formerr && r == nil:
				t.Error("no reply, want FORMERR")
			case tt.formerr && r.Rcode != dns.RcodeFormatError:
				t.Errorf("rcode %s, want FORMERR", dns.RcodeToString[r.Rcode])
			case !tt.formerr && r != nil:
				t.Errorf("reply %v, want none", r)
			}
			// The server still answers.
			if r := exchange(t, "udp", addr, query(cacheHost, dns.TypeA)); r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 {
				t.Fatalf("after garbage: %v", r)
			}
		})
	}
	if n := metricValue(t, reg, "aagtm_dns_malformed_total"); n < 4 {
		t.Errorf("aagtm_dns_malformed_total = %v, want at least 4", n)
	}
}

// TestUpdateSwaps: answers follow Update, and under concurrent queries and
// updates every reply comes wholly from one snapshot.
func TestUpdateSwaps(t *testing.T) {
	cfg := testConfig()
	s, addr := startServer(t, Options{}, cfg, testSnapshot(1))
	get := func() *dns.Msg { return exchange(t, "tcp", addr, query(manyHost, dns.TypeA)) }
	if r := get(); !strings.HasSuffix(rrStrings(r.Answer)[0], "10.3.1.1") {
		t.Fatalf("before Update: %v", r.Answer)
	}
	s.Update(cfg, testSnapshot(2))
	if r := get(); !strings.HasSuffix(rrStrings(r.Answer)[0], "10.3.2.1") {
		t.Fatalf("after Update: %v", r.Answer)
	}
	if r := exchange(t, "udp", addr, query("_why."+cacheHost, dns.TypeTXT)); !strings.Contains(rrStrings(r.Answer)[0], "gen 2") {
		t.Fatalf("_why after Update: %v", r.Answer)
	}

	// Hammer: the 60 records of a reply must all come from one snapshot.
	var stop atomic.Bool
	var wg sync.WaitGroup
	wg.Go(func() {
		for gen := 3; !stop.Load(); gen++ {
			s.Update(cfg, testSnapshot(gen))
		}
	})
	// Four clients at once, so handlers also share the view's records.
	var clients sync.WaitGroup
	for range 4 {
		clients.Go(func() {
			c := &dns.Client{Net: "tcp", Timeout: 2 * time.Second}
			for range 50 {
				r, _, err := c.Exchange(query(manyHost, dns.TypeA, withEDNS(1232)), addr)
				if err != nil {
					t.Error(err)
					return
				}
				third := map[string]bool{}
				for _, rr := range r.Answer {
					third[strings.Split(rr.(*dns.A).A.String(), ".")[2]] = true
				}
				if len(third) != 1 || len(r.Answer) != 60 {
					t.Errorf("reply mixes snapshots (%d records, generations %v)", len(r.Answer), third)
					return
				}
			}
		})
	}
	clients.Wait()
	stop.Store(true)
	wg.Wait()
}

// TestBeforeFirstUpdate: no config yet, IN queries get SERVFAIL, CH
// id.server works.
func TestBeforeFirstUpdate(t *testing.T) {
	_, addr := startServer(t, Options{}, nil, nil)
	if r := exchange(t, "udp", addr, query(cacheHost, dns.TypeA)); r.Rcode != dns.RcodeServerFailure {
		t.Errorf("rcode %s, want SERVFAIL", dns.RcodeToString[r.Rcode])
	}
	if r := exchange(t, "udp", addr, query("id.server.", dns.TypeTXT, func(m *dns.Msg) { m.Question[0].Qclass = dns.ClassCHAOS })); len(r.Answer) != 1 {
		t.Errorf("id.server: %v", r)
	}
}

// TestRateLimit: over the limit, UDP replies to one client network are
// dropped but every Slip-th is an empty TC reply; another network, another
// name and TCP are still answered. On IPv4, IPv6 and dual-stack sockets:
// the UDP loop reads each client's address (an IPv4 client of a
// dual-stack socket by its IPv4 address) and replies to it.
func TestRateLimit(t *testing.T) {
	tests := []struct {
		name   string
		listen string
		// client sends the burst to its own address, on the server's
		// port; other, when set, is a client in another network.
		client, other string
	}{
		{"IPv4", "127.0.0.1:0", "127.0.0.1", "127.0.1.1"},
		{"IPv6", "[::1]:0", "::1", ""},
		{"dual-stack socket, IPv4 clients", "[::]:0", "127.0.0.1", "127.0.1.1"},
		{"dual-stack socket, IPv6 client", "[::]:0", "::1", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			s, _ := startServer(t, Options{Listen: []string{tt.listen}, Registerer: reg, RateLimit: config.RateLimit{ResponsesPerSecond: 5, Slip: 2, IPv4PrefixLen: 24, IPv6PrefixLen: 56}}, testConfig(), testSnapshot(1))
			addr := net.JoinHostPort(tt.client, strconv.Itoa(int(s.Addrs()[0].Port())))
			testRateLimit(t, reg, addr, tt.client, tt.other)
		})
	}
}

// testRateLimit sends a burst from client to addr and checks what rate
// limiting did, and that the client's other traffic and other, a client
// in another network, are not limited.
func testRateLimit(t *testing.T, reg *prometheus.Registry, addr, client, other string) {
	t.Helper()
	raddr, _ := net.ResolveUDPAddr("udp", addr)
	conn, err := net.DialUDP("udp", &net.UDPAddr{IP: net.ParseIP(client)}, raddr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	const sent = 40
	for i := range sent {
		q := query(cacheHost, dns.TypeA)
		q.Id = uint16(i + 1)
		b, _ := q.Pack()
		if _, err := conn.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	var full, tc int
	buf := make([]byte, 4096)
	for {
		_ = conn.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		n, err := conn.Read(buf)
		if err != nil {
			break
		}
		r := new(dns.Msg)
		if err := r.Unpack(buf[:n]); err != nil {
			t.Fatal(err)
		}
		switch {
		case r.Truncated && len(r.Answer) == 0:
			tc++
		case len(r.Answer) == 1:
			full++
		default:
			t.Errorf("unexpected reply %v", r)
		}
	}
	// A burst of 5 (plus what refills while sending), then half of the
	// rest slipped, the other half dropped.
	if full < 5 || full > 8 {
		t.Errorf("%d full replies, want about 5", full)
	}
	if tc < 12 || tc > 20 {
		t.Errorf("%d TC replies, want about %d", tc, (sent-5)/2)
	}
	if full+tc >= sent {
		t.Errorf("nothing dropped: %d full + %d TC of %d", full, tc, sent)
	}
	t.Logf("sent %d: %d answered, %d slipped (TC), %d dropped", sent, full, tc, sent-full-tc)

	// The limited client still gets other names, and everything over TCP.
	if r := exchange(t, "udp", addr, query(ordersHost, dns.TypeA)); len(r.Answer) != 1 {
		t.Errorf("other name from the same client: %v", r)
	}
	if r := exchange(t, "tcp", addr, query(cacheHost, dns.TypeA)); len(r.Answer) != 1 {
		t.Errorf("TCP from the same client: %v", r)
	}
	// Another client network is not limited.
	for i := 0; i < 5 && other != ""; i++ {
		b, _ := query(cacheHost, dns.TypeA).Pack()
		r := rawExchange(t, addr, &net.UDPAddr{IP: net.ParseIP(other)}, b)
		if r == nil || len(r.Answer) != 1 || r.Truncated {
			t.Fatalf("other client network: %v", r)
		}
	}
	if d := metricValue(t, reg, "aagtm_dns_rate_limited_total", "action", "drop"); d < 1 {
		t.Errorf("aagtm_dns_rate_limited_total{action=drop} = %v", d)
	}
	if s := metricValue(t, reg, "aagtm_dns_rate_limited_total", "action", "slip"); int(s) != tc {
		t.Errorf("aagtm_dns_rate_limited_total{action=slip} = %v, want %d", s, tc)
	}
}

// TestMetrics: queries are counted by type and rcode, and timed.
func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	_, addr := startServer(t, Options{Registerer: reg}, testConfig(), testSnapshot(1))
	exchange(t, "udp", addr, query(cacheHost, dns.TypeA))
	exchange(t, "udp", addr, query(cacheHost, dns.TypeA))
	exchange(t, "udp", addr, query("nope."+zone, dns.TypeAAAA))
	exchange(t, "udp", addr, query(cacheHost, dns.TypeNAPTR))
	for _, c := range []struct {
		qtype, rcode string
		want         float64
	}{
		{"A", "NOERROR", 2},
		{"AAAA", "NXDOMAIN", 1},
		{"other", "NOERROR", 1},
		{"MX", "NOERROR", 0},
	} {
		if got := metricValue(t, reg, "aagtm_dns_queries_total", "type", c.qtype, "rcode", c.rcode); got != c.want {
			t.Errorf("aagtm_dns_queries_total{type=%s,rcode=%s} = %v, want %v", c.qtype, c.rcode, got, c.want)
		}
	}
	if n := metricValue(t, reg, "aagtm_dns_request_duration_seconds"); n != 4 {
		t.Errorf("aagtm_dns_request_duration_seconds count = %v, want 4", n)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, f := range families {
		names[f.GetName()] = true
		if f.GetHelp() == "" {
			t.Errorf("%s has no help text", f.GetName())
		}
	}
	for _, n := range []string{"aagtm_dns_queries_total", "aagtm_dns_rate_limited_total", "aagtm_dns_malformed_total", "aagtm_dns_request_duration_seconds"} {
		if !names[n] {
			t.Errorf("metric %s not registered", n)
		}
	}
}

// TestRegionScope checks the ECS scope rule on nested subnets.
func TestRegionScope(t *testing.T) {
	cfg := &config.Config{
		Regions: []config.Region{
			{Name: "a", Subnets: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("10.1.2.0/24")}},
			{Name: "b", Subnets: []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16")}},
		},
		DefaultRegion: "a",
	}
	tbl := newRegionTable(cfg)
	tests := []struct {
		addr   string
		region string
		scope  int
	}{
		{"10.200.0.1", "a", 9},  // a's /8, but 10.0/9 holds b's 10.1/16
		{"10.1.200.1", "b", 17}, // b's /16, but 10.1.0/17 holds a's 10.1.2/24
		{"10.1.2.9", "a", 24},   // a's /24 inside b's /16
		{"10.1.5.9", "b", 22},   // 10.1.5 and 10.1.2 share 21 bits
		{"10.2.0.1", "a", 15},   // 10.2 and 10.1 share 14 bits
		{"192.0.2.1", "a", 1},   // default region; 192 and 10 differ at bit 1
		{"2001:db8::1", "a", 0}, // no IPv6 subnet: one answer for all
	}
	for _, tt := range tests {
		region, scope := tbl.lookup(netip.MustParseAddr(tt.addr))
		if tbl.names[region] != tt.region || scope != tt.scope {
			t.Errorf("%s: region %s scope %d, want %s %d", tt.addr, tbl.names[region], scope, tt.region, tt.scope)
		}
		if want, _ := cfg.ClientRegion(netip.MustParseAddr(tt.addr)); tbl.names[region] != want {
			t.Errorf("%s: region %s, config.ClientRegion says %s", tt.addr, tbl.names[region], want)
		}
	}
}

// TestRunTwiceAndReusePort: Run refuses a second call; ReusePort binds
// several UDP sockets on one port.
func TestRunTwiceAndReusePort(t *testing.T) {
	s, addr := startServer(t, Options{ReusePort: 3}, testConfig(), testSnapshot(1))
	if err := s.Run(t.Context()); err == nil {
		t.Error("second Run did not fail")
	}
	for range 10 {
		if r := exchange(t, "udp", addr, query(cacheHost, dns.TypeA)); len(r.Answer) != 1 {
			t.Fatalf("reply %v", r)
		}
	}
}

// metricValue returns the value of the counter (or the sample count of the
// histogram) name with the given label pairs, from reg.
func metricValue(t *testing.T, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	next:
		for _, m := range f.GetMetric() {
			have := map[string]string{}
			for _, l := range m.GetLabel() {
				have[l.GetName()] = l.GetValue()
			}
			for i := 0; i+1 < len(labels); i += 2 {
				if have[labels[i]] != labels[i+1] {
					continue next
				}
			}
			if h := m.GetHistogram(); h != nil {
				return float64(h.GetSampleCount())
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

// TestWhyLongReason: a reason longer than 255 bytes is split into
// character-strings, and backslashes and quotes survive.
func TestWhyLongReason(t *testing.T) {
	snap := testSnapshot(1)
	reason := strings.Repeat(`member "a" \ lag 12ms; `, 30) // 690 bytes
	snap.Hosts[ordersHost].ByRegion["us-east"].Reason = reason
	v := buildView(testConfig(), snap, "n", DefaultMaxUDPSize, hclog.NewNullLogger())
	r := answer(query("_why."+ordersHost, dns.TypeTXT), testAsker(netip.MustParseAddr("127.0.0.1"), true), v)
	b, err := r.Pack()
	if err != nil {
		t.Fatal(err)
	}
	back := new(dns.Msg)
	if err := back.Unpack(b); err != nil {
		t.Fatal(err)
	}
	txt := back.Answer[0].(*dns.TXT)
	if len(txt.Txt) != 3 {
		t.Errorf("%d strings, want 3", len(txt.Txt))
	}
	// miekg/dns escapes " and \ when unpacking; undo it to compare bytes.
	got := strings.NewReplacer(`\"`, `"`, `\\`, `\`).Replace(strings.Join(txt.Txt, ""))
	if got != reason {
		t.Errorf("reason\n got %q\nwant %q", got, reason)
	}
}
