package probes

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/aagtm/aagtm/api"
	"github.com/aagtm/aagtm/config"
	"github.com/aagtm/aagtm/internal/reportwire"
)

// Report-stream tuning.
const (
	// streamBackoffBase and streamBackoffMax bound the wait before
	// reopening a failed stream; it doubles per failure, with ±20% jitter.
	streamBackoffBase = 100 * time.Millisecond
	streamBackoffMax  = 5 * time.Second
	// keepaliveTime is how often an idle connection is pinged, and
	// keepaliveTimeout how long a ping may go unanswered before the
	// connection is considered dead. Nodes permit pings this often
	// (ingest's enforcement policy).
	keepaliveTime    = reportwire.KeepaliveTime
	keepaliveTimeout = 5 * time.Second
	// maxMessageSize bounds one report or ack.
	maxMessageSize = reportwire.MaxMessageSize
)

// dialSettings are the gRPC dial options for one config's security
// settings.
type dialSettings struct {
	opts []grpc.DialOption
}

// newDialSettings builds agent agentID's credentials: TLS (mTLS when a
// client certificate is configured), its own bearer token
// (agents[].token_file), or plaintext when security.insecure allows it.
func newDialSettings(cfg *config.Config, agentID string) (dialSettings, error) {
	sec := cfg.Security
	var token, file string
	if a, ok := cfg.Agent(agentID); ok {
		file = a.TokenFile
	}
	field := "agents[id=" + agentID + "].token_file"
	if file != "" {
		var err error
		if token, err = config.ReadToken(field, file); err != nil {
			return dialSettings{}, err
		}
	}
	var opts []grpc.DialOption
	switch {
	case sec.TLS.Enabled():
		tc, err := clientTLS(sec.TLS, agentID, token != "")
		if err != nil {
			return dialSettings{}, err
		}
		opts = append(opts, grpc.WithTransportCredentials(credentials.NewTLS(tc)))
	case sec.Insecure:
		opts = append(opts, grpc.WithTransportCredentials(insecure.NewCredentials()))
	default:
		return dialSettings{}, reportwire.ErrNoProtection
	}
	if token != "" {
		opts = append(opts, grpc.WithPerRPCCredentials(tokenCreds{field: field, file: file, requireTLS: sec.TLS.Enabled()}))
	}
	opts = append(opts,
		grpc.WithKeepaliveParams(keepalive.ClientParameters{
			Time: keepaliveTime, Timeout: keepaliveTimeout, PermitWithoutStream: true,
		}),
		// gRPC's own reconnect backoff (exponential with jitter), shortened
		// so that a restarted node is found again within about a second.
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff: backoff.Config{
				BaseDelay: streamBackoffBase, Multiplier: 1.6, Jitter: 0.2, MaxDelay: streamBackoffMax,
			},
			MinConnectTimeout: 5 * time.Second,
		}),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxMessageSize), grpc.MaxCallSendMsgSize(maxMessageSize)),
	)
	return dialSettings{opts: opts}, nil
}

// mailbox holds what is not yet sent to one node: one report, into which a
// new report is merged (mergeReports: its entries replace the unsent
// report's entries for the same members, which are older), so an
// unreachable node costs at most one round's entries of memory, never a
// backlog, and a chunk of a round is never lost to the next chunk.
type mailbox struct {
	mu     sync.Mutex
	rep    *api.Report
	at     time.Time
	notify chan struct{}
	// trimmed, when set, is told of a report whose error texts were
	// shortened to fit the stream (fitReport).
	trimmed func(members, before, after int)
}

func newMailbox() *mailbox { return &mailbox{notify: make(chan struct{}, 1)} }

// put merges r into the slot.
func (m *mailbox) put(r *api.Report) {
	m.mu.Lock()
	m.set(mergeReports(m.rep, r), time.Now())
	m.mu.Unlock()
	m.signal()
}

// putBack returns r, taken at at, to the slot: under what arrived
// meanwhile, which is newer.
func (m *mailbox) putBack(r *api.Report, at time.Time) {
	m.mu.Lock()
	if m.rep != nil {
		at = m.at
	}
	m.set(mergeReports(r, m.rep), at)
	m.mu.Unlock()
	m.signal()
}

// set fills the slot with r, fitted to the stream's message limit: a round
// of thousands of failing members, or chunks merged while the node was
// slow, can exceed it. The entries are shared with the other nodes'
// mailboxes, so a report to shorten is copied first. The caller holds mu.
func (m *mailbox) set(r *api.Report, at time.Time) {
	if proto.Size(r) > reportBudget {
		r = proto.Clone(r).(*api.Report)
		before, after := fitReport(r)
		if m.trimmed != nil {
			m.trimmed(len(r.GetMembers()), before, after)
		}
	}
	m.rep, m.at = r, at
}

