package dnsserver

import (
	"encoding/binary"
	"net/netip"

	"github.com/miekg/dns"
)

// The UDP fast path answers the common query (an A or AAAA question for a
// database hostname, with or without EDNS, ECS and a DNS cookie) from reply
// bytes prepared when the view is built: it matches the question, copies
// the prepared reply, writes the query's ID, RD and CD bits and its name
// with the query's own case (0x20), and appends the OPT record. Everything
// else returns ok == false and takes the full path (answer), unchanged.
// Its replies are byte for byte the full path's (the differential tests
// prove it), so it is an optimisation, not a second DNS server.

// headerLen is the length of the DNS message header (RFC 1035 §4.1.1).
const headerLen = 12

// fastTypes are the query types with prepared replies.
var fastTypes = [...]uint16{dns.TypeA, dns.TypeAAAA}

// fastName is the prepared replies of one database hostname.
type fastName struct {
	// name is the hostname, lower case FQDN: the rate limiting key of its
	// positive and NODATA replies (limitKey).
	name string
	// replies is indexed by fastTypes index, then by region index + 1
	// (0: no region, the default included, holds an answer).
	replies [len(fastTypes)][]fastReply
}

// fastReply is one prepared reply: the full path's reply to the lower-case
// question without EDNS, with ID 0 and RD and CD clear.
type fastReply struct {
	wire []byte
	// owners are the offsets of the answer records' owner names, copies
	// of the question name written with the query's case.
	owners []int
	// rcode is the reply's rcode, for the rate limiting key and metrics.
	rcode int
	// scoped is set when the ECS scope of the region choice applies (a
	// positive answer that depends on the client's region).
	scoped bool
}

// prepareFast adds the prepared replies of the database hostname owner
// with answers h to v.fast. A name the fast path cannot match (a byte
// that needs escaping) is left to the full path.
func (v *view) prepareFast(owner string, h *host) {
	for i := 0; i < len(owner); i++ {
		if c := owner[i]; c != '.' && !isFastLabelByte(c) {
			return
		}
	}
	f := &fastName{name: owner}
	for ti, qtype := range fastTypes {
		q := dns.Question{Name: owner, Qtype: qtype, Qclass: dns.ClassINET}
		f.replies[ti] = make([]fastReply, len(v.regions.names)+1)
		for r := -1; r < len(v.regions.names); r++ {
			// Scope 1 stands for "some scope": hostResult keeps it only
			// where the scope applies.
			rep, ok := prepareReply(q, hostResult(q, h.lookup(r, v.regions.def), 1, v))
			if !ok {
				return
			}
			f.replies[ti][r+1] = rep
		}
	}
	v.fast[owner] = f
}

// prepareReply packs the full path's reply for res to the question q, as
// answerInto assembles it, and finds the owner names to rewrite.
func prepareReply(q dns.Question, res result) (fastReply, bool) {
	m := new(dns.Msg)
	setReply(m, &dns.Msg{Question: []dns.Question{q}})
	m.Rcode, m.Authoritative = res.rcode, res.aa
	m.Answer, m.Ns, m.Extra = res.answer, res.ns, res.extra
	wire, err := m.Pack()
	if err != nil || len(res.extra) > 0 {
		return fastReply{}, false
	}
	rep := fastReply{wire: wire, rcode: res.rcode, scoped: res.scope > 0}
	qname := wire[headerLen : headerLen+nameWireLen(q.Name)]
	off := headerLen + len(qname) + 4
	for range m.Answer {
		if off+len(qname) <= len(wire) && string(wire[off:off+len(qname)]) == string(qname) {
			rep.owners = append(rep.owners, off)
		}
		end, ok := skipName(wire, off)
		if !ok || end+10 > len(wire) {
			return fastReply{}, false
		}
		off = end + 10 + int(binary.BigEndian.Uint16(wire[end+8:]))
	}
	return rep, true
}

// skipName returns the offset after the uncompressed name at off.
func skipName(b []byte, off int) (int, bool) {
	for off < len(b) {
		l := int(b[off])
		switch {
		case l == 0:
			return off + 1, true
		case l > 63:
			return 0, false // a pointer: prepared replies are not compressed
		}
		off += 1 + l
	}
	return 0, false
}

// isFastLabelByte reports whether c may appear in a name the fast path
// matches: bytes that read the same on the wire and in presentation form.
func isFastLabelByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_'
}

// fastQuery is what the fast path parsed of a query.
type fastQuery struct {
	// lower holds the question name in presentation form, lower case: the
	// key of view.fast. name is its length.
	lower [255]byte
	name  int
	// qend is the offset after the question name; qtype its type index.
	qend  int
	qtype int
	// opt is set when the query has an OPT record; size and do are its
	// payload size and DO bit.
	opt  bool
	size int
	do   bool
	// ecs is set when the query has a client subnet option: family,
	// source prefix, address bytes (alen of them) and the address.
	ecs     bool
	family  uint16
	source  uint8
	addr    [16]byte
	alen    int
	ecsAddr netip.Addr
	// cookie is the query's COOKIE option, n == 0 when it had none.
	cookie cookie
	// length is queryLen's count for this query.
	length int
}

