package dnsserver

import (
	"encoding/binary"
	"encoding/hex"
	"net/netip"
	"time"

	"github.com/dchest/siphash"
	"github.com/miekg/dns"
)

// DNS Cookies (RFC 7873) with interoperable server cookies (RFC 9018).
//
// A client cookie is 8 bytes the resolver picks per server. The server
// cookie is 16 bytes: version 1, three reserved zero bytes, a 32-bit
// timestamp (seconds, serial number arithmetic) and an 8-byte
// SipHash-2-4, keyed with the server secret, over
// client cookie | version | reserved | timestamp | client IP address.
// Every node of the NS set that holds the same secret accepts the cookies
// of the others (RFC 9018 §4: an anycast set shares one secret).
const (
	clientCookieLen = 8
	serverCookieLen = 16
	// A COOKIE option is a client cookie alone, or one followed by a
	// server cookie of 8 to 32 bytes (RFC 7873 §4, §5.2.2).
	minCookieLen = clientCookieLen + 8
	maxCookieLen = clientCookieLen + 32
	// cookieVersion is the RFC 9018 server cookie version.
	cookieVersion = 1
	// cookieMaxAge and cookieMaxSkew bound the timestamp of a valid server
	// cookie: at most an hour old, at most five minutes in the future
	// (RFC 9018 §4.3).
	cookieMaxAge  = 3600
	cookieMaxSkew = 300
	// cookieRenewAge is the age past which a valid server cookie is
	// replaced by a fresh one in the reply (RFC 9018 §4.3: half an hour).
	cookieRenewAge = 1800
)

// cookieState is what a query's COOKIE option says about the client.
type cookieState uint8

const (
	// cookieNone: no COOKIE option (or no EDNS at all).
	cookieNone cookieState = iota
	// cookieClientOnly: a client cookie without a server cookie, the
	// client's first contact (RFC 7873 §5.2.3).
	cookieClientOnly
	// cookieBad: a server cookie we did not make, made for another
	// client, or too old (RFC 7873 §5.2.4).
	cookieBad
	// cookieGood: a server cookie we made for this client, recently
	// (RFC 7873 §5.2.5).
	cookieGood
)

// cookieJar holds the secrets: the first makes server cookies, every one
// validates them, so that a secret can be rolled over across nodes
// without invalidating the cookies resolvers hold.
type cookieJar struct {
	keys [][2]uint64 // SipHash k0, k1 of each secret
}

// newCookieJar returns a jar for secrets, which must not be empty.
func newCookieJar(secrets [][16]byte) *cookieJar {
	j := &cookieJar{keys: make([][2]uint64, len(secrets))}
	for i, s := range secrets {
		j.keys[i] = [2]uint64{binary.LittleEndian.Uint64(s[:8]), binary.LittleEndian.Uint64(s[8:])}
	}
	return j
}

// cookie is a query's parsed COOKIE option.
type cookie struct {
	// opt is the query's option, nil when it had none.
	opt *dns.EDNS0_COOKIE
	// raw holds the decoded option: client cookie, then server cookie.
	raw [maxCookieLen]byte
	n   int
	// current is set by check when the server cookie was made with the
	// first secret, the one that makes cookies now.
	current bool
}

// parseCookie decodes the option; false when it is malformed: a length
// other than 8 or 16 to 40 bytes (RFC 7873 §5.2.2: FORMERR).
func parseCookie(o *dns.EDNS0_COOKIE) (cookie, bool) {
	c := cookie{opt: o}
	n := len(o.Cookie) / 2
	if len(o.Cookie)%2 != 0 || n > maxCookieLen || (n != clientCookieLen && n < minCookieLen) {
		return c, false
	}
	for i := range n {
		hi, ok1 := unhex(o.Cookie[2*i])
		lo, ok2 := unhex(o.Cookie[2*i+1])
		if !ok1 || !ok2 {
			return c, false
		}
		c.raw[i] = hi<<4 | lo
	}
	c.n = n
	return c, true
}

