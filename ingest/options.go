package ingest

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Defaults of the limits on the report channel (see README.md).
const (
	// DefaultRateLimit is how many reports per second one agent may send
	// to a node before the excess is dropped: ten times the fastest probe
	// interval (100ms), leaving room for reconnect bursts.
	DefaultRateLimit = 20
	// MaxAgentStreams is how many report streams one agent (one
	// authenticated principal) may hold open at once. An agent needs one
	// per node; the rest is room for streams of a crashed process that the
	// node has not noticed yet.
	MaxAgentStreams = 4
	// DefaultHandshakeTimeout bounds a new connection's TLS and HTTP/2
	// handshake (gRPC's own default is 120 s).
	DefaultHandshakeTimeout = 5 * time.Second
	// DefaultMaxConnectionIdle closes a connection that has had no open
	// stream for this long. Agents hold a stream all the time.
	DefaultMaxConnectionIdle = time.Minute
	// maxRejectedNames is how many unknown member names an ack lists; the
	// count of all of them is in rejected_member_count.
	maxRejectedNames = 5
)

// warnEvery limits repeated warnings about the same agent and reason, and
// refusals from the same source address.
const warnEvery = 10 * time.Second

// Option configures New.
type Option func(*options)

type options struct {
	node      string
	rate      float64
	handshake time.Duration
	idle      time.Duration
	now       func() time.Time
	reg       prometheus.Registerer
}

// WithNodeName sets the node name carried in acks and logs.
func WithNodeName(name string) Option { return func(o *options) { o.node = name } }

// WithRateLimit sets the per-agent report rate limit in reports per second
// (burst: one second's worth); zero or less disables it. Default
// DefaultRateLimit.
func WithRateLimit(perSecond float64) Option {
	return func(o *options) { o.rate = perSecond }
}

// WithConnectionTimeouts sets how long a new connection may take for its
// TLS and HTTP/2 handshake (default DefaultHandshakeTimeout) and how long a
// connection without an open stream is kept (default
// DefaultMaxConnectionIdle). Zero keeps a default.
func WithConnectionTimeouts(handshake, idle time.Duration) Option {
	return func(o *options) {
		if handshake > 0 {
			o.handshake = handshake
		}
		if idle > 0 {
			o.idle = idle
		}
	}
}

// WithRegisterer registers the ingest's metrics with r (see README.md).
func WithRegisterer(r prometheus.Registerer) Option {
	return func(o *options) { o.reg = r }
}

// WithClock replaces time.Now as the source of observation times.
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }
