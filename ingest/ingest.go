package ingest

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"

	"github.com/aagtm/aagtm/api"
	"github.com/aagtm/aagtm/config"
	"github.com/aagtm/aagtm/internal/reportwire"
	"github.com/aagtm/aagtm/policy"
)

// AgentStatus is what a node knows of one agent and its connection.
type AgentStatus struct {
	// ID and Region identify the agent (region from the node's config).
	ID     string
	Region string
	// Connected is true while the agent holds at least one open report
	// stream to this node; Streams counts them and StreamSince is when
	// the oldest opened.
	Connected   bool
	Streams     int
	StreamSince time.Time
	// Remote is the address its last report (or open stream) came from.
	Remote string
	// LastSeen is when its last accepted report arrived (node clock);
	// zero when none has.
	LastSeen time.Time
	// BootID and LastSeq are the boot id and sequence number of its last
	// accepted report.
	BootID  string
	LastSeq uint64
	// ConfigHash is the config hash of its last report.
	ConfigHash string
	// Accepted, Refused and Dropped count its reports: accepted (possibly
	// without some unknown members), refused (wrong region, a seq that
	// does not advance, a report for another agent on its stream) and
	// dropped by the rate limit.
	Accepted, Refused, Dropped uint64
	// LastRefusal is why its last refused or dropped report was refused,
	// at LastRefusalAt; empty when none was.
	LastRefusal   string
	LastRefusalAt time.Time
}

// Ingest is the node side of the report protocol: a gRPC ReportService
// that authenticates agents, validates and sequences their reports and
// passes the resulting observations to a sink.
type Ingest struct {
	logger  hclog.Logger
	sink    func([]policy.Observation)
	opts    options
	metrics *metrics // nil without WithRegisterer

	view atomic.Pointer[view]
	// accepted numbers the accepted reports of all agents on this node:
	// the Seq of the observations handed to the sink. One counter for
	// every agent, so an agent's numbers only grow, across its boots and
	// even when it is removed from the config and added again.
	accepted atomic.Uint64
	// served is the transport mode ServerOptions committed to ("tls" or
	// "insecure"); Reconfigure may not change it.
	served atomic.Value // string

	mu      sync.Mutex
	agents  map[string]*agentTrack
	streams map[*openStream]struct{}
	warned  limiter // repeated warnings per agent and reason
	refused limiter // refusal warnings per source address

	shutdownOnce sync.Once
	shutdown     chan struct{} // closed by Shutdown: ends Register'ed streams
}

// agentTrack is per-agent state. Its mu is held while a report of the
// agent is sequenced and handed to the sink, so that two streams of one
// agent cannot deliver out of order.
type agentTrack struct {
	mu     sync.Mutex
	status AgentStatus
	tokens float64
	refill time.Time
}

// openStream is one open report stream.
type openStream struct {
	p     principal
	since time.Time
	// agent is p.agent, or in insecure mode the agent of the stream's
	// first accepted report (for status only). Guarded by Ingest.mu.
	agent string
	// end receives the error that ends the stream (revoked credentials).
	end chan error
}

// New returns an ingest for cfg that passes every accepted report's
// observations to sink. sink is called from the stream goroutines,
// possibly concurrently for different agents but never for one agent, and
// should return quickly. Credential problems (unreadable token or
// certificate files, no protection without security.insecure) are
// returned by ServerOptions and Serve.
func New(cfg *config.Config, logger hclog.Logger, sink func([]policy.Observation), opts ...Option) *Ingest {
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	in := &Ingest{
		logger: logger.Named("ingest"),
		sink:   sink,
		opts: options{
			rate:      DefaultRateLimit,
			handshake: DefaultHandshakeTimeout, idle: DefaultMaxConnectionIdle, now: time.Now,
		},
		agents:   map[string]*agentTrack{},
		streams:  map[*openStream]struct{}{},
		shutdown: make(chan struct{}),
	}
	for _, o := range opts {
		o(&in.opts)
	}
	if in.opts.node != "" {
		in.logger = in.logger.With("node", in.opts.node)
	}
	if in.opts.reg != nil {
		in.metrics = newMetrics(in.opts.reg)
	}
	v, err := newView(cfg)
	if err != nil {
		v = &view{cfg: cfg, hash: reportwire.ConfigHash(cfg), err: err}
	}
	in.view.Store(v)
	return in
}

