package dnsserver

import (
	"encoding/hex"
	"net/netip"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/miekg/dns"
)

func mustHex(t *testing.T, s string) [16]byte {
	t.Helper()
	var k [16]byte
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != 16 {
		t.Fatalf("bad test secret %q", s)
	}
	copy(k[:], b)
	return k
}

func cookieOpt(hexCookie string) *dns.EDNS0_COOKIE {
	return &dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: hexCookie}
}

// TestServerCookieRFC9018 runs the examples of RFC 9018 Appendix A
// through check and reply: the cookie the server hands out is, byte for
// byte, the RFC's. They cover an IPv4 and an IPv6 client, a first
// contact, a cookie renewed after half an hour, an invalid one replaced,
// and a cookie made with the previous secret after a rollover.
func TestServerCookieRFC9018(t *testing.T) {
	const (
		secretA = "e5e973e5a6b2a43f48e7dc849e37bfcf"
		oldB    = "dd3bdf9344b678b185a6f5cb60fca715"
		newB    = "445536bcd2513298075a5d379663c962"
	)
	tests := []struct {
		name    string
		secrets []string // first makes cookies
		client  string
		query   string
		now     uint32
		state   cookieState
		reply   string
	}{
		{"A.1 learning a new server cookie", []string{secretA}, "198.51.100.100",
			"2464c4abcf10c957", 1559731985, cookieClientOnly,
			"2464c4abcf10c957010000005cf79f111f8130c3eee29480"},
		{"A.2 the same client, 40 minutes later: valid, renewed", []string{secretA}, "198.51.100.100",
			"2464c4abcf10c957010000005cf79f111f8130c3eee29480", 1559734385, cookieGood,
			"2464c4abcf10c957010000005cf7a871d4a564a1442aca77"},
		{"A.3 another client, reserved bytes set: invalid, replaced", []string{secretA}, "203.0.113.203",
			"fc93fc62807ddb8601abcdef5cf78f71a314227b6679ebf5", 1559734700, cookieBad,
			"fc93fc62807ddb86010000005cf7a9acf73a7810aca2381e"},
		{"A.4 IPv6, made with the previous secret: valid, remade with the new one", []string{newB, oldB}, "2001:db8:220:1:59de:d0f4:8769:82b8",
			"22681ab97d52c298010000005cf7c57926556bd0934c72f8", 1559741961, cookieGood,
			"22681ab97d52c298010000005cf7c609a6bb79d16625507a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var secrets [][16]byte
			for _, s := range tt.secrets {
				secrets = append(secrets, mustHex(t, s))
			}
			jar := newCookieJar(secrets)
			client := netip.MustParseAddr(tt.client)
			c, ok := parseCookie(cookieOpt(tt.query))
			if !ok {
				t.Fatalf("cookie %s does not parse", tt.query)
			}
			if got := jar.check(&c, client, tt.now); got != tt.state {
				t.Errorf("check = %d, want %d", got, tt.state)
			}
			st := jar.check(&c, client, tt.now)
			if got := jar.reply(&c, st, client, tt.now).Cookie; got != tt.reply {
				t.Errorf("reply cookie\n got %s\nwant %s", got, tt.reply)
			}
			// What the server hands out is good when it comes back.
			back, _ := parseCookie(cookieOpt(tt.reply))
			if got := jar.check(&back, client, tt.now); got != cookieGood {
				t.Errorf("the reply's cookie checks as %d, want good", got)
			}
		})
	}
}

