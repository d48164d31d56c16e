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
	// DefaultAgentStreams is how many report streams one agent (one
	// authenticated principal) may hold open at once. An agent needs one
	// per node; the rest is room for streams of a crashed process that the
	// node has not noticed yet.
	DefaultAgentStreams = 4
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
	node         string
	rate         float64
	maxMsg       int
	agentStreams int
	maxStreams   int // 0: 2 × agents + 16
	handshake    time.Duration
	idle         time.Duration
	now          func() time.Time
	reg          prometheus.Registerer
}

// WithNodeName sets the node name carried in acks and logs.
func WithNodeName(name string) Option { return func(o *options) { o.node = name } }

// WithRateLimit sets the per-agent report rate limit in reports per second
// (burst: one second's worth); zero or less disables it. Default
// DefaultRateLimit.
func WithRateLimit(perSecond float64) Option {
	return func(o *options) { o.rate = perSecond }
}

// WithMaxMessageSize bounds the size of one received report in bytes
// (default 1 MiB).
func WithMaxMessageSize(n int) Option { return func(o *options) { o.maxMsg = n } }

// WithStreamLimits sets how many report streams one agent may hold open
// (default DefaultAgentStreams) and how many may be open in all (default,
// or when total is 0: 2 × the configured agents + 16). A stream past
// either cap is refused with ResourceExhausted.
func WithStreamLimits(perAgent, total int) Option {
	return func(o *options) { o.agentStreams, o.maxStreams = perAgent, total }
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
