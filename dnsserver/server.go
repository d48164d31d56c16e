package dnsserver

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/aagtm/aagtm/config"
	"github.com/aagtm/aagtm/policy"
)

// DefaultMaxUDPSize is the largest UDP reply sent when Options.MaxUDPSize
// is 0: the DNS flag day 2020 value, which avoids IP fragmentation.
const DefaultMaxUDPSize = 1232

// shutdownTimeout bounds how long Run waits for in-flight TCP connections
// when its context is cancelled.
const shutdownTimeout = 5 * time.Second

// Options configures a Server.
type Options struct {
	// Node is this node's name, answered to `dig CH TXT id.server` (and
	// hostname.bind).
	Node string
	// Listen are the addresses (host:port) to serve, each over both UDP and
	// TCP. Port 0 picks a free port, the same for UDP and TCP; Addrs
	// reports it.
	Listen []string
	// MaxUDPSize caps the EDNS0 UDP payload size honoured and advertised;
	// 0 means DefaultMaxUDPSize, values below 512 count as 512.
	MaxUDPSize int
	// ReusePort is the number of UDP sockets per address, bound with
	// SO_REUSEPORT so the kernel spreads queries over them; 0 or 1 means
	// one socket. Ignored where SO_REUSEPORT is not available.
	ReusePort int
	// RateLimit is response rate limiting of UDP replies; a zero
	// ResponsesPerSecond disables it. TCP, and UDP queries with a valid
	// server cookie, are never limited.
	RateLimit config.RateLimit
	// CookieSecrets are the DNS Cookies server secrets: the first makes
	// server cookies, all are accepted. Empty: a random secret made by
	// New, valid on this node until it restarts.
	CookieSecrets [][16]byte
	// UDPAmplificationLimit caps a UDP reply to a query without a valid
	// server cookie at this multiple of the query's size; a larger reply
	// is sent empty with TC set. 0: no cap.
	UDPAmplificationLimit int
	// TCP bounds the TCP connections: zero fields take the config
	// package's defaults.
	TCP config.DNSTCP
	// Registerer, when set, receives the server's metrics.
	Registerer prometheus.Registerer
}

// Server is an authoritative DNS server for the GTM zone. Create it with
// New, feed it with Update and serve with Run. Update and the query path
// are safe for concurrent use.
type Server struct {
	opts          Options
	log           hclog.Logger
	view          atomic.Pointer[view]
	rl            atomic.Pointer[config.RateLimit] // each UDP loop makes its limiter
	maxUDP        atomic.Int64
	cookies       atomic.Pointer[cookieJar]
	nodeSecret    [16]byte // the secret when none is configured
	amplification atomic.Int64
	conns         *connLimiter
	metrics       *metrics
	bufs          sync.Pool // *[]byte, packed replies
	msgs          sync.Pool // *dns.Msg, zeroed replies

	// fastHook, set by tests before Run, sees every reply of the UDP
	// fast path before rate limiting, with the query and what it was
	// answered from: the differential tests compare it with the full
	// path's.
	fastHook func(query []byte, a asker, v *view, reply []byte)

	running atomic.Bool
	ready   chan struct{}
	addrs   []netip.AddrPort
}

// New returns a server for opts. Until the first Update it answers SERVFAIL
// to every IN query. logger may be nil.
func New(opts Options, logger hclog.Logger) *Server {
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	opts.MaxUDPSize = clampUDPSize(opts.MaxUDPSize)
	s := &Server{
		opts:  opts,
		log:   logger.Named("dns"),
		ready: make(chan struct{}),
	}
	opts.TCP = tcpLimits(opts.TCP)
	s.maxUDP.Store(int64(opts.MaxUDPSize))
	s.SetRateLimit(opts.RateLimit)
	_, _ = rand.Read(s.nodeSecret[:]) // crypto/rand.Read never fails (Go 1.24+)
	s.SetCookieSecrets(opts.CookieSecrets)
	s.SetUDPAmplificationLimit(opts.UDPAmplificationLimit)
	s.metrics = newMetrics(opts.Registerer)
	s.conns = newConnLimiter(opts.TCP, s.metrics)
	s.bufs.New = func() any { b := make([]byte, 4096); return &b }
	s.msgs.New = func() any { return new(dns.Msg) }
	s.view.Store(newEmptyView(opts.Node, opts.MaxUDPSize))
	return s
}

func clampUDPSize(n int) int {
	switch {
	case n == 0:
		return DefaultMaxUDPSize
	case n < dns.MinMsgSize:
		return dns.MinMsgSize
	case n > dns.MaxMsgSize:
		return dns.MaxMsgSize
	}
	return n
}