// unhex is the value of one hex digit (hex.Decode would need the string
// copied into a []byte first).
func unhex(b byte) (byte, bool) {
	switch {
	case '0' <= b && b <= '9':
		return b - '0', true
	case 'a' <= b && b <= 'f':
		return b - 'a' + 10, true
	case 'A' <= b && b <= 'F':
		return b - 'A' + 10, true
	}
	return 0, false
}

// check validates c's server cookie for client at now.
func (j *cookieJar) check(c *cookie, client netip.Addr, now uint32) cookieState {
	switch {
	case c.n == 0:
		return cookieNone
	case c.n == clientCookieLen:
		return cookieClientOnly
	case c.n != clientCookieLen+serverCookieLen:
		return cookieBad // not an RFC 9018 cookie: not one of ours
	}
	sc := c.raw[clientCookieLen : clientCookieLen+serverCookieLen]
	if sc[0] != cookieVersion || sc[1]|sc[2]|sc[3] != 0 {
		return cookieBad
	}
	// Serial number arithmetic (RFC 1982), as RFC 9018 §4.3 asks: the
	// difference as a signed 32-bit number.
	age := int32(now - binary.BigEndian.Uint32(sc[4:8]))
	if age > cookieMaxAge || age < -cookieMaxSkew {
		return cookieBad
	}
	got := binary.LittleEndian.Uint64(sc[8:16])
	for i, k := range j.keys {
		if cookieHash(k, c.raw[:clientCookieLen+8], client) == got {
			c.current = i == 0
			return cookieGood
		}
	}
	return cookieBad
}

// reply returns the COOKIE option of the reply to c: the client cookie
// with a server cookie for client, the query's own when it is good, made
// with the current secret and less than half an hour old (RFC 9018 §4.3),
// else a fresh one made with the current secret.
func (j *cookieJar) reply(c *cookie, state cookieState, client netip.Addr, now uint32) *dns.EDNS0_COOKIE {
	if echoCookie(c, state, now) {
		return c.opt
	}
	out := j.make(c.raw[:clientCookieLen], client, now)
	return &dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: hex.EncodeToString(out[:])}
}

// echoCookie reports whether the reply to c carries c itself: a good
// server cookie made with the current secret less than half an hour ago
// (RFC 9018 §4.3). Otherwise the reply carries a fresh one.
func echoCookie(c *cookie, state cookieState, now uint32) bool {
	if state != cookieGood || !c.current {
		return false
	}
	ts := binary.BigEndian.Uint32(c.raw[clientCookieLen+4 : clientCookieLen+8])
	age := int32(now - ts)
	return age >= 0 && age < cookieRenewAge
}

// make returns client cookie | server cookie for client at now, made with
// the first secret.
func (j *cookieJar) make(clientCookie []byte, client netip.Addr, now uint32) [clientCookieLen + serverCookieLen]byte {
	var out [clientCookieLen + serverCookieLen]byte
	copy(out[:clientCookieLen], clientCookie)
	out[clientCookieLen] = cookieVersion
	binary.BigEndian.PutUint32(out[clientCookieLen+4:], now)
	binary.LittleEndian.PutUint64(out[clientCookieLen+8:], cookieHash(j.keys[0], out[:clientCookieLen+8], client))
	return out
}

// cookieHash is the RFC 9018 §4.4 hash: SipHash-2-4 keyed with k over
// prefix (client cookie, version, reserved, timestamp) and the client's
// address, 4 bytes for IPv4, 16 for IPv6.
func cookieHash(k [2]uint64, prefix []byte, client netip.Addr) uint64 {
	var in [clientCookieLen + 8 + 16]byte
	n := copy(in[:], prefix)
	client = client.Unmap()
	if client.Is4() {
		a := client.As4()
		n += copy(in[n:], a[:])
	} else if client.Is6() {
		a := client.As16()
		n += copy(in[n:], a[:])
	}
	return siphash.Hash(k[0], k[1], in[:n])
}

// cookieTime is now as an RFC 9018 timestamp: seconds since the Unix
// epoch, modulo 2^32.
func cookieTime(now time.Time) uint32 { return uint32(now.Unix()) }
