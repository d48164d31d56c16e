package dnsserver

import (
	"net"
	"net/netip"
	"strings"

	"github.com/miekg/dns"
)

// result is what resolving a question decided, before the reply message is
// assembled: the rcode and the sections.
type result struct {
	rcode  int
	aa     bool
	answer []dns.RR
	ns     []dns.RR
	extra  []dns.RR
	// scope is the ECS SCOPE PREFIX-LENGTH of the reply (RFC 7871 §7.2.1):
	// non-zero only for a positive answer that depends on the client region.
	scope int
}

// edns is what the query's EDNS0 OPT record asked for.
type edns struct {
	// opt is the query's OPT record; nil when it had none.
	opt *dns.OPT
	// rcode is FORMERR or BADVERS when the OPT record is unusable.
	rcode int
	// ecs is the query's valid client subnet option, nil when absent.
	ecs *dns.EDNS0_SUBNET
	// client is the ECS address (masked to its source prefix); invalid when
	// the option carries none (SOURCE PREFIX-LENGTH 0).
	client netip.Addr
	// cookie is the query's first COOKIE option (RFC 7873 §5.2), its opt
	// nil when absent.
	cookie cookie
}

// asker is the transport side of a query: who sent it, how and when, and
// the server settings that depend on that.
type asker struct {
	// client is the resolver's source address.
	client netip.Addr
	// tcp is set for a query over TCP.
	tcp bool
	// now is the time as a server cookie timestamp (cookieTime).
	now uint32
	// cookies makes and checks server cookies.
	cookies *cookieJar
	// amplification caps a UDP reply to a query without a valid server
	// cookie at this multiple of the query's size; 0: no cap.
	amplification int
}

// outcome is what the query path decided besides the reply, for the rate
// limiter and the metrics.
type outcome struct {
	// cookie is the state of the query's COOKIE option.
	cookie cookieState
	// capped is set when the reply was cut to an empty TC reply by the
	// amplification cap.
	capped bool
}

// answer is the whole query path as a pure function: the reply to req, sent
// as a says (by whom, over TCP or UDP, when), from view v, or nil when
// nothing must be sent (req is itself a response). It performs no I/O,
// takes no lock and modifies neither req nor v. Every rcode decision is
// made here:
//
//   - opcode other than QUERY: NOTIMP.
//   - QDCOUNT 0 with a COOKIE option: NOERROR with the cookie, the way to
//     ask for a server cookie (RFC 7873 §5.4); otherwise QDCOUNT not 1:
//     FORMERR (RFC 9619).
//   - more than one OPT record, a malformed ECS option, or a COOKIE option
//     of a length other than 8 or 16 to 40 bytes: FORMERR (RFC 6891
//     §6.1.1, RFC 7871 §6, RFC 7873 §5.2.2).
//   - EDNS version above 0: BADVERS, answered with an OPT of version 0
//     (RFC 6891 §6.1.3).
//   - over UDP, a server cookie that is not valid (another secret, another
//     client, older than an hour): BADCOOKIE with a fresh cookie, so the
//     client retries with it (RFC 7873 §5.2.3, §5.2.4). Over TCP the query
//     is answered (RFC 7873 §5.2.3: TCP already proves the address).
//   - class other than IN: REFUSED, but CH TXT id.server and hostname.bind,
//     which name the node.
//   - before the first Update: SERVFAIL.
//   - a name outside the zone, or a zone transfer: REFUSED.
//   - a name in the zone that does not exist: NXDOMAIN with the SOA.
//   - a name that exists without data of the type: NODATA (NOERROR, SOA).
//   - a database host whose answer is SERVFAIL, or that has none yet:
//     SERVFAIL.
//
// The reply carries an OPT record only when the query did (RFC 6891 §7),
// with a COOKIE option when the query had one, and is truncated (TC) to
// the UDP payload size the query allows. Over UDP without a valid server
// cookie, a reply larger than a.amplification times the query is cut to
// an empty TC reply (keeping its cookie), so the client retries over TCP.
func answer(req *dns.Msg, a asker, v *view) *dns.Msg {
	m, _ := answerInto(new(dns.Msg), req, a, v)
	return m
}

