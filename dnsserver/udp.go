package dnsserver

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"time"

	"github.com/miekg/dns"

	"github.com/aagtm/aagtm/config"
)

// udpBatch is the number of datagrams read (recvmmsg) and written
// (sendmmsg) per system call. A read returns what the socket holds, up to
// udpBatch, so at low load a batch is one query and nothing waits; under
// load 32 spreads each system call over enough replies that its cost no
// longer dominates (an answer is a few hundred nanoseconds, a system call
// a few microseconds), while the first reply of a batch waits for at
// most 31 answers. (gdnsd 3 reads 16 per recvmmsg: udp_recv_width, fixed
// at 16 since 3.0, its NEWS.)
const udpBatch = 32

// batchConn is a UDP socket's batched I/O: recvmmsg and sendmmsg without
// an allocation per datagram on Linux (mmsgBatch), golang.org/x/net's
// ReadBatch and WriteBatch elsewhere (xnetBatch).
type batchConn interface {
	// readBatch waits for datagrams and reads up to len(pkts) of them
	// into pkts, setting sizes[i] and from[i] to the length and source
	// of the i-th; a source it cannot represent is the zero AddrPort.
	readBatch(pkts [][]byte, sizes []int, from []netip.AddrPort) (int, error)
	// writeBatch sends replies[k] to the source of the datagram that the
	// last readBatch read into slot slots[k]. It returns how many it sent;
	// on an error, the reply after those failed.
	writeBatch(replies [][]byte, slots []int) (int, error)
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
	// Per read slot: the query read, its length and source, and the
	// buffer its reply is packed into.
	pkts  [][]byte
	sizes []int
	from  []netip.AddrPort
	bufs  [][]byte
	// The batch's replies and the slots of the queries they answer.
	replies [][]byte
	slots   []int

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
func newUDPLoop(s *Server, pc net.PacketConn) (*udpLoop, error) {
	l := &udpLoop{
		s:       s,
		pc:      pc,
		pkts:    make([][]byte, udpBatch),
		sizes:   make([]int, udpBatch),
		from:    make([]netip.AddrPort, udpBatch),
		bufs:    make([][]byte, udpBatch),
		replies: make([][]byte, 0, udpBatch),
		slots:   make([]int, 0, udpBatch),
	}
	for i := range l.pkts {
		// Queries larger than the payload size we advertise are not
		// expected (RFC 6891 §6.2.5): as miekg/dns, read at most that.
		l.pkts[i] = make([]byte, s.opts.MaxUDPSize)
		l.bufs[i] = make([]byte, 0, s.opts.MaxUDPSize)
	}
	if pc != nil {
		var err error
		if l.conn, err = newBatchConn(pc, udpBatch); err != nil {
			return nil, err
		}
	}
	l.load()
	return l, nil
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
		n, err := l.conn.readBatch(l.pkts, l.sizes, l.from)
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
		l.replies, l.slots = l.replies[:0], l.slots[:0]
		for i := range n {
			if !l.from[i].IsValid() {
				continue
			}
			client := l.from[i].Addr().Unmap()
			reply := l.answer(l.bufs[i][:0], l.pkts[i][:l.sizes[i]], client, start)
			if reply == nil {
				continue
			}
			l.bufs[i] = reply[:0] // keep a buffer PackBuffer had to grow
			l.replies = append(l.replies, reply)
			l.slots = append(l.slots, i)
		}
		l.write()
		l.s.metrics.flush(&l.tally, time.Since(start))
	}
}

// write sends the batch's replies; a reply the kernel refuses (an
// unreachable address) is skipped.
func (l *udpLoop) write() {
	for k := 0; k < len(l.replies); {
		n, err := l.conn.writeBatch(l.replies[k:], l.slots[k:])
		if err != nil {
			l.s.log.Trace("write replies", "error", err)
			n++
		}
		k += n
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