// TestCookieCheck: a server cookie is good for an hour (five minutes of
// clock skew ahead), for its client cookie, address and secret only, and
// is echoed while under half an hour old.
func TestCookieCheck(t *testing.T) {
	secret := mustHex(t, "e5e973e5a6b2a43f48e7dc849e37bfcf")
	jar := newCookieJar([][16]byte{secret})
	addr := netip.MustParseAddr("198.51.100.100")
	const issued = 1559731985
	good := "2464c4abcf10c957010000005cf79f111f8130c3eee29480"
	flip := func(i int) string {
		b, _ := hex.DecodeString(good)
		b[i] ^= 1
		return hex.EncodeToString(b)
	}
	tests := []struct {
		name   string
		cookie string
		addr   netip.Addr
		jar    *cookieJar
		now    uint32
		state  cookieState
		echoed bool
	}{
		{"just issued", good, addr, jar, issued, cookieGood, true},
		{"29m59s old", good, addr, jar, issued + 1799, cookieGood, true},
		{"half an hour old: renewed", good, addr, jar, issued + 1800, cookieGood, false},
		{"one hour old", good, addr, jar, issued + 3600, cookieGood, false},
		{"one hour and a second old", good, addr, jar, issued + 3601, cookieBad, false},
		{"five minutes ahead: good, remade with our clock", good, addr, jar, issued - 300, cookieGood, false},
		{"five minutes and a second ahead", good, addr, jar, issued - 301, cookieBad, false},
		{"upper case hex", "2464C4ABCF10C957010000005CF79F111F8130C3EEE29480", addr, jar, issued, cookieGood, true},
		{"another client cookie", flip(0), addr, jar, issued, cookieBad, false},
		{"another version", flip(8), addr, jar, issued, cookieBad, false},
		{"reserved bits set", flip(9), addr, jar, issued, cookieBad, false},
		{"another timestamp", flip(15), addr, jar, issued, cookieBad, false},
		{"another hash", flip(23), addr, jar, issued, cookieBad, false},
		{"another address", good, netip.MustParseAddr("198.51.100.101"), jar, issued, cookieBad, false},
		{"IPv4-mapped IPv6 address", good, netip.MustParseAddr("::ffff:198.51.100.100"), jar, issued, cookieGood, true},
		{"another secret", good, addr, newCookieJar([][16]byte{mustHex(t, "dd3bdf9344b678b185a6f5cb60fca715")}), issued, cookieBad, false},
		{"the previous secret: good, remade", good, addr, newCookieJar([][16]byte{mustHex(t, "dd3bdf9344b678b185a6f5cb60fca715"), secret}), issued, cookieGood, false},
		{"a server cookie of 8 bytes (not ours)", good[:32], addr, jar, issued, cookieBad, false},
		{"a server cookie of 32 bytes (not ours)", good + "00000000000000000000000000000000", addr, jar, issued, cookieBad, false},
		{"client cookie only", good[:16], addr, jar, issued, cookieClientOnly, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, ok := parseCookie(cookieOpt(tt.cookie))
			if !ok {
				t.Fatalf("%s does not parse", tt.cookie)
			}
			st := tt.jar.check(&c, tt.addr, tt.now)
			if st != tt.state {
				t.Fatalf("check = %d, want %d", st, tt.state)
			}
			if echoed := tt.jar.reply(&c, st, tt.addr, tt.now) == c.opt; echoed != tt.echoed {
				t.Errorf("reply echoes the query's cookie: %v, want %v", echoed, tt.echoed)
			}
		})
	}
}

// TestCookieTimestampWrap: a cookie made just before the 32-bit timestamp
// wraps is still good just after (RFC 1982 arithmetic, RFC 9018 §4.3).
func TestCookieTimestampWrap(t *testing.T) {
	jar := newCookieJar([][16]byte{testSecret})
	addr := netip.MustParseAddr("2001:db8::53")
	issued := uint32(0xffffff00)
	out := jar.make([]byte("clientck"), addr, issued)
	c, _ := parseCookie(cookieOpt(hex.EncodeToString(out[:])))
	if got := jar.check(&c, addr, issued+512); got != cookieGood {
		t.Errorf("512s later, across the wrap: %d, want good", got)
	}
	if got := jar.check(&c, addr, issued+cookieMaxAge+1); got != cookieBad {
		t.Errorf("an hour and a second later, across the wrap: %d, want bad", got)
	}
}

// TestParseCookie: RFC 7873 §5.2.2, a client cookie alone is 8 bytes, with
// a server cookie 16 to 40; anything else is malformed.
func TestParseCookie(t *testing.T) {
	for n := 0; n <= 48; n++ {
		want := n == 8 || (n >= 16 && n <= 40)
		_, ok := parseCookie(cookieOpt(hex.EncodeToString(make([]byte, n))))
		if ok != want {
			t.Errorf("%d bytes: well-formed %v, want %v", n, ok, want)
		}
	}
	if _, ok := parseCookie(cookieOpt("2464c4abcf10c95")); ok {
		t.Error("odd number of hex digits parsed")
	}
	if _, ok := parseCookie(cookieOpt("2464c4abcf10c9zz")); ok {
		t.Error("non-hex digits parsed")
	}
}

// TestCookieAnswers: what the query path answers for each cookie case
// (RFC 7873 §5.2, §5.4), over UDP and TCP.
func TestCookieAnswers(t *testing.T) {
	v := buildView(testConfig(), manySnapshot(), "node-a", DefaultMaxUDPSize, hclog.NewNullLogger())
	client := netip.MustParseAddr("192.0.2.1")
	udp := testAsker(client, false)
	udp.amplification = 4
	tcp := testAsker(client, true)
	const clientCookie = "0102030405060708"
	issued := udp.cookies.make([]byte{1, 2, 3, 4, 5, 6, 7, 8}, client, udp.now)
	goodCookie := hex.EncodeToString(issued[:])
	badCookie := clientCookie + "01000000" + goodCookie[24:32] + "0000000000000000"
	withCookie := func(c string) func(*dns.Msg) {
		return func(m *dns.Msg) {
			if m.IsEdns0() == nil {
				m.SetEdns0(1232, false)
			}
			o := m.IsEdns0()
			o.Option = append(o.Option, cookieOpt(c))
		}
	}
	noQuestion := func(m *dns.Msg) { m.Question = nil }
	tests := []struct {
		name    string
		q       *dns.Msg
		a       asker
		rcode   int
		answers int
		tc      bool
		cookie  bool // the reply carries our cookie for clientCookie
		state   cookieState
	}{
		{"no cookie", query(cacheHost, dns.TypeA, withEDNS(1232)), udp, dns.RcodeSuccess, 1, false, false, cookieNone},
		{"client cookie only", query(cacheHost, dns.TypeA, withCookie(clientCookie)), udp, dns.RcodeSuccess, 1, false, true, cookieClientOnly},
		{"good server cookie", query(cacheHost, dns.TypeA, withCookie(goodCookie)), udp, dns.RcodeSuccess, 1, false, true, cookieGood},
		{"bad server cookie over UDP: BADCOOKIE", query(cacheHost, dns.TypeA, withCookie(badCookie)), udp, dns.RcodeBadCookie, 0, false, true, cookieBad},
		{"bad server cookie over TCP: answered", query(cacheHost, dns.TypeA, withCookie(badCookie)), tcp, dns.RcodeSuccess, 1, false, true, cookieBad},
		{"malformed cookie: FORMERR", query(cacheHost, dns.TypeA, withCookie("01020304")), udp, dns.RcodeFormatError, 0, false, false, cookieNone},
		{"first cookie counts", query(cacheHost, dns.TypeA, withCookie(goodCookie), withCookie("01")), udp, dns.RcodeSuccess, 1, false, true, cookieGood},
		{"QDCOUNT 0 with a cookie: NOERROR", query(cacheHost, dns.TypeA, noQuestion, withCookie(clientCookie)), udp, dns.RcodeSuccess, 0, false, true, cookieClientOnly},
		{"QDCOUNT 0 with a bad cookie: BADCOOKIE", query(cacheHost, dns.TypeA, noQuestion, withCookie(badCookie)), udp, dns.RcodeBadCookie, 0, false, true, cookieBad},
		{"QDCOUNT 0 without a cookie: FORMERR", query(cacheHost, dns.TypeA, noQuestion, withEDNS(1232)), udp, dns.RcodeFormatError, 0, false, false, cookieNone},
		{"large answer, client cookie only: capped, cookie kept", query(manyHost, dns.TypeA, withCookie(clientCookie)), udp, dns.RcodeSuccess, 0, true, true, cookieClientOnly},
		{"large answer, good cookie: not capped, cut to 1232 bytes", query(manyHost, dns.TypeA, withCookie(goodCookie)), udp, dns.RcodeSuccess, 72, true, true, cookieGood},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, out := answerInto(new(dns.Msg), tt.q, tt.a, v)
			if r.Rcode != tt.rcode {
				t.Errorf("rcode %s, want %s", dns.RcodeToString[r.Rcode], dns.RcodeToString[tt.rcode])
			}
			if len(r.Answer) != tt.answers || r.Truncated != tt.tc {
				t.Errorf("%d answers TC %v, want %d and %v", len(r.Answer), r.Truncated, tt.answers, tt.tc)
			}
			if out.cookie != tt.state {
				t.Errorf("cookie state %d, want %d", out.cookie, tt.state)
			}
			b, err := r.Pack()
			if err != nil {
				t.Fatalf("reply does not pack: %v", err)
			}
			back := new(dns.Msg)
			if err := back.Unpack(b); err != nil {
				t.Fatal(err)
			}
			if back.Rcode != tt.rcode {
				t.Errorf("rcode on the wire %s, want %s", dns.RcodeToString[back.Rcode], dns.RcodeToString[tt.rcode])
			}
			var got *dns.EDNS0_COOKIE
			if o := back.IsEdns0(); o != nil {
				for _, e := range o.Option {
					if c, ok := e.(*dns.EDNS0_COOKIE); ok {
						got = c
					}
				}
			}
			switch {
			case !tt.cookie && got != nil:
				t.Errorf("cookie %s in reply, want none", got.Cookie)
			case tt.cookie && got == nil:
				t.Error("no cookie in reply")
			case tt.cookie:
				c, ok := parseCookie(got)
				if !ok || c.n != clientCookieLen+serverCookieLen || got.Cookie[:16] != clientCookie {
					t.Fatalf("reply cookie %s: want %s and a 16-byte server cookie", got.Cookie, clientCookie)
				}
				if st := tt.a.cookies.check(&c, client, tt.a.now); st != cookieGood {
					t.Errorf("reply cookie checks as %d, want good", st)
				}
			}
		})
	}
}