// answerInto is answer writing the reply into m, a zero Msg (ServeDNS
// recycles them), and returning m, or nil, with what it decided.
func answerInto(m, req *dns.Msg, a asker, v *view) (*dns.Msg, outcome) {
	var out outcome
	if req.Response {
		return nil, out // never answer a response: no loops, no reflection
	}
	setReply(m, req)
	e := parseEDNS(req)
	if e.rcode == dns.RcodeSuccess {
		out.cookie = a.cookies.check(&e.cookie, a.client, a.now)
	}
	cookieQuery := len(req.Question) == 0 && e.cookie.opt != nil
	var r result
	switch {
	case req.Opcode != dns.OpcodeQuery:
		r.rcode = dns.RcodeNotImplemented
	case len(req.Question) != 1 && !cookieQuery:
		r.rcode = dns.RcodeFormatError
	case e.rcode != dns.RcodeSuccess:
		r.rcode = e.rcode
	case out.cookie == cookieBad && !a.tcp:
		r.rcode = dns.RcodeBadCookie
	case cookieQuery:
		// RFC 7873 §5.4: NOERROR, empty, with the cookie.
	default:
		r = resolve(req.Question[0], a.client, &e, v)
	}
	m.Rcode = r.rcode
	m.Authoritative = r.aa
	m.Answer, m.Ns, m.Extra = r.answer, r.ns, r.extra

	size := dns.MinMsgSize // RFC 1035 §4.2.1, without EDNS0
	switch {
	case a.tcp:
		size = dns.MaxMsgSize
	case e.opt != nil:
		// RFC 6891 §6.2.3 and §6.2.5: below 512 counts as 512; we cap at
		// our own maximum (1232 by default, DNS flag day 2020).
		size = min(max(int(e.opt.UDPSize()), dns.MinMsgSize), v.maxUDP)
	}
	if e.opt != nil {
		m.Extra = append(m.Extra, replyOPT(&e, &r, v.maxUDP, a, out.cookie))
	}
	limit := size
	if !a.tcp && a.amplification > 0 && out.cookie != cookieGood {
		limit = min(size, a.amplification*queryLen(req, &e))
	}
	switch {
	case certainlyFits(m, limit):
	case m.Len() <= limit:
		// Fits uncompressed (m.Compress is unset): sent as it is, as
		// Truncate would, and as the fast path sends its prepared replies.
	case limit < size:
		out.capped = capReply(m, limit)
	default:
		m.Truncate(size)
	}
	return m, out
}

// capReply makes m, a UDP reply to a query without a valid server cookie,
// fit in limit bytes (a multiple of the query's size, below the payload
// size): m itself when it fits compressed, else an empty reply with TC
// set, its OPT record (and cookie) kept, so that the client retries over
// TCP. It reports whether m was emptied.
func capReply(m *dns.Msg, limit int) bool {
	m.Compress = true
	if m.Len() <= limit {
		return false
	}
	opt := m.IsEdns0()
	m.Answer, m.Ns, m.Extra = nil, nil, nil
	if opt != nil {
		m.Extra = []dns.RR{opt}
	}
	m.Truncated = true
	return true
}

// queryLen is a lower bound on the query's size on the wire, from what
// the query path parsed: the header, the question and the OPT record with
// its options (a cookie whole, an ECS option its fixed part, the others
// their 4-byte header; other records count nothing). A lower bound keeps
// the amplification cap honest whatever else a query carries.
func queryLen(req *dns.Msg, e *edns) int {
	n := 12
	for _, q := range req.Question {
		n += nameWireLen(q.Name) + 4
	}
	if e.opt == nil {
		return n
	}
	n += 11 // root owner, type, class, TTL, RDLENGTH
	for _, o := range e.opt.Option {
		n += 4
		switch o := o.(type) {
		case *dns.EDNS0_COOKIE:
			n += len(o.Cookie) / 2
		case *dns.EDNS0_SUBNET:
			// Its fixed part only: miekg/dns pads the address it
			// unpacks, so the address's length on the wire is unknown.
			n += 4
		}
	}
	return n
}

