package dnsserver

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"

	"github.com/aagtm/aagtm/config"
)

// udpBatch is the number of datagrams read (recvmmsg) and written
// (sendmmsg) per system call. A read returns what the socket holds, up to
// udpBatch, so at low load a batch is one query and nothing waits; under
// load 32 spreads each system call over enough replies that its cost no
// longer dominates (an answer is a few hundred nanoseconds, a system call
// a few microseconds), while the first reply of a batch waits for at
// most 31 answers. gdnsd's udp_recv_width allows up to 64.
const udpBatch = 32

// batchConn is the batched I/O of an ipv4.PacketConn or ipv6.PacketConn
// (recvmmsg and sendmmsg where the system has them, one datagram per call
// elsewhere).
type batchConn interface {
	ReadBatch(ms []ipv4.Message, flags int) (int, error)
	WriteBatch(ms []ipv4.Message, flags int) (int, error)
}

// udpLoop serves one UDP socket: it reads queries in batches, answers each
// on the fast path or else on the full path, and writes the replies in
// batches. It owns its rate limiter and its metric counts, so the query
// path shares nothing written with the other sockets' loops: per batch it
// loads the view and settings once and adds its counts to the metrics
// once.
type udpLoop struct {
	s    *Server
	pc   net.PacketConn
	conn batchConn // pc's batched I/O
	in   []ipv4.Message
	out  []ipv4.Message
	bufs [][]byte // reply buffers, one per in message

	// Loaded from s per batch.
	view          *view
	cookies       *cookieJar
	amplification int
	rl            *config.RateLimit
	lim           *limiter // nil: rate limiting off

	fq    fastQuery
	msg   dns.Msg // the full path's reply, zeroed after each use
	tally tally
}

// newUDPLoop returns the loop of pc (nil in tests that call answer).
func newUDPLoop(s *Server, pc net.PacketConn) *udpLoop {
	l := &udpLoop{s: s, pc: pc}
	if pc != nil {
		l.conn = ipv4.NewPacketConn(pc)
		if a, ok := pc.LocalAddr().(*net.UDPAddr); ok && a.IP.To4() == nil {
			l.conn = ipv6.NewPacketConn(pc)
		}
	}
	l.in = make([]ipv4.Message, udpBatch)
	l.out = make([]ipv4.Message, 0, udpBatch)
	l.bufs = make([][]byte, udpBatch)
	for i := range l.in {
		// Queries larger than the payload size we advertise are not
		// expected (RFC 6891 §6.2.5): as miekg/dns, read at most that.
		l.in[i].Buffers = [][]byte{make([]byte, s.opts.MaxUDPSize)}
		l.bufs[i] = make([]byte, 0, s.opts.MaxUDPSize)
	}
	l.load()
	return l
}

// load takes the current view and settings from the server, and makes a
// new rate limiter when the settings changed (SetRateLimit).
func (l *udpLoop) load() {
	l.view = l.s.view.Load()
	l.cookies = l.s.cookies.Load()
	l.amplification = int(l.s.amplification.Load())
	if rl := l.s.rl.Load(); rl != l.rl {
		l.rl, l.lim = rl, newLimiter(*rl)
	}
}

// run serves until the socket is closed; it returns nil when ctx is done
// by then, else the read error.
func (l *udpLoop) run(ctx context.Context) error {
	for {
		n, err := l.conn.ReadBatch(l.in, 0)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return err
		}
		start := time.Now()
		l.load()
		l.out = l.out[:0]
		for i := range l.in[:n] {
			m := &l.in[i]
			ua, ok := m.Addr.(*net.UDPAddr)
			if !ok {
				continue
			}
			client := ua.AddrPort().Addr().Unmap()
			reply := l.answer(l.bufs[i][:0], m.Buffers[0][:m.N], client, start)
			if reply == nil {
				continue
			}
			l.bufs[i] = reply[:0] // keep a buffer PackBuffer had to grow
			l.out = append(l.out, ipv4.Message{Buffers: [][]byte{reply}, Addr: m.Addr})
		}
		l.write()
		l.s.metrics.flush(&l.tally, time.Since(start))
	}
}

// write sends the batch's replies; a reply the kernel refuses (an
// unreachable address) is skipped.
func (l *udpLoop) write() {
	for out := l.out; len(out) > 0; {
		n, err := l.conn.WriteBatch(out, 0)
		if err != nil {
			l.s.log.Trace("write replies", "error", err)
			n = max(n, 1)
		}
		out = out[n:]
	}
	for i := range l.out {
		l.out[i] = ipv4.Message{} // drop the references to the addresses
	}
}

// answer answers pkt, a datagram from client read at now, into dst: the
// reply to send, or nil when nothing must be sent. The fast path answers
// what it can; the rest takes the full path.
func (l *udpLoop) answer(dst, pkt []byte, client netip.Addr, now time.Time) []byte {
	a := asker{client: client, now: cookieTime(now), cookies: l.cookies, amplification: l.amplification}
	b, out, ok := fastAnswer(dst, pkt, a, l.view, &l.fq)
	if !ok {
		return l.full(dst, pkt, a, now)
	}
	if l.s.fastHook != nil {
		l.s.fastHook(pkt, a, l.view, b)
	}
	v := pass
	if l.lim != nil && out.cookie != cookieGood {
		v = l.lim.check(client, out.key, now)
	}
	ri := rcodeIndex(out.rcode)
	switch v {
	case drop:
		b, ri = nil, rcodeNone
	case slip:
		b, ri = slipReply(b, &l.fq), rcodeIndex(dns.RcodeSuccess)
	}
	l.tally.add(typeIndex(out.qtype), ri, outcome{cookie: out.cookie}, v)
	return b
}

// full answers pkt the way miekg/dns's UDP server and ServeDNS do: a
// datagram shorter than a header is dropped, a response ignored, one that
// does not unpack answered FORMERR (its header echoed), and the rest
// answered by answerInto, rate limited and packed into dst.
func (l *udpLoop) full(dst, pkt []byte, a asker, now time.Time) []byte {
	const qr = 0x80
	if len(pkt) < headerLen {
		l.s.metrics.invalid() // too short for a header: no reply can be made
		return nil
	}
	if pkt[2]&qr != 0 {
		return nil // acceptMsg: never answer a response
	}
	req := new(dns.Msg)
	if err := req.Unpack(pkt); err != nil {
		l.s.metrics.invalid()
		// miekg/dns's answer to a request it cannot unpack: FORMERR with
		// the header echoed and whatever question parsed.
		req.SetRcodeFormatError(req)
		req.Zero = false
		req.Ns, req.Answer, req.Extra = nil, nil, nil
		return pack(dst, req, l.s.log)
	}
	defer func() { l.msg = dns.Msg{} }()
	resp, out := answerInto(&l.msg, req, a, l.view)
	v := pass
	if l.lim != nil && resp != nil && out.cookie != cookieGood {
		resp, v = l.lim.limit(resp, a.client, now)
	}
	l.tally.addMsg(req, resp, out, v)
	if resp == nil {
		return nil
	}
	return pack(dst, resp, l.s.log)
}
