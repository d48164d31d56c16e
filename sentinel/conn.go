package sentinel

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"time"
)

// conn is one client connection. Its goroutine reads and answers
// commands; the publisher writes pushed messages to it concurrently, so
// every write holds mu.
type conn struct {
	s      *Server
	nc     net.Conn
	id     int64
	remote netip.Addr
	rd     *reader

	mu     sync.Mutex // guards out, and the fields below written by commands
	out    writer
	broken bool // a write failed: the connection is being closed

	authed   bool
	name     string
	channels map[string]bool
	patterns map[string]bool
}

// serve answers commands until the client leaves, sends QUIT, breaks the
// protocol, or ctx ends.
func (c *conn) serve(ctx context.Context) {
	defer c.s.dropConn(c)
	defer c.nc.Close()
	log := c.s.logger.With("client", c.nc.RemoteAddr().String())
	log.Trace("connection opened")
	for ctx.Err() == nil {
		args, err := c.rd.readCommand()
		if err != nil {
			var pe protocolError
			if errors.As(err, &pe) {
				c.s.metrics.protoErrors.Inc()
				log.Debug("protocol error: closing the connection", "error", pe.Error())
				c.mu.Lock()
				c.out.error("ERR " + pe.Error())
				c.flushLocked(replyTimeout)
				c.mu.Unlock()
			} else if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				log.Trace("read failed", "error", err)
			}
			return
		}
		if len(args) == 0 {
			continue
		}
		c.s.metrics.command(args[0])
		c.mu.Lock()
		quit := c.dispatch(args)
		// Pipelined commands are answered in one write.
		if quit || !c.rd.buffered() {
			c.flushLocked(replyTimeout)
		}
		broken := c.broken
		c.mu.Unlock()
		if quit || broken {
			return
		}
	}
}

// flushLocked writes the buffered replies within timeout; a failure marks
// the connection broken and closes it (c.mu is held).
func (c *conn) flushLocked(timeout time.Duration) {
	if c.broken || c.out.w.Buffered() == 0 {
		return
	}
	_ = c.nc.SetWriteDeadline(time.Now().Add(timeout))
	if err := c.out.w.Flush(); err != nil {
		c.broken = true
		c.nc.Close()
	}
}

// publish buffers a message on channel for c if it subscribes to the
// channel or a pattern matching it; flushPush sends what was buffered.
func (c *conn) publish(channel, payload string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.broken {
		return
	}
	if c.channels[channel] {
		c.out.push(3)
		c.out.bulk("message")
		c.out.bulk(channel)
		c.out.bulk(payload)
		c.s.metrics.published.WithLabelValues(channel).Inc()
	}
	for _, p := range sortedKeys(c.patterns) {
		if globMatch(p, channel) {
			c.out.push(4)
			c.out.bulk("pmessage")
			c.out.bulk(p)
			c.out.bulk(channel)
			c.out.bulk(payload)
			c.s.metrics.published.WithLabelValues(channel).Inc()
		}
	}
}

// flushPush sends the buffered messages, dropping a subscriber too slow
// to take them.
func (c *conn) flushPush() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.flushLocked(pushTimeout)
	if c.broken {
		c.s.logger.Debug("subscriber too slow for a message: disconnected, it will reconnect", "client", c.nc.RemoteAddr().String())
	}
}

// subscriptions is how many channels and patterns c subscribes to.
func (c *conn) subscriptions() int { return len(c.channels) + len(c.patterns) }

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// subscribe handles SUBSCRIBE and PSUBSCRIBE: one confirmation per name,
// with the count of subscriptions after it.
func (c *conn) subscribe(kind string, names []string) {
	set := &c.channels
	if kind == "psubscribe" {
		set = &c.patterns
	}
	if *set == nil {
		*set = map[string]bool{}
	}
	for _, n := range names {
		(*set)[n] = true
		c.out.push(3)
		c.out.bulk(kind)
		c.out.bulk(n)
		c.out.int(int64(c.subscriptions()))
	}
	c.s.setSubscribed(c, true)
}

// unsubscribe handles UNSUBSCRIBE and PUNSUBSCRIBE: without names, from
// every channel (pattern); with none subscribed, one confirmation with a
// null name, as Redis sends.
func (c *conn) unsubscribe(kind string, names []string) {
	set := c.channels
	if kind == "punsubscribe" {
		set = c.patterns
	}
	if len(names) == 0 {
		names = sortedKeys(set)
		if len(names) == 0 {
			c.out.push(3)
			c.out.bulk(kind)
			c.out.nullBulk()
			c.out.int(int64(c.subscriptions()))
		}
	}
	for _, n := range names {
		delete(set, n)
		c.out.push(3)
		c.out.bulk(kind)
		c.out.bulk(n)
		c.out.int(int64(c.subscriptions()))
	}
	if c.subscriptions() == 0 {
		c.s.setSubscribed(c, false)
	}
}

// clientName reports whether name is a valid client name: printable
// ASCII without spaces (Redis's rule).
func validClientName(name string) bool {
	for i := 0; i < len(name); i++ {
		if name[i] < '!' || name[i] > '~' {
			return false
		}
	}
	return true
}

// lower is strings.ToLower for command names.
func lower(s string) string { return strings.ToLower(s) }