// nameWireLen is the length on the wire of a name in presentation form
// (uncompressed: a question name cannot point backwards).
func nameWireLen(name string) int {
	if name == "" || name == "." {
		return 1
	}
	n := len(name) + 1
	if !strings.HasSuffix(name, ".") {
		n++
	}
	for i := 0; i < len(name); i++ {
		if name[i] != '\\' {
			continue
		}
		if i+3 < len(name) && isDigit(name[i+1]) && isDigit(name[i+2]) && isDigit(name[i+3]) {
			n -= 3 // \DDD is one byte
			i += 3
		} else {
			n-- // \X is one byte
			i++
		}
	}
	return n
}

func isDigit(b byte) bool { return '0' <= b && b <= '9' }

// certainlyFits reports, from an upper bound on m's packed length that
// needs no packing, that m fits in size bytes, so that the common small
// reply skips Truncate's full length computation. false means "measure":
// it knows only address answers (owned by the question name, as withOwner
// makes them) and an OPT record with at most an ECS option.
func certainlyFits(m *dns.Msg, size int) bool {
	if len(m.Question) != 1 || len(m.Ns) > 0 {
		return false
	}
	name := len(m.Question[0].Name) + 1 // wire length ≤ presentation length + 1
	n := 12 + name + 4                  // header, question
	for _, rr := range m.Answer {
		switch rr.(type) {
		case *dns.A, *dns.AAAA:
			n += name + 10 + net.IPv6len // owner, type class ttl rdlength, rdata
		default:
			return false
		}
	}
	for _, rr := range m.Extra {
		opt, ok := rr.(*dns.OPT)
		if !ok {
			return false
		}
		n += 11 // root owner, type class ttl rdlength
		for _, o := range opt.Option {
			if _, ok := o.(*dns.EDNS0_SUBNET); !ok {
				return false
			}
			n += 4 + 4 + net.IPv6len // option header, family and prefixes, address
		}
	}
	return n <= size
}

// setReply starts the reply m to req: SetReply without its allocation.
func setReply(m, req *dns.Msg) {
	m.Id = req.Id
	m.Response = true
	m.Opcode = req.Opcode
	if m.Opcode == dns.OpcodeQuery {
		m.RecursionDesired = req.RecursionDesired // RFC 1035 §4.1.1
		m.CheckingDisabled = req.CheckingDisabled // RFC 4035 §3.2.2
	}
	if len(req.Question) > 0 {
		m.Question = req.Question[:1:1] // name case kept as asked
	}
}

// parseEDNS reads the query's OPT record and its client subnet option.
func parseEDNS(req *dns.Msg) edns {
	var e edns
	for _, rr := range req.Extra {
		opt, ok := rr.(*dns.OPT)
		if !ok {
			continue
		}
		if e.opt != nil {
			e.rcode = dns.RcodeFormatError // RFC 6891 §6.1.1: one OPT at most
			return e
		}
		e.opt = opt
	}
	if e.opt == nil {
		return e
	}
	if e.opt.Version() != 0 {
		e.rcode = dns.RcodeBadVers
		return e
	}
	for _, o := range e.opt.Option {
		switch o := o.(type) {
		case *dns.EDNS0_SUBNET:
			if e.ecs != nil {
				continue
			}
			addr, ok := ecsAddr(o)
			if !ok {
				e.rcode = dns.RcodeFormatError
				return e
			}
			e.ecs, e.client = o, addr
		case *dns.EDNS0_COOKIE:
			// RFC 7873 §5.2: the first COOKIE option counts, the others
			// are ignored.
			if e.cookie.opt != nil {
				continue
			}
			c, ok := parseCookie(o)
			if !ok {
				e.rcode = dns.RcodeFormatError // RFC 7873 §5.2.2
				return e
			}
			e.cookie = c
		}
	}
	return e
}

