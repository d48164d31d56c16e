package probes

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/aagtm/aagtm/api"
	"github.com/aagtm/aagtm/config"
	"github.com/aagtm/aagtm/policy"
)

// DefaultRateLimit is how many reports per second one agent may send to a
// node before the excess is dropped: ten times the fastest probe interval
// (100ms), leaving room for reconnect bursts.
const DefaultRateLimit = 20

// warnEvery limits repeated warnings about the same agent and reason.
const warnEvery = 10 * time.Second

// IngestOption configures NewIngest.
type IngestOption func(*ingestOptions)

type ingestOptions struct {
	node   string
	rate   float64
	maxMsg int
	now    func() time.Time
	reg    prometheus.Registerer
}

// WithNodeName sets the node name carried in acks and logs.
func WithNodeName(name string) IngestOption { return func(o *ingestOptions) { o.node = name } }

// WithRateLimit sets the per-agent report rate limit in reports per second
// (burst: one second's worth); zero or less disables it. Default
// DefaultRateLimit.
func WithRateLimit(perSecond float64) IngestOption {
	return func(o *ingestOptions) { o.rate = perSecond }
}

// WithMaxMessageSize bounds the size of one received report in bytes
// (default 1 MiB).
func WithMaxMessageSize(n int) IngestOption { return func(o *ingestOptions) { o.maxMsg = n } }

// WithRegisterer registers the ingest's metrics with r (see README.md):
// aagtm_ingest_reports_total, aagtm_ingest_refused_streams_total,
// aagtm_ingest_streams and aagtm_ingest_unknown_members_total.
func WithRegisterer(r prometheus.Registerer) IngestOption {
	return func(o *ingestOptions) { o.reg = r }
}

// WithClock replaces time.Now as the source of observation times.
func WithClock(now func() time.Time) IngestOption { return func(o *ingestOptions) { o.now = now } }

// AgentStatus is what a node knows of one agent's reports.
type AgentStatus struct {
	// ID and Region identify the agent (region from the node's config).
	ID     string
	Region string
	// LastSeen is when its last accepted report arrived (node clock);
	// zero when none has.
	LastSeen time.Time
	// LastSeq is the sequence number of its last accepted report.
	LastSeq uint64
	// Remote is the address its last report came from.
	Remote string
	// ConfigHash is the config hash of its last report.
	ConfigHash string
	// Accepted, Rejected and Dropped count its reports: accepted (possibly
	// without some unknown members), rejected (wrong identity or region)
	// and dropped by the rate limit.
	Accepted, Rejected, Dropped uint64
}

// Ingest is the node side of the report protocol: a gRPC ReportService
// that authenticates agents, validates their reports and passes the
// resulting observations to a sink.
type Ingest struct {
	logger  hclog.Logger
	sink    func([]policy.Observation)
	opts    ingestOptions
	metrics *ingestMetrics // nil without WithRegisterer

	view atomic.Pointer[ingestView]
	// served is the transport mode ServerOptions committed to ("tls" or
	// "insecure"); Reconfigure may not change it.
	served atomic.Value // string

	mu     sync.Mutex
	agents map[string]*agentTrack
	// stranger limits warnings about reports from unknown agents.
	stranger agentTrack

	shutdownOnce sync.Once
	shutdown     chan struct{} // closed by Shutdown: ends Register'ed streams
}

// ingestView is everything derived from one config.
type ingestView struct {
	cfg     *config.Config
	hash    string
	agents  map[string]config.Agent
	members map[string]bool
	mode    string      // "tls" or "insecure"
	tls     *tls.Config // server TLS config in "tls" mode
	token   *[32]byte   // SHA-256 of the bearer token; nil without one
	err     error       // why this config cannot serve
}

// agentTrack is per-agent state: status and rate limiter.
type agentTrack struct {
	status AgentStatus
	tokens float64
	refill time.Time
	warned string
	warnAt time.Time
}

// principal is who opened a stream.
type principal struct {
	certAgent string // CN of a verified client certificate
	method    string // mtls, token or insecure
	remote    string
}