// parse reads pkt, a UDP datagram, and reports whether the fast path may
// answer it: a QUERY with one IN question of a fast type, a name of
// fast label bytes, and at most an OPT record of version 0 with at most
// one ECS option (scope 0, address as long as its prefix and masked) and
// one well-formed COOKIE option, and nothing after it.
func (fq *fastQuery) parse(pkt []byte) bool {
	if len(pkt) < headerLen+5 {
		return false
	}
	// QR clear, opcode QUERY (RFC 1035 §4.1.1); one question, no answer
	// or authority records, at most one additional (the OPT record).
	if pkt[2]&0xf8 != 0 || binary.BigEndian.Uint16(pkt[4:]) != 1 ||
		pkt[6]|pkt[7]|pkt[8]|pkt[9] != 0 || pkt[10] != 0 || pkt[11] > 1 {
		return false
	}
	off, n := headerLen, 0
	for {
		if off >= len(pkt) {
			return false
		}
		l := int(pkt[off])
		off++
		if l == 0 {
			break
		}
		if l > 63 || off+l > len(pkt) || n+l+1 > len(fq.lower) {
			return false
		}
		for _, c := range pkt[off : off+l] {
			if !isFastLabelByte(c) {
				return false
			}
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			fq.lower[n] = c
			n++
		}
		fq.lower[n] = '.'
		n++
		off += l
	}
	if n == 0 || off+4 > len(pkt) || binary.BigEndian.Uint16(pkt[off+2:]) != dns.ClassINET {
		return false
	}
	fq.name, fq.qend = n, off
	qtype := binary.BigEndian.Uint16(pkt[off:])
	fq.qtype = -1
	for i, t := range fastTypes {
		if t == qtype {
			fq.qtype = i
		}
	}
	if fq.qtype < 0 {
		return false
	}
	off += 4
	fq.length = off
	fq.opt, fq.do, fq.size = false, false, dns.MinMsgSize
	fq.ecs, fq.ecsAddr, fq.cookie.n = false, netip.Addr{}, 0
	if pkt[11] == 0 {
		return off == len(pkt)
	}
	return fq.parseOPT(pkt[off:])
}

// parseOPT reads the OPT record b, the rest of the datagram.
func (fq *fastQuery) parseOPT(b []byte) bool {
	// Root owner, type OPT, payload size, extended rcode, version 0,
	// flags, RDLENGTH (RFC 6891 §6.1.2).
	if len(b) < 11 || b[0] != 0 || binary.BigEndian.Uint16(b[1:]) != dns.TypeOPT || b[6] != 0 {
		return false
	}
	fq.opt = true
	fq.size = int(binary.BigEndian.Uint16(b[3:]))
	fq.do = b[7]&0x80 != 0
	rdata := b[11:]
	if int(binary.BigEndian.Uint16(b[9:])) != len(rdata) {
		return false
	}
	fq.length += 11
	for len(rdata) > 0 {
		if len(rdata) < 4 {
			return false
		}
		code, l := binary.BigEndian.Uint16(rdata), int(binary.BigEndian.Uint16(rdata[2:]))
		if 4+l > len(rdata) {
			return false
		}
		data := rdata[4 : 4+l]
		rdata = rdata[4+l:]
		switch {
		case code == dns.EDNS0SUBNET && !fq.ecs:
			if !fq.parseECS(data) {
				return false
			}
			fq.length += 4 + 4
		case code == dns.EDNS0COOKIE && fq.cookie.n == 0:
			if l != clientCookieLen && (l < minCookieLen || l > maxCookieLen) {
				return false // FORMERR, on the full path
			}
			fq.cookie.n = copy(fq.cookie.raw[:], data)
			fq.length += 4 + l
		default:
			return false // another option, or a second ECS or COOKIE
		}
	}
	return true
}

// parseECS reads an ECS option (RFC 7871 §6) the full path would accept
// and echo byte for byte: family 1 or 2, a source prefix the family
// allows, scope 0, exactly the address bytes the prefix needs, with no bit
// set past it.
func (fq *fastQuery) parseECS(b []byte) bool {
	if len(b) < 4 || b[3] != 0 {
		return false
	}
	fq.family, fq.source = binary.BigEndian.Uint16(b), b[2]
	fq.alen = len(b) - 4
	bitsMax := 32
	if fq.family == 2 {
		bitsMax = 128
	} else if fq.family != 1 {
		return false
	}
	if int(fq.source) > bitsMax || fq.alen != (int(fq.source)+7)/8 {
		return false
	}
	fq.addr = [16]byte{}
	copy(fq.addr[:], b[4:])
	if rem := fq.source % 8; rem != 0 && fq.addr[fq.alen-1]&(0xff>>rem) != 0 {
		return false
	}
	fq.ecs = true
	switch {
	case fq.source == 0:
	case fq.family == 1:
		fq.ecsAddr = netip.AddrFrom4([4]byte(fq.addr[:4]))
	default:
		fq.ecsAddr = netip.AddrFrom16(fq.addr)
	}
	return true
}