// Reconfigure switches to cfg for every report from now on: agents,
// members, tokens, certificates (new TLS handshakes use the new files).
// Open streams whose principal is no longer valid under cfg (token rotated
// or removed, agent removed, certificate no longer verifying) are ended at
// once with Unauthenticated or PermissionDenied. It returns an error, and
// keeps the old config, when cfg's credentials cannot be loaded or would
// change the transport (TLS or plaintext) of a server already created:
// that needs a restart.
func (in *Ingest) Reconfigure(cfg *config.Config) error {
	v, err := newView(cfg)
	if err != nil {
		return fmt.Errorf("ingest: reconfigure: %w", err)
	}
	if served, _ := in.served.Load().(string); served != "" && served != v.mode {
		return fmt.Errorf("ingest: reconfigure: the report listener serves %s and the new config wants %s; restart the node to change it",
			served, v.mode)
	}
	in.view.Store(v)
	in.mu.Lock()
	for id := range in.agents {
		if _, ok := v.agents[id]; !ok {
			delete(in.agents, id)
		}
	}
	var ended []*openStream
	for s := range in.streams {
		if err := stillValid(s.p, v); err != nil {
			select {
			case s.end <- err:
				ended = append(ended, s)
			default:
			}
		}
	}
	in.mu.Unlock()
	for _, s := range ended {
		in.logger.Info("ending report stream: credentials no longer valid", "agent", s.p.agent, "auth", s.p.method, "remote", s.p.remote)
	}
	return nil
}

// ServerOptions returns the gRPC server options the ingest needs:
// credentials, message size limit, stream and connection limits, keepalive
// policy. Use them with Register when embedding the service in a server
// of one's own.
func (in *Ingest) ServerOptions() ([]grpc.ServerOption, error) {
	v := in.view.Load()
	if v.err != nil {
		return nil, fmt.Errorf("ingest: %w", v.err)
	}
	opts := []grpc.ServerOption{
		grpc.MaxRecvMsgSize(reportwire.MaxMessageSize),
		grpc.MaxSendMsgSize(reportwire.MaxMessageSize),
		// An agent needs one stream per connection; a few more cover a
		// reconnect racing the old stream's end.
		grpc.MaxConcurrentStreams(MaxAgentStreams),
		grpc.ConnectionTimeout(in.opts.handshake),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{
			MinTime: reportwire.KeepaliveTime / 2, PermitWithoutStream: true,
		}),
		grpc.KeepaliveParams(keepalive.ServerParameters{
			Time: 30 * time.Second, Timeout: 10 * time.Second, MaxConnectionIdle: in.opts.idle,
		}),
	}
	if v.mode == "tls" {
		// The handshake takes the current view's config, so Reconfigure
		// can rotate certificates without a restart.
		base := &tls.Config{
			MinVersion: tls.VersionTLS12,
			GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
				return in.view.Load().tls, nil
			},
		}
		opts = append(opts, grpc.Creds(credentials.NewTLS(base)))
	}
	in.served.Store(v.mode)
	return opts, nil
}

// Register registers the report service on s, which must have been created
// with ServerOptions. Call Shutdown before s.GracefulStop: report streams
// never end on their own.
func (in *Ingest) Register(s *grpc.Server) {
	api.RegisterReportServiceServer(s, &reportService{in: in, stopping: in.shutdown})
}

// Shutdown ends the open report streams of services added with Register
// (agents reconnect elsewhere or later). It is idempotent.
func (in *Ingest) Shutdown() {
	in.shutdownOnce.Do(func() { close(in.shutdown) })
}