// NewIngest returns an ingest for cfg that passes every accepted report's
// observations to sink. sink is called from the stream goroutines, possibly
// concurrently, and should return quickly. Credential problems (unreadable
// token or certificate files, no protection without security.insecure) are
// returned by ServerOptions and Serve.
func NewIngest(cfg *config.Config, logger hclog.Logger, sink func([]policy.Observation), opts ...IngestOption) *Ingest {
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	in := &Ingest{
		logger:   logger.Named("ingest"),
		sink:     sink,
		opts:     ingestOptions{rate: DefaultRateLimit, maxMsg: maxMessageSize, now: time.Now},
		agents:   map[string]*agentTrack{},
		shutdown: make(chan struct{}),
	}
	for _, o := range opts {
		o(&in.opts)
	}
	if in.opts.node != "" {
		in.logger = in.logger.With("node", in.opts.node)
	}
	if in.opts.reg != nil {
		in.metrics = newIngestMetrics(in.opts.reg)
	}
	v, err := newIngestView(cfg)
	if err != nil {
		v = &ingestView{cfg: cfg, hash: configHash(cfg), err: err}
	}
	in.view.Store(v)
	return in
}

func newIngestView(cfg *config.Config) (*ingestView, error) {
	v := &ingestView{
		cfg: cfg, hash: configHash(cfg),
		agents: map[string]config.Agent{}, members: map[string]bool{},
	}
	for _, a := range cfg.Agents {
		v.agents[a.ID] = a
	}
	for _, d := range cfg.Databases {
		for _, m := range d.Members {
			v.members[m.Name] = true
		}
	}
	sec := cfg.Security
	if sec.TokenFile != "" {
		tok, err := readToken(sec.TokenFile)
		if err != nil {
			return nil, err
		}
		sum := sha256.Sum256([]byte(tok))
		v.token = &sum
	}
	switch {
	case sec.TLS.Enabled():
		tc, err := serverTLS(sec.TLS, v.token != nil)
		if err != nil {
			return nil, err
		}
		v.mode, v.tls = "tls", tc
	case sec.Insecure:
		v.mode = "insecure"
	default:
		return nil, errNoProtection
	}
	return v, nil
}

// Reconfigure switches to cfg for every report from now on: agents,
// members, token, certificates (new TLS handshakes use the new files). It
// returns an error, and keeps the old config, when cfg's credentials cannot
// be loaded or would change the transport (TLS or plaintext) of a server
// already created: that needs a restart.
func (in *Ingest) Reconfigure(cfg *config.Config) error {
	v, err := newIngestView(cfg)
	if err != nil {
		return fmt.Errorf("probes: reconfigure ingest: %w", err)
	}
	if served, _ := in.served.Load().(string); served != "" && served != v.mode {
		return fmt.Errorf("probes: reconfigure ingest: the report listener serves %s and the new config wants %s; restart the node to change it",
			served, v.mode)
	}
	in.view.Store(v)
	in.mu.Lock()
	for id := range in.agents {
		if _, ok := v.agents[id]; !ok {
			delete(in.agents, id)
		}
	}
	in.mu.Unlock()
	return nil
}

// ServerOptions returns the gRPC server options the ingest needs:
// credentials, message size limit, keepalive policy. Use them with Register
// when embedding the service in a server of one's own.
func (in *Ingest) ServerOptions() ([]grpc.ServerOption, error) {
	v := in.view.Load()
	if v.err != nil {
		return nil, fmt.Errorf("probes: ingest: %w", v.err)
	}
	opts := []grpc.ServerOption{
		grpc.MaxRecvMsgSize(in.opts.maxMsg),
		grpc.MaxSendMsgSize(maxMessageSize),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{
			MinTime: keepaliveTime / 2, PermitWithoutStream: true,
		}),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
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
		return fmt.Errorf("probes: serve reports on %s: %w", lis.Addr(), err)
	case <-ctx.Done():
	}
	close(stopping)
	srv.GracefulStop()
	<-errc
	in.logger.Info("report ingest stopped", "address", lis.Addr().String())
	return nil
}