// ecsAddr returns the address of an ECS option, invalid when the option
// carries none (SOURCE PREFIX-LENGTH 0), and false when the option is
// malformed: an unknown family, a source prefix longer than the family
// allows, or address bits set beyond the source prefix (RFC 7871 §6: the
// server SHOULD answer FORMERR). miekg/dns already rejects the first two
// when unpacking, which yields FORMERR too.
func ecsAddr(o *dns.EDNS0_SUBNET) (netip.Addr, bool) {
	var addr netip.Addr
	switch o.Family {
	case 0:
		return netip.Addr{}, o.SourceNetmask == 0
	case 1:
		a, ok := netip.AddrFromSlice(o.Address.To4())
		if !ok || o.SourceNetmask > 32 {
			return netip.Addr{}, false
		}
		addr = a
	case 2:
		a, ok := netip.AddrFromSlice(o.Address.To16())
		if !ok || o.SourceNetmask > 128 {
			return netip.Addr{}, false
		}
		addr = a
	default:
		return netip.Addr{}, false
	}
	p, err := addr.Prefix(int(o.SourceNetmask))
	if err != nil || p.Addr() != addr {
		return netip.Addr{}, false
	}
	if o.SourceNetmask == 0 {
		return netip.Addr{}, true
	}
	return addr, true
}

// replyOPT is the reply's OPT record: version 0, our payload size, the DO
// bit copied (RFC 3225 §3), the client subnet option echoed with its
// scope (RFC 7871 §7.2.1) unless the query is rejected, and the COOKIE
// option (the client cookie with a server cookie for a.client) when the
// query had a well-formed one (RFC 7873 §5.2).
func replyOPT(e *edns, r *result, maxUDP int, a asker, state cookieState) *dns.OPT {
	o := &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT}}
	o.SetUDPSize(uint16(maxUDP))
	if e.opt.Do() {
		o.SetDo()
	}
	if e.ecs != nil && r.rcode != dns.RcodeFormatError && r.rcode != dns.RcodeBadVers {
		scope := 0
		if e.client.IsValid() {
			scope = r.scope
		}
		o.Option = []dns.EDNS0{&dns.EDNS0_SUBNET{
			Code:          dns.EDNS0SUBNET,
			Family:        e.ecs.Family,
			SourceNetmask: e.ecs.SourceNetmask,
			SourceScope:   uint8(scope),
			Address:       e.ecs.Address,
		}}
	}
	if e.cookie.opt != nil {
		o.Option = append(o.Option, a.cookies.reply(&e.cookie, state, a.client, a.now))
	}
	return o
}

// resolve answers one well-formed question.
func resolve(q dns.Question, client netip.Addr, e *edns, v *view) result {
	switch q.Qclass {
	case dns.ClassINET:
	case dns.ClassCHAOS:
		return resolveChaos(q, v)
	default:
		return result{rcode: dns.RcodeRefused}
	}
	if v.zone == "" {
		return result{rcode: dns.RcodeServerFailure} // not configured yet
	}
	if q.Qtype == dns.TypeAXFR || q.Qtype == dns.TypeIXFR {
		return result{rcode: dns.RcodeRefused} // no zone transfers
	}
	// Fast path: the name as asked, usually lower case already; every
	// name in v.names is in the zone.
	n := v.names[q.Name]
	if n == nil {
		qname := strings.ToLower(q.Name)
		if !inZone(qname, v.zone) {
			return result{rcode: dns.RcodeRefused} // authoritative only
		}
		n = v.names[qname]
	}
	if n == nil {
		// RFC 2308 §2.1: NXDOMAIN with the SOA in the authority section.
		// Names below a database host (x.cache.<zone>) land here too.
		return result{rcode: dns.RcodeNameError, aa: true, ns: v.negative}
	}
	switch {
	case n.host != nil:
		return resolveHost(q, n.host, client, e, v)
	case n.why != nil:
		return resolveWhy(q, n.why, client, e, v)
	}
	var rrs []dns.RR
	if q.Qtype == dns.TypeANY {
		rrs = n.any
	} else {
		rrs = n.static[q.Qtype]
	}
	if len(rrs) == 0 {
		return nodata(v)
	}
	return result{aa: true, answer: withOwner(rrs, q.Name), extra: n.glue[q.Qtype]}
}

// resolveHost answers at a database hostname, for the client's region.
func resolveHost(q dns.Question, h *host, client netip.Addr, e *edns, v *view) result {
	a, scope := hostAnswerFor(h, client, e, v)
	return hostResult(q, a, scope, v)
}