// mergeReports returns newer with the member entries of older that newer
// does not have: newer's header (seq, boot id, config hash, ...) and, for a
// member in both, newer's entry. Either may be nil. Neither is modified:
// one report goes to every node's mailbox.
func mergeReports(older, newer *api.Report) *api.Report {
	if older == nil || len(older.GetMembers()) == 0 {
		return newer
	}
	if newer == nil {
		return older
	}
	out := &api.Report{}
	members := newer.ProtoReflect().Descriptor().Fields().ByName("members")
	dst := out.ProtoReflect()
	newer.ProtoReflect().Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if fd != members {
			dst.Set(fd, v)
		}
		return true
	})
	in := make(map[string]bool, len(newer.GetMembers()))
	for _, m := range newer.GetMembers() {
		in[m.GetMember()] = true
	}
	out.Members = make([]*api.MemberReport, 0, len(older.GetMembers())+len(newer.GetMembers()))
	for _, m := range older.GetMembers() {
		if !in[m.GetMember()] {
			out.Members = append(out.Members, m)
		}
	}
	out.Members = append(out.Members, newer.GetMembers()...)
	return out
}

func (m *mailbox) signal() {
	select {
	case m.notify <- struct{}{}:
	default:
	}
}

// take empties the slot.
func (m *mailbox) take() (*api.Report, time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, at := m.rep, m.at
	m.rep = nil
	return r, at
}

// reportRate and reportBurst bound how many reports a sender sends a
// node: reportRate a second on average, reportBurst at once. A round of
// thousands of members sends chunks every chunkEvery, and rounds overlap;
// chunks that come faster wait in the mailbox, merged, for the next slot.
// A round in one piece is at most ten reports a second (the shortest
// interval is 100 ms) and never waits. The node refuses more than
// ingest.DefaultRateLimit (20) a second.
const (
	reportRate  = 15
	reportBurst = 5
)

// reportSlots is the token bucket of reportRate and reportBurst.
type reportSlots struct {
	tokens float64
	at     time.Time
}

func newReportSlots() *reportSlots { return &reportSlots{tokens: reportBurst, at: time.Now()} }

// take takes a slot at now and returns 0, or returns how long until one is
// free (taking nothing).
func (b *reportSlots) take(now time.Time) time.Duration {
	b.tokens = min(reportBurst, b.tokens+now.Sub(b.at).Seconds()*reportRate)
	b.at = now
	if b.tokens >= 1 {
		b.tokens--
		return 0
	}
	return time.Duration((1 - b.tokens) / reportRate * float64(time.Second))
}

// sender streams reports to one node. It owns a gRPC connection, a
// goroutine that logs the connection's state changes and one that reads
// acks while a stream is open.
type sender struct {
	node   config.Node
	logger hclog.Logger
	box    *mailbox
	maxAge time.Duration
	// ackTimeout ends a stream whose node has acknowledged nothing sent
	// for this long: a black-holed path otherwise looks healthy until TCP
	// or gRPC keepalive gives up, many seconds later.
	ackTimeout time.Duration
	ackHook    func(string, *api.Ack)

	cancel context.CancelFunc
	done   chan struct{}

	// sentHash is the config hash of the last report sent.
	sentHash atomic.Value // string

	// lastErr (run's goroutine), lastAckErr and lastMismatch (the ack
	// reader's) avoid repeating the same warning every round.
	lastErr      string
	lastAckErr   string
	lastMismatch string
	// trimLogged is when the "report trimmed" warning was last logged.
	trimLogged atomic.Int64
}

// startSender starts a sender for node. Reports older than two intervals
// when the stream (re)opens are dropped: the next round's is due.
func startSender(ctx context.Context, node config.Node, d dialSettings, interval time.Duration,
	logger hclog.Logger, ackHook func(string, *api.Ack)) *sender {
	ctx, cancel := context.WithCancel(ctx)
	s := &sender{
		node:       node,
		logger:     logger.With("node", node.Name, "address", node.Report),
		box:        newMailbox(),
		maxAge:     2 * interval,
		ackTimeout: max(5*interval, 3*time.Second),
		ackHook:    ackHook,
		cancel:     cancel,
		done:       make(chan struct{}),
	}
	s.box.trimmed = s.logTrimmed
	go s.run(ctx, d)
	return s
}

// logTrimmed warns, at most once per overloadLogEvery, that a report's
// error texts were shortened to fit the stream.
func (s *sender) logTrimmed(members, before, after int) {
	now := time.Now().UnixNano()
	if last := s.trimLogged.Load(); now-last >= int64(overloadLogEvery) && s.trimLogged.CompareAndSwap(last, now) {
		s.logger.Warn("report too large for the report stream: error texts shortened", "members", members,
			"bytes_before", before, "bytes_after", after, "limit", reportBudget)
	}
}

// stop ends the sender and waits for its goroutines.
func (s *sender) stop() {
	s.cancel()
	<-s.done
}