// fastOutcome is what the fast path decided besides the reply, for the
// rate limiter and the metrics.
type fastOutcome struct {
	qtype  uint16
	rcode  int
	cookie cookieState
	// key is the rate limiting key of the reply (limitKey).
	key string
}

// fastAnswer answers pkt, a UDP query sent as a says, from v, into dst: the
// reply, byte for byte what answerInto would send before rate limiting,
// and true; or false when the query needs the full path: it is not a fast
// query (fastQuery.parse), its name has no prepared replies, its server
// cookie is bad (BADCOOKIE), or its reply would not fit the payload size
// or the amplification cap uncompressed. fq is scratch space. It takes no
// lock and does not allocate.
func fastAnswer(dst, pkt []byte, a asker, v *view, fq *fastQuery) ([]byte, fastOutcome, bool) {
	var out fastOutcome
	if !fq.parse(pkt) {
		return dst, out, false
	}
	f := v.fast[string(fq.lower[:fq.name])]
	if f == nil {
		return dst, out, false
	}
	if fq.cookie.n > 0 {
		out.cookie = a.cookies.check(&fq.cookie, a.client, a.now)
		if out.cookie == cookieBad {
			return dst, out, false
		}
	}
	region, scope := v.regionOf(a.client, fq.ecsAddr)
	rep := &f.replies[fq.qtype][region+1]

	size, optLen := dns.MinMsgSize, 0
	if fq.opt {
		size = min(max(fq.size, dns.MinMsgSize), v.maxUDP)
		optLen = 11
		if fq.ecs {
			optLen += 4 + 4 + fq.alen
		}
		if fq.cookie.n > 0 {
			optLen += 4 + clientCookieLen + serverCookieLen
		}
	}
	limit := size
	if a.amplification > 0 && out.cookie != cookieGood {
		limit = min(size, a.amplification*fq.length)
	}
	if len(rep.wire)+optLen > limit {
		return dst, out, false // truncated or capped: the full path compresses
	}

	b := append(dst[:0], rep.wire...)
	copy(b, pkt[:2])                // ID
	b[2] |= pkt[2] & 0x01           // RD, RFC 1035 §4.1.1
	b[3] |= pkt[3] & 0x10           // CD, RFC 4035 §3.2.2
	qname := pkt[headerLen:fq.qend] // the query's case (0x20)
	copy(b[headerLen:], qname)
	for _, o := range rep.owners {
		copy(b[o:], qname)
	}
	if fq.opt {
		b = fq.appendOPT(b, rep, scope, a, v.maxUDP, out.cookie)
	}
	out.qtype, out.rcode, out.key = fastTypes[fq.qtype], rep.rcode, "*error"
	if rep.rcode == dns.RcodeSuccess {
		out.key = f.name
	}
	return b, out, true
}

// appendOPT appends the reply's OPT record to b, as replyOPT makes it and
// miekg/dns packs it, and counts it in ARCOUNT.
func (fq *fastQuery) appendOPT(b []byte, rep *fastReply, scope int, a asker, maxUDP int, state cookieState) []byte {
	b[11] = 1 // ARCOUNT: prepared replies have no additional records
	start := len(b)
	var flags byte
	if fq.do {
		flags = 0x80 // RFC 3225 §3
	}
	b = append(b, 0, byte(dns.TypeOPT>>8), byte(dns.TypeOPT), byte(maxUDP>>8), byte(maxUDP), 0, 0, flags, 0, 0, 0)
	if fq.ecs {
		if !fq.ecsAddr.IsValid() || !rep.scoped {
			scope = 0
		}
		b = append(b, 0, dns.EDNS0SUBNET, 0, byte(4+fq.alen), byte(fq.family>>8), byte(fq.family), fq.source, byte(scope))
		b = append(b, fq.addr[:fq.alen]...)
	}
	if fq.cookie.n > 0 {
		b = append(b, 0, dns.EDNS0COOKIE, 0, clientCookieLen+serverCookieLen)
		if echoCookie(&fq.cookie, state, a.now) {
			b = append(b, fq.cookie.raw[:fq.cookie.n]...)
		} else {
			c := a.cookies.make(fq.cookie.raw[:clientCookieLen], a.client, a.now)
			b = append(b, c[:]...)
		}
	}
	binary.BigEndian.PutUint16(b[start+9:], uint16(len(b)-start-11))
	return b
}

// slipReply turns b, a reply of the fast path, into the rate limiter's
// slip reply (limiter.limit): the header with TC set, AA and the rcode
// clear, and the question alone.
func slipReply(b []byte, fq *fastQuery) []byte {
	b[2] = b[2]&^0x04 | 0x02 // AA clear, TC set
	b[3] &^= 0x0f            // rcode NOERROR
	clear(b[6:12])           // no answer, authority or additional records
	return b[:fq.qend+4]
}