// Serve serves reports on lis until ctx is done, then ends the open
// streams and stops the server gracefully. It returns nil after a
// cancellation, or the error that stopped serving.
func (in *Ingest) Serve(ctx context.Context, lis net.Listener) error {
	opts, err := in.ServerOptions()
	if err != nil {
		_ = lis.Close()
		return err
	}
	srv := grpc.NewServer(opts...)
	stopping := make(chan struct{})
	api.RegisterReportServiceServer(srv, &reportService{in: in, stopping: stopping})
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(lis) }()
	in.logger.Info("report ingest listening", "address", lis.Addr().String(), "mode", in.view.Load().mode)
	select {
	case err := <-errc:
		return fmt.Errorf("ingest: serve reports on %s: %w", lis.Addr(), err)
	case <-ctx.Done():
	}
	close(stopping)
	srv.GracefulStop()
	<-errc
	in.logger.Info("report ingest stopped", "address", lis.Addr().String())
	return nil
}

// Agents returns the status of every configured agent that has reported,
// been refused or opened a stream, sorted by ID.
func (in *Ingest) Agents() []AgentStatus {
	in.mu.Lock()
	tracks := make([]*agentTrack, 0, len(in.agents))
	for _, t := range in.agents {
		tracks = append(tracks, t)
	}
	type conn struct {
		n      int
		since  time.Time
		remote string
	}
	conns := map[string]conn{}
	for s := range in.streams {
		if s.agent == "" {
			continue
		}
		c := conns[s.agent]
		c.n++
		if c.since.IsZero() || s.since.Before(c.since) {
			c.since, c.remote = s.since, s.p.remote
		}
		conns[s.agent] = c
	}
	in.mu.Unlock()
	out := make([]AgentStatus, 0, len(tracks))
	for _, t := range tracks {
		t.mu.Lock()
		st := t.status
		t.mu.Unlock()
		if c, ok := conns[st.ID]; ok {
			st.Connected, st.Streams, st.StreamSince = true, c.n, c.since
			if st.Remote == "" {
				st.Remote = c.remote
			}
		}
		out = append(out, st)
	}
	slices.SortFunc(out, func(a, b AgentStatus) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// track returns the agent's state, creating it. Callers must not hold
// in.mu.
func (in *Ingest) track(id, region string, now time.Time) *agentTrack {
	in.mu.Lock()
	defer in.mu.Unlock()
	t := in.agents[id]
	if t == nil {
		t = &agentTrack{status: AgentStatus{ID: id, Region: region}, tokens: in.opts.rate, refill: now}
		in.agents[id] = t
	}
	return t
}

// allow is a token bucket: rate tokens per second, at most rate in store.
// Callers hold t.mu.
func (t *agentTrack) allow(now time.Time, rate float64) bool {
	if rate <= 0 {
		return true
	}
	t.tokens = min(rate, t.tokens+now.Sub(t.refill).Seconds()*rate)
	t.refill = now
	if t.tokens < 1 {
		return false
	}
	t.tokens--
	return true
}

// limiter remembers when a key was last logged at Warn, so that the same
// warning is logged at most once per warnEvery. It forgets old keys when it
// grows, so a stream of distinct keys costs bounded memory.
type limiter struct {
	mu   sync.Mutex
	last map[string]time.Time
}

// allow reports whether key may be logged at Warn now.
func (l *limiter) allow(key string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.last == nil {
		l.last = map[string]time.Time{}
	}
	if at, ok := l.last[key]; ok && now.Sub(at) < warnEvery {
		return false
	}
	if len(l.last) >= 4096 {
		for k, at := range l.last {
			if now.Sub(at) >= warnEvery {
				delete(l.last, k)
			}
		}
		if len(l.last) >= 4096 {
			return false // a flood of distinct keys: Debug only until it ages out
		}
	}
	l.last[key] = now
	return true
}