func (s *sender) run(ctx context.Context, d dialSettings) {
	defer close(s.done)
	conn, err := grpc.NewClient(s.node.Report, d.opts...)
	if err != nil {
		s.logger.Error("cannot create a client for the node; no reports will reach it", "error", err)
		return
	}
	defer conn.Close()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.watch(ctx, conn)
	}()
	defer wg.Wait()

	client := api.NewReportServiceClient(conn)
	delay := streamBackoffBase
	for {
		acked, err := s.stream(ctx, client)
		if ctx.Err() != nil {
			return
		}
		if acked {
			delay = streamBackoffBase
		}
		if msg := err.Error(); msg != s.lastErr {
			s.logger.Warn("report stream failed", "error", err)
			s.lastErr = msg
		} else {
			s.logger.Debug("report stream failed", "error", err)
		}
		// ±20% jitter keeps agents from reconnecting in lockstep after a
		// node restart.
		wait := time.Duration(float64(delay) * (0.8 + 0.4*rand.Float64()))
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		delay = min(2*delay, streamBackoffMax)
	}
}

// watch logs the connection's state changes: Info when it becomes ready
// or stops being ready, Debug otherwise.
func (s *sender) watch(ctx context.Context, conn *grpc.ClientConn) {
	state := conn.GetState()
	for conn.WaitForStateChange(ctx, state) {
		next := conn.GetState()
		switch {
		case next == connectivity.Ready:
			s.logger.Info("connected to node")
		case state == connectivity.Ready:
			s.logger.Info("disconnected from node", "state", next.String())
		default:
			s.logger.Debug("node connection state", "state", next.String())
		}
		state = next
	}
}

// stream opens one stream and sends reports from the mailbox until the
// stream fails or ctx ends. acked reports whether the node acknowledged
// anything on it.
func (s *sender) stream(ctx context.Context, client api.ReportServiceClient) (acked bool, err error) {
	sctx, cancel := context.WithCancel(ctx)
	st, err := client.Stream(sctx)
	if err != nil {
		cancel()
		return false, err
	}
	errc := make(chan error, 1)
	ackc := make(chan struct{}, 1)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			ack, err := st.Recv()
			if err != nil {
				errc <- err
				return
			}
			select {
			case ackc <- struct{}{}:
			default:
			}
			s.handleAck(ack)
		}
	}()
	defer func() {
		cancel() // ends Recv
		wg.Wait()
	}()
	s.box.signal()             // send what is waiting
	var unackedSince time.Time // first report sent since the last ack
	slots := newReportSlots()
	var slotFree <-chan time.Time // set while a report waits for a slot
	watchdog := time.NewTicker(s.ackTimeout / 4)
	defer watchdog.Stop()
	for {
		select {
		case <-ctx.Done():
			return acked, ctx.Err()
		case err := <-errc:
			return acked, err
		case <-watchdog.C:
			if !unackedSince.IsZero() && time.Since(unackedSince) > s.ackTimeout {
				return acked, fmt.Errorf("no ack from the node for %s: treating the stream as dead", time.Since(unackedSince).Round(time.Millisecond))
			}
		case <-ackc:
			unackedSince = time.Time{}
			if !acked {
				acked = true
				s.lastErr = ""
			}
		case <-slotFree:
			slotFree = nil
			s.box.signal()
		case <-s.box.notify:
			if slotFree != nil {
				continue // the report waits in the mailbox, merged with what comes
			}
			if wait := slots.take(time.Now()); wait > 0 {
				slotFree = time.After(wait)
				continue
			}
			rep, at := s.box.take()
			if rep == nil {
				continue
			}
			if time.Since(at) > s.maxAge {
				s.logger.Debug("dropping stale report", "seq", rep.GetSeq(), "age", time.Since(at))
				continue
			}
			s.sentHash.Store(rep.GetConfigHash())
			if unackedSince.IsZero() {
				unackedSince = time.Now()
			}
			if err := st.Send(rep); err != nil {
				s.box.putBack(rep, at)
				// The stream is broken; Recv has the real error.
				select {
				case rerr := <-errc:
					return acked, rerr
				case <-time.After(time.Second):
					return acked, err
				}
			}
		}
	}
}

// handleAck logs rejections and config disagreement, once per distinct
// text, then calls the hook.
func (s *sender) handleAck(ack *api.Ack) {
	if e := ack.GetError(); e != s.lastAckErr {
		if e != "" {
			s.logger.Warn("node rejected report", "seq", ack.GetSeq(), "error", e,
				"rejected_members", ack.GetRejectedMembers())
		}
		s.lastAckErr = e
	}
	mine, _ := s.sentHash.Load().(string)
	if h := ack.GetConfigHash(); h != "" && mine != "" {
		if key := h + "/" + mine; h != mine && key != s.lastMismatch {
			s.logger.Warn("node runs a different config than this agent",
				"node_config_hash", h, "agent_config_hash", mine)
			s.lastMismatch = key
		}
	}
	if s.ackHook != nil {
		s.ackHook(s.node.Name, ack)
	}
}
