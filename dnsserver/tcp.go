package dnsserver

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aagtm/aagtm/config"
)

// tcpSourceBitsV6 groups IPv6 TCP clients by /64 for the per-source cap:
// one host usually holds a whole /64.
const tcpSourceBitsV6 = 64

// tcpLimits fills in the zero fields of c with the config defaults.
func tcpLimits(c config.DNSTCP) config.DNSTCP {
	orInt := func(v, d int) int {
		if v <= 0 {
			return d
		}
		return v
	}
	orDur := func(v, d time.Duration) time.Duration {
		if v <= 0 {
			return d
		}
		return v
	}
	return config.DNSTCP{
		MaxConnections:          orInt(c.MaxConnections, config.DefaultDNSTCPMaxConnections),
		MaxConnectionsPerSource: orInt(c.MaxConnectionsPerSource, config.DefaultDNSTCPMaxConnectionsPerSource),
		ReadTimeout:             orDur(c.ReadTimeout, config.DefaultDNSTCPReadTimeout),
		IdleTimeout:             orDur(c.IdleTimeout, config.DefaultDNSTCPIdleTimeout),
		MaxQueries:              orInt(c.MaxQueries, config.DefaultDNSTCPMaxQueries),
	}
}

// Why a TCP connection was refused or closed: the label values of
// aagtm_dns_tcp_refused_total and aagtm_dns_tcp_closed_total.
const (
	refusedTotal = iota
	refusedPerSource
	refusedReasons
)

const (
	closedReadTimeout = iota
	closedIdleTimeout
	closedMaxQueries
	closedPeer
	closedShutdown
	closedReasons
)

var (
	refusedLabels = [refusedReasons]string{"max_connections", "max_connections_per_source"}
	closedLabels  = [closedReasons]string{"read_timeout", "idle_timeout", "max_queries", "peer", "shutdown"}
)

// connLimiter caps the TCP connections a server holds open, in total and
// per source, across all its TCP listeners. Connections over a cap are
// accepted and closed at once with a reset: they never queue in the
// server (the kernel's listen backlog is the only queue, and it is
// bounded).
type connLimiter struct {
	max, perSource, maxQueries int
	metrics                    *metrics

	mu       sync.Mutex
	open     int
	bySource map[netip.Addr]int
	stopping atomic.Bool
}

func newConnLimiter(c config.DNSTCP, m *metrics) *connLimiter {
	return &connLimiter{
		max:        c.MaxConnections,
		perSource:  c.MaxConnectionsPerSource,
		maxQueries: c.MaxQueries,
		metrics:    m,
		bySource:   map[netip.Addr]int{},
	}
}

// sourceOf is the per-source key of a remote address: the IPv4 address,
// or the /64 of an IPv6 address.
func sourceOf(a net.Addr) netip.Addr {
	ta, ok := a.(*net.TCPAddr)
	if !ok {
		return netip.Addr{}
	}
	ip := ta.AddrPort().Addr().Unmap()
	if ip.Is6() {
		if p, err := ip.Prefix(tcpSourceBitsV6); err == nil {
			return p.Addr()
		}
	}
	return ip
}

// admit counts a new connection from src, or returns the cap it would
// exceed.
func (l *connLimiter) admit(src netip.Addr) (refused int, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.open >= l.max:
		return refusedTotal, false
	case l.bySource[src] >= l.perSource:
		return refusedPerSource, false
	}
	l.open++
	l.bySource[src]++
	l.metrics.tcpOpen(1)
	return 0, true
}

// release forgets a connection from src.
func (l *connLimiter) release(src netip.Addr) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.open--
	if l.bySource[src] <= 1 {
		delete(l.bySource, src)
	} else {
		l.bySource[src]--
	}
	l.metrics.tcpOpen(-1)
}

// listener wraps a TCP listener so that Accept returns only connections
// within the caps.
func (l *connLimiter) listener(inner net.Listener) net.Listener {
	return &limitedListener{Listener: inner, lim: l}
}

type limitedListener struct {
	net.Listener
	lim *connLimiter
}

// Accept returns the next connection within the caps; the others are
// reset and counted.
func (ll *limitedListener) Accept() (net.Conn, error) {
	for {
		c, err := ll.Listener.Accept()
		if err != nil {
			return nil, err
		}
		src := sourceOf(c.RemoteAddr())
		if reason, ok := ll.lim.admit(src); !ok {
			if tc, isTCP := c.(*net.TCPConn); isTCP {
				_ = tc.SetLinger(0) // RST: no TIME_WAIT kept for a refused client
			}
			_ = c.Close()
			ll.lim.metrics.tcpRefused(reason)
			continue
		}
		return &limitedConn{Conn: c, lim: ll.lim, src: src}, nil
	}
}

// limitedConn is an admitted connection: it gives its slot back once
// closed and records why it closed. miekg/dns reads the first query with
// the read timeout and the next ones with the idle timeout, and writes
// one reply per query, so a timeout before any reply is a read timeout
// and one after is an idle timeout.
type limitedConn struct {
	net.Conn
	lim      *connLimiter
	src      netip.Addr
	replies  atomic.Int64
	timedOut atomic.Bool
	once     sync.Once
}

func (c *limitedConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
		c.timedOut.Store(true)
	}
	return n, err
}

func (c *limitedConn) Write(b []byte) (int, error) {
	c.replies.Add(1)
	return c.Conn.Write(b)
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		c.lim.release(c.src)
		c.lim.metrics.tcpClosed(c.closeReason())
	})
	return err
}

func (c *limitedConn) closeReason() int {
	switch {
	case c.lim.stopping.Load():
		return closedShutdown
	case c.replies.Load() >= int64(c.lim.maxQueries):
		return closedMaxQueries
	case c.timedOut.Load() && c.replies.Load() == 0:
		return closedReadTimeout
	case c.timedOut.Load():
		return closedIdleTimeout
	}
	return closedPeer
}