// Agents returns the status of every configured agent that has reported
// (or been refused), sorted by ID.
func (in *Ingest) Agents() []AgentStatus {
	in.mu.Lock()
	defer in.mu.Unlock()
	out := make([]AgentStatus, 0, len(in.agents))
	for _, t := range in.agents {
		out = append(out, t.status)
	}
	slices.SortFunc(out, func(a, b AgentStatus) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// reportService is the gRPC service of one server: stopping ends its
// streams.
type reportService struct {
	api.UnimplementedReportServiceServer
	in       *Ingest
	stopping <-chan struct{}
}

// Stream authenticates the peer, then answers every report with an ack
// until the agent closes the stream, the stream fails or the server stops.
func (s *reportService) Stream(stream api.ReportService_StreamServer) error {
	in := s.in
	ctx := stream.Context()
	p, err := in.authenticate(ctx)
	if err != nil {
		in.metrics.refusedStream(status.Code(err).String())
		in.logger.Warn("report stream refused", "remote", p.remote, "error", status.Convert(err).Message())
		return err
	}
	in.metrics.streamOpen(1)
	defer in.metrics.streamOpen(-1)
	in.logger.Debug("report stream opened", "remote", p.remote, "auth", p.method, "agent", p.certAgent)
	reports := make(chan *api.Report)
	errc := make(chan error, 1)
	// Recv blocks; this goroutine ends when the stream does (the handler
	// returning cancels the stream's context, which ends Recv).
	go func() {
		for {
			r, err := stream.Recv()
			if err != nil {
				errc <- err
				return
			}
			select {
			case reports <- r:
			case <-ctx.Done():
				return
			}
		}
	}()
	for {
		select {
		case <-s.stopping:
			return status.Error(codes.Unavailable, "node shutting down")
		case err := <-errc:
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		case r := <-reports:
			if err := stream.Send(in.handle(p, r)); err != nil {
				return err
			}
		}
	}
}

// authenticate establishes who opened the stream: a verified client
// certificate's CN (mTLS), a valid bearer token, or nobody in insecure
// mode.
func (in *Ingest) authenticate(ctx context.Context) (principal, error) {
	v := in.view.Load()
	var p principal
	if pr, ok := peer.FromContext(ctx); ok {
		if pr.Addr != nil {
			p.remote = pr.Addr.String()
		}
		if ti, ok := pr.AuthInfo.(credentials.TLSInfo); ok {
			if ch := ti.State.VerifiedChains; len(ch) > 0 && len(ch[0]) > 0 {
				p.certAgent = ch[0][0].Subject.CommonName
			}
		}
	}
	switch {
	case v.token != nil:
		md, _ := metadata.FromIncomingContext(ctx)
		var got string
		for _, h := range md.Get("authorization") {
			if t, ok := strings.CutPrefix(h, "Bearer "); ok {
				got = t
			}
		}
		if got == "" {
			return p, status.Error(codes.Unauthenticated, "missing bearer token (authorization: Bearer ...)")
		}
		// Hash first so the comparison is constant time whatever the
		// lengths.
		sum := sha256.Sum256([]byte(got))
		if subtle.ConstantTimeCompare(sum[:], v.token[:]) != 1 {
			return p, status.Error(codes.Unauthenticated, "invalid bearer token")
		}
		p.method = "token"
	case v.mode == "tls":
		if p.certAgent == "" {
			return p, status.Error(codes.Unauthenticated, "a client certificate issued by security.tls.ca is required")
		}
		p.method = "mtls"
	default:
		p.method = "insecure"
	}
	if p.certAgent != "" {
		if _, ok := v.agents[p.certAgent]; !ok {
			return p, status.Errorf(codes.PermissionDenied,
				"client certificate CN %q is not a configured agent id", p.certAgent)
		}
	}
	return p, nil
}

// handle validates one report, passes its observations to the sink and
// returns the ack.
func (in *Ingest) handle(p principal, r *api.Report) *api.Ack {
	now := in.opts.now()
	v := in.view.Load()
	ack := &api.Ack{ConfigHash: v.hash, Node: in.opts.node}

	id := r.GetAgentId()
	if p.certAgent != "" {
		if id == "" {
			id = p.certAgent
		}
		if id != p.certAgent {
			in.metrics.report(p.certAgent, resultRejected)
			return in.reject(ack, nil, id, "report names agent %q but the client certificate is for %q", id, p.certAgent)
		}
	}
	ag, ok := v.agents[id]
	if !ok {
		in.metrics.report("unknown", resultRejected)
		return in.reject(ack, nil, id, "unknown agent %q: it is not in this node's config (agents)", id)
	}

	in.mu.Lock()
	t := in.agents[id]
	if t == nil {
		t = &agentTrack{status: AgentStatus{ID: id, Region: ag.Region}, tokens: in.opts.rate, refill: now}
		in.agents[id] = t
	}
	t.status.Region = ag.Region
	ack.Seq = t.status.LastSeq
	if r.GetRegion() != ag.Region {
		t.status.Rejected++
		in.mu.Unlock()
		in.metrics.report(id, resultRejected)
		return in.reject(ack, t, id, "agent %q is bound to region %q, but its report is for region %q",
			id, ag.Region, r.GetRegion())
	}
	if !t.allow(now, in.opts.rate) {
		t.status.Dropped++
		in.mu.Unlock()
		in.metrics.report(id, resultRateLimited)
		return in.reject(ack, t, id, "rate limit: more than %g reports/s from agent %q; report dropped", in.opts.rate, id)
	}
	in.mu.Unlock()

	obs := make([]policy.Observation, 0, len(r.GetMembers()))
	for _, m := range r.GetMembers() {
		if !v.members[m.GetMember()] {
			ack.RejectedMembers = append(ack.RejectedMembers, m.GetMember())
			continue
		}
		obs = append(obs, observation(id, ag.Region, r.GetSeq(), now, m))
	}

	in.mu.Lock()
	t.status.LastSeen, t.status.LastSeq, t.status.Remote = now, r.GetSeq(), p.remote
	t.status.ConfigHash = r.GetConfigHash()
	t.status.Accepted++
	mismatch := r.GetConfigHash() != "" && r.GetConfigHash() != v.hash
	in.mu.Unlock()
	ack.Seq = r.GetSeq()
	in.metrics.report(id, resultAccepted)
	in.metrics.unknownMembers(len(ack.RejectedMembers))

	if mismatch {
		in.warn(t, id, "agent runs a different config than this node", "agent_config_hash", r.GetConfigHash(), "node_config_hash", v.hash)
	}
	if len(ack.RejectedMembers) > 0 {
		ack.Error = fmt.Sprintf("unknown members %s: not in this node's config; their entries were dropped",
			strings.Join(ack.RejectedMembers, ", "))
		in.warn(t, id, "report names unknown members", "members", ack.RejectedMembers)
	}
	if len(obs) > 0 && in.sink != nil {
		in.sink(obs)
	}
	return ack
}

// reject fills the ack's error and logs it at Warn (at most once per
// warnEvery per agent and reason).
func (in *Ingest) reject(ack *api.Ack, t *agentTrack, id, format string, args ...any) *api.Ack {
	ack.Error = fmt.Sprintf(format, args...)
	in.warn(t, id, "report rejected", "error", ack.Error)
	return ack
}

// warn logs at Warn, or at Debug when the same agent had the same warning
// less than warnEvery ago. t is nil for an unknown agent; those share one
// limiter.
func (in *Ingest) warn(t *agentTrack, id, msg string, kv ...any) {
	kv = append([]any{"agent", id}, kv...)
	key := msg + fmt.Sprint(kv...)
	now := time.Now()
	in.mu.Lock()
	if t == nil {
		t = &in.stranger
	}
	repeat := t.warned == key && now.Sub(t.warnAt) < warnEvery
	if !repeat {
		t.warned, t.warnAt = key, now
	}
	in.mu.Unlock()
	if repeat {
		in.logger.Debug(msg, kv...)
		return
	}
	in.logger.Warn(msg, kv...)
}

// allow is a token bucket: rate tokens per second, at most rate in store.
// Callers hold Ingest.mu.
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

// observation converts one member entry.
func observation(agent, region string, seq uint64, now time.Time, m *api.MemberReport) policy.Observation {
	o := policy.Observation{
		Agent: agent, Region: region, Member: m.GetMember(), Seq: seq, Time: now,
		RTT: max(0, m.GetRtt().AsDuration()),
	}
	for _, c := range m.GetChecks() {
		o.Checks = append(o.Checks, policy.CheckResult{
			Check: c.GetName(), OK: c.GetOk(), Error: c.GetError(), Duration: max(0, c.GetDuration().AsDuration()),
		})
	}
	if len(m.GetLag()) > 0 {
		o.Lag = make(map[string]time.Duration, len(m.GetLag()))
		for src, d := range m.GetLag() {
			o.Lag[src] = max(0, d.AsDuration())
		}
	}
	return o
}