// SetRateLimit applies new response rate limiting settings (a config
// reload). Unchanged settings keep the current buckets; changed ones start
// with full buckets. A zero rate turns limiting off.
func (s *Server) SetRateLimit(rl config.RateLimit) {
	if cur := s.rl.Load(); cur != nil && *cur == rl {
		return
	}
	s.rl.Store(&rl)
}

// SetCookieSecrets replaces the DNS Cookies server secrets (a config
// reload, a secret rollover): the first makes server cookies from now on,
// all are accepted. Empty: the node's own random secret, made by New.
func (s *Server) SetCookieSecrets(secrets [][16]byte) {
	if len(secrets) == 0 {
		secrets = [][16]byte{s.nodeSecret}
	}
	s.cookies.Store(newCookieJar(secrets))
}

// SetUDPAmplificationLimit changes the UDP reply cap for queries without a
// valid server cookie (a config reload); 0 removes it.
func (s *Server) SetUDPAmplificationLimit(n int) { s.amplification.Store(int64(max(n, 0))) }

// SetMaxUDPSize changes the largest UDP reply (a config reload); it takes
// effect with the next Update.
func (s *Server) SetMaxUDPSize(n int) { s.maxUDP.Store(int64(clampUDPSize(n))) }

// Update builds the view of cfg and snap (precomputed records for the zone
// apex, every database host and region) and swaps it in atomically: a
// query is answered wholly from the old view or wholly from the new one.
// It is cheap enough to call after every evaluation: with the same cfg,
// only the hosts whose answers changed are built anew, and a snapshot
// whose answers did not change (its serial is the same) only brings the
// newer reasons that _why serves. snap may be nil before the policy engine
// has produced one; database hosts then answer SERVFAIL. A nil cfg is
// ignored; a cfg without a zone name makes every IN query SERVFAIL.
func (s *Server) Update(cfg *config.Config, snap *policy.Snapshot) {
	if cfg == nil {
		return
	}
	prev := s.view.Load()
	v := prev.next(cfg, snap, s.opts.Node, int(s.maxUDP.Load()), s.log)
	s.view.Store(v)
	if prev.cfg != cfg || serialOf(prev.snap) != serialOf(snap) {
		s.log.Debug("view updated", "zone", v.zone, "names", len(v.names), "snapshot_serial", serialOf(snap))
	}
}

// serialOf is snap's serial, 0 for nil.
func serialOf(snap *policy.Snapshot) uint64 {
	if snap == nil {
		return 0
	}
	return snap.Serial
}

// Ready is closed once Run listens on every address (and Addrs is
// set). It is never closed if Run fails first.
func (s *Server) Ready() <-chan struct{} { return s.ready }

// Addrs returns the bound address of each Options.Listen entry, in order,
// each served over both UDP and TCP; nil before Ready is closed.
func (s *Server) Addrs() []netip.AddrPort {
	select {
	case <-s.ready:
		return s.addrs
	default:
		return nil
	}
}

// Run listens on every address over UDP and TCP and serves until ctx is
// cancelled, then shuts down gracefully (in-flight TCP connections get
// a few seconds) and returns nil. It returns an error when an address
// cannot be bound or a listener fails. Run may be called once.
func (s *Server) Run(ctx context.Context) error {
	if !s.running.CompareAndSwap(false, true) {
		return errors.New("dnsserver: Run called twice")
	}
	if len(s.opts.Listen) == 0 {
		return errors.New("dnsserver: no listen address")
	}
	var (
		servers []*dns.Server // TCP
		loops   []*udpLoop
		closers []func() error
		addrs   []netip.AddrPort
	)
	defer func() {
		for _, c := range closers {
			_ = c() // most are closed by shutdown already
		}
	}()
	for _, addr := range s.opts.Listen {
		b, err := bind(ctx, addr, max(s.opts.ReusePort, 1))
		if err != nil {
			return fmt.Errorf("dnsserver: listen on %s: %w", addr, err)
		}
		addrs = append(addrs, b.addr)
		for _, pc := range b.udp {
			closers = append(closers, pc.Close)
			l, err := newUDPLoop(s, pc)
			if err != nil {
				return fmt.Errorf("dnsserver: listen on %s: %w", addr, err)
			}
			loops = append(loops, l)
		}
		closers = append(closers, b.tcp.Close)
		servers = append(servers, s.dnsServer(s.conns.listener(b.tcp)))
	}
	s.addrs = addrs

	var pending atomic.Int32
	pending.Store(int32(len(servers)))
	started := make([]chan struct{}, len(servers))
	exited := make([]chan struct{}, len(servers))
	g, gctx := errgroup.WithContext(ctx)
	for _, l := range loops {
		g.Go(func() error {
			if err := l.run(gctx); err != nil {
				return fmt.Errorf("dnsserver: serve UDP: %w", err)
			}
			return nil
		})
	}
	for i, srv := range servers {
		started[i], exited[i] = make(chan struct{}), make(chan struct{})
		srv.NotifyStartedFunc = func() {
			close(started[i])
			if pending.Add(-1) == 0 {
				s.log.Info("listening", "addrs", addrs, "udp_sockets", len(loops))
				close(s.ready)
			}
		}
		g.Go(func() error {
			defer close(exited[i])
			if err := srv.ActivateAndServe(); err != nil {
				return fmt.Errorf("dnsserver: serve TCP: %w", err)
			}
			return nil
		})
	}
	g.Go(func() error {
		<-gctx.Done()
		s.conns.stopping.Store(true)
		for _, l := range loops {
			_ = l.pc.Close() // ends its run
		}
		sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
		defer cancel()
		for i, srv := range servers {
			select {
			case <-started[i]:
				_ = srv.ShutdownContext(sctx) // a timeout only cuts TCP clients short
			case <-exited[i]:
			}
		}
		return nil
	})
	err := g.Wait()
	s.log.Info("stopped")
	return err
}