// hostResult is the reply to q at a database hostname whose answer for
// the client's region is a (nil: none), chosen with ECS scope scope.
func hostResult(q dns.Question, a *hostAnswer, scope int, v *view) result {
	if a == nil || a.servFail {
		return result{rcode: dns.RcodeServerFailure}
	}
	if !a.regionDependent {
		scope = 0
	}
	var rrs []dns.RR
	switch {
	case a.cname != nil:
		// RFC 1034 §3.6.2 and §4.3.2: an alias answers every type with
		// the CNAME; the resolver follows it. RFC 7871 §7.2.1: the CNAME
		// alone, so that it is cached with the right scope.
		rrs = a.cname
	case q.Qtype == dns.TypeA:
		rrs = a.a
	case q.Qtype == dns.TypeAAAA:
		rrs = a.aaaa
	case q.Qtype == dns.TypeANY:
		rrs = a.all // RFC 8482 §4.1: the address records only
	}
	if len(rrs) == 0 {
		return nodata(v)
	}
	return result{aa: true, answer: withOwner(rrs, q.Name), scope: scope}
}

// resolveWhy answers at _why.<host>: a TXT record with the reason of the
// answer the asking client gets.
func resolveWhy(q dns.Question, h *host, client netip.Addr, e *edns, v *view) result {
	if q.Qtype != dns.TypeTXT && q.Qtype != dns.TypeANY {
		return nodata(v)
	}
	region, scope := v.regionOf(client, e.client)
	a, r := h.lookupIndex(region, v.regions.def)
	if a == nil {
		return result{aa: true, answer: withOwner(h.pending, q.Name)}
	}
	if !a.regionDependent {
		scope = 0
	}
	reason := "no reason given"
	if ha := hostAnswers(v.snap, h.name); ha != nil {
		if pa := ha.ByRegion[v.regions.names[r]]; pa != nil && pa.Reason != "" {
			reason = pa.Reason
		}
	}
	return result{aa: true, answer: []dns.RR{txtRR(q.Name, a.ttl, reason)}, scope: scope}
}

// hostAnswerFor picks the client's region, from the ECS address when the
// query has one, else from the resolver's address, and returns that
// region's answer with the ECS scope of the choice.
func hostAnswerFor(h *host, client netip.Addr, e *edns, v *view) (*hostAnswer, int) {
	region, scope := v.regionOf(client, e.client)
	return h.lookup(region, v.regions.def), scope
}

// regionOf returns the region index of a query from client with ECS
// address ecs (invalid: none) and the ECS scope of that choice.
func (v *view) regionOf(client, ecs netip.Addr) (region, scope int) {
	if ecs.IsValid() {
		client = ecs
	}
	region, scope = v.regions.lookup(client)
	if ecs.Is4In6() {
		scope += 96 // an IPv4 choice, echoed in IPv6 (family 2) bits
	}
	return region, scope
}

// resolveChaos answers the CH class: TXT id.server and hostname.bind name
// the node (RFC 4892); every other CH name, version.bind included, is
// REFUSED.
func resolveChaos(q dns.Question, v *view) result {
	rrs, ok := v.chaos[strings.ToLower(q.Name)]
	switch {
	case !ok:
		return result{rcode: dns.RcodeRefused}
	case q.Qtype != dns.TypeTXT && q.Qtype != dns.TypeANY:
		return result{aa: true}
	}
	return result{aa: true, answer: withOwner(rrs, q.Name)}
}

// nodata is NOERROR with no answer and the SOA in the authority section
// (RFC 2308 §2.2).
func nodata(v *view) result {
	return result{aa: true, ns: v.negative}
}

// withOwner returns rrs with owner as their owner name: rrs itself when it
// already is (a lower-case query), else copies, so the question's case is
// kept in the answer (resolvers that randomise case compare it).
func withOwner(rrs []dns.RR, owner string) []dns.RR {
	if len(rrs) == 0 || rrs[0].Header().Name == owner {
		return rrs
	}
	out := make([]dns.RR, len(rrs))
	for i, rr := range rrs {
		c := dns.Copy(rr)
		c.Header().Name = owner
		out[i] = c
	}
	return out
}
