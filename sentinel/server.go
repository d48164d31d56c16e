package sentinel

import (
	"bufio"
	"context"
	"crypto/sha1"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/aagtm/aagtm/config"
	"github.com/aagtm/aagtm/policy"
)

// Timeouts of writes to clients. A subscriber that cannot take a pushed
// message within pushTimeout is disconnected: it reconnects and asks
// again, which gives it the current answer, instead of holding up the
// messages of every other subscriber.
const (
	replyTimeout = 10 * time.Second
	pushTimeout  = 200 * time.Millisecond
	// keepAlive is the TCP keepalive period: idle subscribers are never
	// timed out by the server (Jedis never pings its subscription), but a
	// peer that vanished is found.
	keepAlive = 30 * time.Second
)

// Options configure a Server.
type Options struct {
	// Node is this node's name: the run id and myid derive from it, and
	// SENTINEL SENTINELS lists the other nodes of the config.
	Node string
	// Listen is the TCP address to serve on.
	Listen string
	// TLS, when set, serves TLS only.
	TLS *tls.Config
	// Password, when set, must be given with AUTH or HELLO ... AUTH
	// before any other command.
	Password string
	// Registerer receives the metrics; nil registers none.
	Registerer prometheus.Registerer
}

// Server is the Sentinel-protocol endpoint of a node.
type Server struct {
	opts    Options
	logger  hclog.Logger
	metrics *metrics
	runID   string
	started time.Time

	view   atomic.Pointer[view]
	nextID atomic.Int64

	mu    sync.Mutex
	conns map[*conn]struct{} // every open connection
	subs  map[*conn]struct{} // connections with a subscription

	// queue holds the switches to publish, in order; wake signals it.
	queueMu sync.Mutex
	queue   []switchEvent
	wake    chan struct{}

	addr  atomic.Pointer[net.Addr]
	ready chan struct{}
}

// New prepares a server; nothing listens until Run. It answers no
// database until the first Update.
func New(opts Options, logger hclog.Logger) *Server {
	s := &Server{
		opts:    opts,
		logger:  logger.Named("sentinel"),
		metrics: newMetrics(opts.Registerer),
		runID:   nodeRunID(opts.Node),
		started: time.Now(),
		conns:   map[*conn]struct{}{},
		subs:    map[*conn]struct{}{},
		wake:    make(chan struct{}, 1),
		ready:   make(chan struct{}),
	}
	s.view.Store(emptyView())
	return s
}

// Ready is closed once the server listens.
func (s *Server) Ready() <-chan struct{} { return s.ready }

// Addr returns the bound address (after Ready).
func (s *Server) Addr() net.Addr {
	if a := s.addr.Load(); a != nil {
		return *a
	}
	return nil
}

// Update makes cfg and snap what commands answer, then publishes a
// +switch-master (with +sdown and -sdown) for every database and client
// region whose master changed: a client told of a switch that asks again
// gets the new master.
func (s *Server) Update(cfg *config.Config, snap *policy.Snapshot) {
	next := buildView(cfg, snap, s.opts.Node)
	prev := s.view.Swap(next)
	events := switches(prev, next)
	if len(events) == 0 {
		return
	}
	for _, e := range events {
		s.logger.Info("master switched: publishing +switch-master", "db", e.db, "region", e.region,
			"from", e.from.member, "to", e.to.member, "old", net.JoinHostPort(e.from.host, e.from.port),
			"new", net.JoinHostPort(e.to.host, e.to.port))
	}
	s.queueMu.Lock()
	s.queue = append(s.queue, events...)
	s.queueMu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// switchEvent is one changed master: database db's answer for clients of
// region moved from one address to another.
type switchEvent struct {
	db, region string
	from, to   master
}

// switches lists the masters that moved between two views, in database
// then region order. A master appearing or disappearing (no answer
// before or after) is no switch: there is nothing to switch from or to.
func switches(prev, next *view) []switchEvent {
	var out []switchEvent
	for _, db := range next.names {
		old := prev.masters[db]
		for _, r := range next.cfg.ClientRegions() {
			from, to := old[r], next.masters[db][r]
			if from.valid() && to.valid() && (from.host != to.host || from.port != to.port) {
				out = append(out, switchEvent{db: db, region: r, from: from, to: to})
			}
		}
	}
	return out
}

// Run serves until ctx is cancelled, then closes every connection.
func (s *Server) Run(ctx context.Context) error {
	lc := net.ListenConfig{KeepAlive: keepAlive}
	lis, err := lc.Listen(ctx, "tcp", s.opts.Listen)
	if err != nil {
		return fmt.Errorf("listen for Sentinel clients on %s: %w", s.opts.Listen, err)
	}
	addr := lis.Addr()
	s.addr.Store(&addr)
	if s.opts.TLS != nil {
		lis = tls.NewListener(lis, s.opts.TLS)
	}
	close(s.ready)
	s.logger.Info("serving the Sentinel protocol", "addr", addr.String(), "tls", s.opts.TLS != nil, "auth", s.opts.Password != "")

	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.publishLoop(ctx)
	}()
	go func() {
		<-ctx.Done()
		lis.Close()
	}()
	for {
		nc, err := lis.Accept()
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			s.closeAll()
			wg.Wait()
			return fmt.Errorf("accept Sentinel clients on %s: %w", addr, err)
		}
		c := s.newConn(nc)
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.serve(ctx)
		}()
	}
	s.closeAll()
	wg.Wait()
	return nil
}

// closeAll closes every open connection (shutdown).
func (s *Server) closeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		c.nc.Close()
	}
}

// publishLoop delivers queued switches until ctx is cancelled.
func (s *Server) publishLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.wake:
		}
		s.queueMu.Lock()
		events := s.queue
		s.queue = nil
		s.queueMu.Unlock()
		for _, e := range events {
			s.publishSwitch(e)
		}
	}
}

// publishSwitch tells subscribers of a switch. Subscribers of e's client
// region get the messages under the database's name; every subscriber
// gets them under "<db>@<region>", the name that selects the region
// explicitly. For each name the order is what a Sentinel sends around a
// failover: +sdown of the old master, +switch-master, -sdown of the new.
func (s *Server) publishSwitch(e switchEvent) {
	v := s.view.Load()
	s.mu.Lock()
	subs := make([]*conn, 0, len(s.subs))
	for c := range s.subs {
		subs = append(subs, c)
	}
	s.mu.Unlock()
	explicit := e.db + "@" + e.region
	for _, c := range subs {
		names := []string{explicit}
		if v.regionOf(c.remote) == e.region {
			names = []string{e.db, explicit}
		}
		for _, name := range names {
			c.publish("+sdown", fmt.Sprintf("master %s %s %s", name, e.from.host, e.from.port))
			c.publish("+switch-master", fmt.Sprintf("%s %s %s %s %s", name, e.from.host, e.from.port, e.to.host, e.to.port))
			c.publish("-sdown", fmt.Sprintf("master %s %s %s", name, e.to.host, e.to.port))
		}
		c.flushPush()
	}
}

// newConn registers an accepted connection.
func (s *Server) newConn(nc net.Conn) *conn {
	c := &conn{
		s:      s,
		nc:     nc,
		id:     s.nextID.Add(1),
		rd:     newReader(nc),
		out:    writer{w: bufio.NewWriterSize(nc, 8<<10)},
		authed: s.opts.Password == "",
	}
	if ap, err := netip.ParseAddrPort(nc.RemoteAddr().String()); err == nil {
		c.remote = ap.Addr().Unmap()
	}
	s.mu.Lock()
	s.conns[c] = struct{}{}
	s.mu.Unlock()
	s.metrics.accepted.Inc()
	s.metrics.connections.WithLabelValues("command").Inc()
	return c
}

// dropConn unregisters a closed connection.
func (s *Server) dropConn(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	_, sub := s.subs[c]
	delete(s.subs, c)
	s.mu.Unlock()
	if sub {
		s.metrics.connections.WithLabelValues("subscribed").Dec()
	} else {
		s.metrics.connections.WithLabelValues("command").Dec()
	}
}

// setSubscribed moves c in or out of the subscriber set.
func (s *Server) setSubscribed(c *conn, on bool) {
	s.mu.Lock()
	_, was := s.subs[c]
	if on {
		s.subs[c] = struct{}{}
	} else {
		delete(s.subs, c)
	}
	s.mu.Unlock()
	switch {
	case on && !was:
		s.metrics.connections.WithLabelValues("command").Dec()
		s.metrics.connections.WithLabelValues("subscribed").Inc()
	case !on && was:
		s.metrics.connections.WithLabelValues("subscribed").Dec()
		s.metrics.connections.WithLabelValues("command").Inc()
	}
}

// nodeRunID is the 40-hex-digit run id (SENTINEL MYID) of node name: the
// same on every start, and what the other nodes list for it.
func nodeRunID(name string) string {
	sum := sha1.Sum([]byte("aagtm-sentinel/" + name))
	return hex.EncodeToString(sum[:])
}

// memberRunID is the run id reported for a member.
func memberRunID(member string) string {
	sum := sha1.Sum([]byte("aagtm-member/" + member))
	return hex.EncodeToString(sum[:])
}