// dnsServer returns a miekg/dns server on the TCP listener l with s as
// handler. UDP is served by the UDP loops (udp.go).
func (s *Server) dnsServer(l net.Listener) *dns.Server {
	return &dns.Server{
		Listener:       l,
		Handler:        s,
		MsgAcceptFunc:  acceptMsg,
		MsgInvalidFunc: func([]byte, error) { s.metrics.invalid() },
		// TCP: the first query within ReadTimeout of the accept, each
		// next one within IdleTimeout, at most MaxQueries per connection
		// (RFC 7766 §6.2.3 asks for idle timeouts of seconds).
		ReadTimeout:   s.opts.TCP.ReadTimeout,
		IdleTimeout:   func() time.Duration { return s.opts.TCP.IdleTimeout },
		MaxTCPQueries: s.opts.TCP.MaxQueries,
	}
}

// acceptMsg lets every request through to the handler, where the rcode
// decisions are made, and ignores responses. Requests miekg/dns cannot
// parse are answered FORMERR by miekg/dns when their header parses, and
// dropped otherwise.
func acceptMsg(dh dns.Header) dns.MsgAcceptAction {
	const qr = 1 << 15
	if dh.Bits&qr != 0 {
		return dns.MsgIgnore
	}
	return dns.MsgAccept
}

// ServeDNS implements dns.Handler, for the queries over TCP: it answers
// req from the current view, writes the reply and records metrics. UDP
// queries are answered by the UDP loops, which also rate-limit.
func (s *Server) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	start := time.Now()
	client, tcp := remote(w)
	m := s.msgs.Get().(*dns.Msg)
	resp, out := answerInto(m, req, asker{
		client:        client,
		tcp:           tcp,
		now:           cookieTime(start),
		cookies:       s.cookies.Load(),
		amplification: int(s.amplification.Load()),
	}, s.view.Load())
	if resp != nil {
		s.write(w, resp)
	}
	s.metrics.observe(req, resp, out, pass, start)
	*m = dns.Msg{}
	s.msgs.Put(m)
}

// write packs m into a pooled buffer and sends it.
func (s *Server) write(w dns.ResponseWriter, m *dns.Msg) {
	bp := s.bufs.Get().(*[]byte)
	defer s.bufs.Put(bp)
	if out := pack(*bp, m, s.log); out != nil {
		if _, err := w.Write(out); err != nil {
			s.log.Trace("write reply", "error", err)
		}
	}
}

// pack packs m into buf (a larger one when buf is too small); nil when m
// does not pack.
func pack(buf []byte, m *dns.Msg, log hclog.Logger) []byte {
	out, err := m.PackBuffer(buf)
	if err != nil {
		log.Trace("pack reply", "error", err)
		return nil
	}
	return out
}

// remote returns the client address and whether it came over TCP.
func remote(w dns.ResponseWriter) (netip.Addr, bool) {
	switch a := w.RemoteAddr().(type) {
	case *net.UDPAddr:
		return a.AddrPort().Addr().Unmap(), false
	case *net.TCPAddr:
		return a.AddrPort().Addr().Unmap(), true
	}
	return netip.Addr{}, false
}
