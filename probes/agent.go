package probes

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/redis/go-redis/v9"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/aagtm/aagtm/api"
	"github.com/aagtm/aagtm/config"
)

// AgentOption configures NewAgent.
type AgentOption func(*agentOptions)

type agentOptions struct {
	reportHook func(*api.Report)
	ackHook    func(node string, ack *api.Ack)
}

// WithReportHook calls f with every report the agent produces, at the end
// of each round, before it is queued for the nodes. f runs on the agent's
// round loop and must not modify the report or block.
func WithReportHook(f func(*api.Report)) AgentOption {
	return func(o *agentOptions) { o.reportHook = f }
}

// WithAckHook calls f with every ack a node sends back, from that node's
// sender goroutine. f must not block.
func WithAckHook(f func(node string, ack *api.Ack)) AgentOption {
	return func(o *agentOptions) { o.ackHook = f }
}

// Agent is a probe agent: one vantage in one region. It probes every
// member of every database each interval and streams the reports to every
// node. Create it with NewAgent and run it with Run.
type Agent struct {
	id     string
	logger hclog.Logger
	opts   agentOptions

	// bootID is chosen at random when the agent is created; seq numbers
	// its rounds from 1. Nodes order reports by (bootID, seq), so a
	// restarted agent (a new bootID) is never mistaken for an old one,
	// whatever its clock says.
	bootID string
	seq    atomic.Uint64
	// rounds numbers probe rounds (the keyspace check's values carry it).
	rounds atomic.Uint64

	// dials bounds concurrent connection attempts over all members.
	dials *dialBudget
	// overloadLogged is when the last "not measured" warning was logged
	// (Unix nanoseconds), to log it at most once per overloadLogEvery.
	overloadLogged atomic.Int64

	running atomic.Bool
	// wg tracks member probes, which may outlive their round by a little.
	wg sync.WaitGroup
	// workers run the member probes.
	workers *workerPool
	// stalls notices when the agent itself does not run (see stallWatch).
	stalls *stallWatch
	// roundsWG tracks round goroutines started by Run.
	roundsWG sync.WaitGroup
	// pubMu serialises publishing (seq order) with changes of the senders.
	pubMu sync.Mutex

	mu      sync.Mutex
	pending *agentState   // set by Reconfigure, taken by Run
	current *agentState   // the state Run is using
	reconf  chan struct{} // signals pending
}

// agentState is everything derived from one config.
type agentState struct {
	cfg     *config.Config
	region  string
	hash    string
	checks  []check
	targets []*target // every member of every database, in config order
	// endpoints are the targets' endpoints, each once.
	endpoints endpoints
	// heartbeatTargets are the local targets, one per endpoint: where the
	// region's heartbeat is written (members that share an endpoint share
	// its keyspace, so one write serves them all).
	heartbeatTargets []*target
	dbOf             map[*target]string
	// dbs are the databases' ranges of targets (a database's members are
	// adjacent), and dbIndex each target's database in dbs: what a round's
	// chunks are made of.
	dbs     []targetRange
	dbIndex []int
	// dbRegions: database name -> regions of its members, sorted.
	dbRegions map[string][]string
	dial      dialSettings
}

// NewAgent returns an agent with the given ID for cfg. The ID must be one of
// cfg.Agents; the agent probes from that agent's region. It dials nothing
// yet: a bad member URL, an unknown check or unusable credentials are
// reported here, unreachable members and nodes later, by Run.
func NewAgent(cfg *config.Config, agentID string, logger hclog.Logger, opts ...AgentOption) (*Agent, error) {
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	a := &Agent{
		id:     agentID,
		logger: logger.Named("probe").With("agent", agentID),
		reconf: make(chan struct{}, 1),
		dials:  newDialBudget(dialBudgetSize, dialBudgetPerHost),
		// Idle workers outlive a few rounds: at the default interval the
		// steady state's workers are reused round after round.
		workers: newWorkerPool(maxIdleWorkers, workerIdle),
		stalls:  newStallWatch(stallTick),
	}
	for _, o := range opts {
		o(&a.opts)
	}
	st, err := a.newState(cfg, nil)
	if err != nil {
		return nil, err
	}
	a.pending = st
	redisLogOnce.Do(func() { redis.SetLogger(redisLogger{logger.Named("go-redis")}) })
	a.bootID = newBootID()
	return a, nil
}

// newBootID returns 16 random hex digits.
func newBootID() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return hex.EncodeToString(b[:])
}

// redisLogOnce installs, process-wide and once, a go-redis logger that
// sends go-redis's own messages (a failed dial per probe of a dead member)
// to the first agent's logger at Debug instead of stderr: the checks
// already report those failures.
var redisLogOnce sync.Once

type redisLogger struct{ l hclog.Logger }

// Printf implements go-redis's internal logging interface.
func (r redisLogger) Printf(_ context.Context, format string, v ...any) {
	r.l.Debug(fmt.Sprintf(format, v...))
}

// Reconfigure validates cfg and hands it to the running agent, which
// switches to it before its next round: members added or changed get new
// clients, removed ones are closed, senders are restarted for nodes whose
// address or credentials changed. On error the agent keeps its current
// config.
func (a *Agent) Reconfigure(cfg *config.Config) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	prev := a.pending
	if prev == nil {
		prev = a.current
	}
	st, err := a.newState(cfg, prev)
	if err != nil {
		return err
	}
	a.pending = st
	select {
	case a.reconf <- struct{}{}:
	default:
	}
	return nil
}

// newState builds the state for cfg, reusing prev's targets for members
// whose config and timeout did not change.
func (a *Agent) newState(cfg *config.Config, prev *agentState) (*agentState, error) {
	ag, ok := cfg.Agent(a.id)
	if !ok {
		return nil, fmt.Errorf("probes: agent %q is not in the config; add it under agents (id and region), "+
			"or run with the id of a declared agent", a.id)
	}
	p := cfg.Probes
	if p.Interval <= 0 || p.Timeout <= 0 {
		return nil, fmt.Errorf("probes: interval (%s) and timeout (%s) must be positive", p.Interval, p.Timeout)
	}
	st := &agentState{
		cfg: cfg, region: ag.Region, hash: configHash(cfg),
		dbOf: map[*target]string{}, dbRegions: map[string][]string{},
	}
	names := p.Checks
	if len(names) == 0 {
		names = []config.Check{config.CheckPing}
	}
	for _, n := range names {
		c, err := newCheck(n)
		if err != nil {
			return nil, err
		}
		st.checks = append(st.checks, c)
	}
	old := map[string]*target{}
	eps := endpoints{}
	if prev != nil {
		for _, t := range prev.targets {
			old[t.member.Name] = t
		}
		for k, e := range prev.endpoints {
			eps[k] = e // new members naming an existing endpoint share it
		}
	}
	used := map[*endpoint]bool{}
	for _, db := range cfg.Databases {
		var regions []string
		if len(db.Members) > 0 {
			st.dbs = append(st.dbs, targetRange{lo: len(st.targets), hi: len(st.targets) + len(db.Members)})
		}
		for _, m := range db.Members {
			t := old[m.Name]
			if t == nil || !reflect.DeepEqual(t.member, m) || t.timeout != p.Timeout || t.local != (m.Region == ag.Region) {
				var err error
				if t, err = newTarget(m, p, a.id, ag.Region, eps, a.dials); err != nil {
					return nil, fmt.Errorf("probes: %w", err)
				}
			}
			used[t.ep] = true
			st.targets = append(st.targets, t)
			st.dbOf[t] = db.Name
			st.dbIndex = append(st.dbIndex, len(st.dbs)-1)
			if !slices.Contains(regions, m.Region) {
				regions = append(regions, m.Region)
			}
		}
		slices.Sort(regions)
		st.dbRegions[db.Name] = regions
	}
	st.endpoints = endpoints{}
	for e := range used {
		st.endpoints[e.key] = e
	}
	hbSeen := map[*endpoint]bool{}
	for _, t := range st.targets {
		if t.local && !hbSeen[t.ep] {
			hbSeen[t.ep] = true
			st.heartbeatTargets = append(st.heartbeatTargets, t)
		}
	}
	d, err := newDialSettings(cfg, a.id)
	if err != nil {
		return nil, fmt.Errorf("probes: %w", err)
	}
	st.dial = d
	return st, nil
}

// takePending returns the state Reconfigure (or NewAgent) left, if any.
func (a *Agent) takePending() *agentState {
	a.mu.Lock()
	defer a.mu.Unlock()
	st := a.pending
	a.pending = nil
	return st
}

// Run probes and reports until ctx is done, then stops its senders, waits
// for its goroutines and closes its clients. It returns nil on
// cancellation. The first round starts at once, then one every
// Probes.Interval. Run may be called only once at a time.
func (a *Agent) Run(ctx context.Context) error {
	if !a.running.CompareAndSwap(false, true) {
		return errors.New("probes: agent is already running")
	}
	defer a.running.Store(false)
	st := a.takePending()
	if st == nil {
		return errors.New("probes: agent has no config")
	}
	a.setCurrent(st)
	a.logger.Info("probe agent starting", "region", st.region, "members", len(st.targets),
		"nodes", len(st.cfg.Nodes), "interval", st.cfg.Probes.Interval, "timeout", st.cfg.Probes.Timeout,
		"config_hash", st.hash)

	senders := map[string]*sender{}
	defer func() {
		a.roundsWG.Wait()
		a.pubMu.Lock()
		for _, s := range senders {
			s.stop()
		}
		a.pubMu.Unlock()
		a.wg.Wait()
		a.workers.close()
		for _, e := range st.endpoints {
			e.close()
		}
		for _, t := range st.targets {
			if t.http != nil {
				t.http.CloseIdleConnections()
			}
		}
		// Leave the last config for a later Run or ProbeOnce.
		a.mu.Lock()
		if a.pending == nil {
			a.pending = st
		}
		a.current = nil
		a.mu.Unlock()
	}()
	a.pubMu.Lock()
	a.syncSenders(ctx, senders, nil, st)
	a.pubMu.Unlock()
	hbCtx, stopHeartbeats := context.WithCancel(ctx)
	hbDone := make(chan struct{})
	go func() { defer close(hbDone); a.heartbeatLoop(hbCtx) }()
	defer func() { stopHeartbeats(); <-hbDone }()
	stallCtx, stopStallWatch := context.WithCancel(ctx)
	stallDone := make(chan struct{})
	go func() { defer close(stallDone); a.stalls.run(stallCtx) }()
	defer func() { stopStallWatch(); <-stallDone }()

	a.warmUp(ctx, st)
	timer := time.NewTimer(0)
	defer timer.Stop()
	<-timer.C
	for {
		started := time.Now()
		// Rounds run in the background: a round lasts its spread window
		// plus the timeout, which may exceed the interval, and the next
		// round must still start on time (its members' probes are an
		// interval after their previous ones).
		a.roundsWG.Add(1)
		go func(st *agentState) {
			defer a.roundsWG.Done()
			a.round(ctx, st, func(rep *api.Report) {
				a.pubMu.Lock()
				defer a.pubMu.Unlock()
				a.publish(senders, rep)
			})
		}(st)
		// Launching took next to nothing, so rounds start an interval
		// apart; after a stop (SIGSTOP, a starved process) the next round
		// starts at once, a whole interval or more after this one.
		timer.Reset(st.cfg.Probes.Interval - time.Since(started))
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		case <-a.reconf:
			next := a.takePending()
			if next == nil {
				continue
			}
			a.roundsWG.Wait() // no round of the old state still running
			a.wg.Wait()       // no probe of an old target still running
			for k, e := range st.endpoints {
				if next.endpoints[k] != e {
					e.close()
				}
			}
			a.pubMu.Lock()
			a.syncSenders(ctx, senders, st, next)
			a.pubMu.Unlock()
			a.logger.Info("probe agent reconfigured", "region", next.region, "members", len(next.targets),
				"nodes", len(next.cfg.Nodes), "config_hash", next.hash)
			st = next
			a.setCurrent(st)
		}
	}
}

// warmUp opens a connection to every endpoint (PING), dialBudgetSize at a
// time, for at most warmUpFor(interval), before the first round. A cold
// start with thousands of members would otherwise spend its first rounds
// waiting for the dial budget, reporting most members as not measured; an
// agent that has not reported yet is simply not a vantage yet. A failed
// PING is ignored here: the rounds probe that member and report why.
func (a *Agent) warmUp(ctx context.Context, st *agentState) {
	if len(st.endpoints) <= dialBudgetSize {
		return // the first round's dials fit the budget
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, warmUpFor(st.cfg.Probes.Interval))
	defer cancel()
	work := make(chan *endpoint)
	var wg sync.WaitGroup
	var failed atomic.Int64
	for range dialBudgetSize {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for e := range work {
				c := e.current()
				pctx, pcancel := context.WithTimeout(ctx, st.cfg.Probes.Timeout)
				if c.Ping(pctx).Err() != nil {
					failed.Add(1)
					e.reset(c)
				}
				pcancel()
			}
		}()
	}
	sent := 0
feed:
	for _, e := range st.endpoints {
		select {
		case work <- e:
			sent++
		case <-ctx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()
	a.logger.Info("connections opened", "endpoints", len(st.endpoints), "tried", sent,
		"failed", failed.Load(), "took", time.Since(start).Round(time.Millisecond))
}

// warmUpFor bounds warmUp: two intervals, at least five seconds (on the
// 2-core bench machine, three agents open about 2,000 connections a second
// each).
func warmUpFor(interval time.Duration) time.Duration { return max(2*interval, 5*time.Second) }

// heartbeatLoop writes the agent's heartbeat <prefix>{<region>} to its
// local members every Probes.HeartbeatInterval until ctx is done, when the
// lag check is on and the agent is not read-only. Active-Active
// replication carries it to the other members, where every agent's lag
// check reads it. Writing more often than probing keeps the lag's
// resolution fine (one heartbeat interval) without probing more often.
// A failed write is logged at Debug: the member's own checks report it.
func (a *Agent) heartbeatLoop(ctx context.Context) {
	seq := uint64(time.Now().UnixMicro())
	interval := time.Duration(0)
	var ticker *time.Ticker
	defer func() {
		if ticker != nil {
			ticker.Stop()
		}
	}()
	for {
		a.mu.Lock()
		st := a.current
		a.mu.Unlock()
		if st != nil {
			p := st.cfg.Probes
			if p.HeartbeatInterval != interval && p.HeartbeatInterval > 0 {
				interval = p.HeartbeatInterval
				if ticker == nil {
					ticker = time.NewTicker(interval)
				} else {
					ticker.Reset(interval)
				}
			}
			if p.HasCheck(config.CheckLag) && !p.ReadOnly {
				seq++
				a.writeHeartbeat(ctx, st, seq)
			}
		}
		var tick <-chan time.Time
		if ticker != nil {
			tick = ticker.C
		} else {
			tick = time.After(100 * time.Millisecond)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick:
		}
	}
}

// heartbeatWorkers is how many heartbeat writes run at once.
const heartbeatWorkers = 16

// writeHeartbeat SETs the heartbeat on every local endpoint
// (heartbeatTargets), each bounded by the heartbeat interval (or the probe
// timeout, if shorter), heartbeatWorkers at a time.
func (a *Agent) writeHeartbeat(ctx context.Context, st *agentState, seq uint64) {
	p := st.cfg.Probes
	limit := p.HeartbeatInterval
	if p.Timeout < limit || limit <= 0 {
		limit = p.Timeout
	}
	key := heartbeatKey(heartbeatPrefix(p), st.region)
	work := make(chan *target)
	var wg sync.WaitGroup
	for range min(heartbeatWorkers, len(st.heartbeatTargets)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for t := range work {
				hb := heartbeat{seq: seq, ts: time.Now().UnixNano(), writer: a.id}
				wctx, cancel := context.WithTimeout(ctx, limit)
				err := t.do(wctx, t.redis(), "SET", key, hb.String()).Err()
				cancel()
				if err != nil && ctx.Err() == nil {
					a.logger.Debug("heartbeat write failed", "member", t.member.Name, "error", err)
				}
			}
		}()
	}
	for _, t := range st.heartbeatTargets {
		select {
		case work <- t:
		case <-ctx.Done():
		}
	}
	close(work)
	wg.Wait()
}

func (a *Agent) setCurrent(st *agentState) {
	a.mu.Lock()
	a.current = st
	a.mu.Unlock()
}

// syncSenders starts, stops and restarts senders so that there is one per
// node of next, restarting those whose node or credentials changed.
func (a *Agent) syncSenders(ctx context.Context, senders map[string]*sender, prev, next *agentState) {
	want := map[string]config.Node{}
	for _, n := range next.cfg.Nodes {
		want[n.Name] = n
	}
	for name, s := range senders {
		n, ok := want[name]
		if ok && n.Report == s.node.Report && prev != nil && reflect.DeepEqual(prev.cfg.Security, next.cfg.Security) {
			continue
		}
		s.stop()
		delete(senders, name)
	}
	for name, n := range want {
		if _, ok := senders[name]; ok {
			continue
		}
		senders[name] = startSender(ctx, n, next.dial, next.cfg.Probes.Interval, a.logger, a.opts.ackHook)
	}
}

// publish numbers a report and hands it to the hook and to every sender's
// mailbox. The caller holds pubMu.
func (a *Agent) publish(senders map[string]*sender, rep *api.Report) {
	if rep == nil {
		return
	}
	rep.Seq = a.seq.Add(1)
	if a.opts.reportHook != nil {
		a.opts.reportHook(rep)
	}
	for _, s := range senders {
		s.box.put(rep)
	}
}

// ProbeOnce runs one probe round with the agent's current config and
// returns its report (its chunks merged into one) without sending it (for
// `aagtm check` and tests). It must not be called while Run is running.
// Member connections stay open for the next ProbeOnce or Run, and idle
// probe workers for workerIdle. It returns an error if ctx ends during the
// round.
func (a *Agent) ProbeOnce(ctx context.Context) (*api.Report, error) {
	if a.running.Load() {
		return nil, errors.New("probes: ProbeOnce while the agent is running")
	}
	a.mu.Lock()
	st := a.pending
	a.mu.Unlock()
	if st == nil {
		return nil, errors.New("probes: agent has no config")
	}
	var rep *api.Report
	ok := a.round(ctx, st, func(chunk *api.Report) { rep = mergeReports(rep, chunk) })
	a.wg.Wait()
	if !ok || rep == nil {
		return nil, fmt.Errorf("probes: probe round: %w", ctx.Err())
	}
	rep.Seq = a.seq.Add(1)
	return rep, nil
}

// Limits of the agent's own work, fixed rather than configured: they bound
// what the agent does to itself and to the servers, not what it measures.
const (
	// dialBudgetSize is how many connections the agent opens at once, over
	// all members. 128 stays below redis-server's default accept backlog
	// (tcp-backlog 511) even with three agents dialing the same server, and
	// opens thousands of loopback connections per second (the CPU, not the
	// budget, is then the limit: about 2,000 a second per agent on the
	// 2-core bench machine). Across a WAN with TLS (three round trips of
	// 100 ms) one host's share opens about 100 a second, so 10,000 databases
	// behind one address take about 100 s to connect after a start; until
	// then the members still waiting are not measured.
	dialBudgetSize = 128
	// dialBudgetPerHost is one host's share of the dial budget (an IP or
	// name, whatever the port: a Redis Software node serves many databases
	// on many ports). A hung host's dials each hold a slot for the whole
	// dial timeout once its accept queue is full; the share leaves the
	// other 96 slots to the other hosts.
	dialBudgetPerHost = 32
	// spreadStep is the spacing between the starts of consecutive member
	// probes in a round, until the round's spread window reaches its cap
	// (SpreadWindow): 1,000 members are spread over 100 ms, 5,000 and more
	// over 500 ms (half the interval if that is shorter); a handful start
	// together as before.
	spreadStep = 100 * time.Microsecond
	// maxSpread caps the spread window.
	maxSpread = 500 * time.Millisecond
	// chunkEvery is how often a round whose spread window is longer sends
	// the databases whose probes have all returned (see round).
	chunkEvery = 100 * time.Millisecond
	// maxIdleWorkers is how many probe workers wait for the next probe
	// (see workerPool): more than a healthy round of 10,000 members keeps
	// busy at once on the 2-core bench machine (a few dozen), few enough
	// that their stacks (tens of KiB each) stay a few MB.
	maxIdleWorkers = 256
	// workerIdle is how long an idle probe worker waits for its next
	// probe before it exits.
	workerIdle = 5 * time.Second
	// overloadLogEvery rate-limits the warning about probes not measured.
	overloadLogEvery = 10 * time.Second
)

// SpreadWindow is how long a round takes to start all of its n member
// probes: n × spreadStep, at most half the interval and at most maxSpread.
// Spreading keeps the agent's CPU, its dials and the servers' accept queues
// from one burst of thousands of probes at the start of each round. A
// round of at most chunkEvery reports when its last probe has returned, so
// a member probed first waits up to the window for the others; a longer
// one reports in chunks (ReportDelay).
func SpreadWindow(interval time.Duration, n int) time.Duration {
	return min(time.Duration(n)*spreadStep, interval/2, maxSpread)
}

// ReportDelay is how long a member's result may wait, once its probe has
// returned, before its report leaves for the nodes, in a round of n
// members: the spread window when the round reports in one piece; when it
// reports in chunks (a window longer than chunkEvery), chunkEvery plus the
// wait for the sender's next report slot (1/reportRate). `aagtm check`
// adds it to the detection bound.
func ReportDelay(interval time.Duration, n int) time.Duration {
	if w := SpreadWindow(interval, n); w <= chunkEvery {
		return w
	}
	return chunkEvery + time.Second/reportRate
}

// startLimit is how late (after its slot in the spread) a member's probe
// may start and still be run: half an interval. A late start does not spoil
// the measurement (the member still gets its whole timeout from the
// moment its probe starts), it only delays the report; a probe starting
// later than this would run into the member's next slot, and is reported
// as not measured: the agent, not the member, was too slow.
func startLimit(interval time.Duration) time.Duration { return interval / 2 }

// lateLimit is the overrun past a probe's deadline beyond which a timeout
// is the agent's (a stalled process: the reply may have come in time), not
// the member's.
func lateLimit(timeout time.Duration) time.Duration {
	return max(timeout/2, 50*time.Millisecond)
}

// stallLimit is how long the agent may have been stalled (not running)
// when a probe's deadline passed for its timeout still to count as the
// member's: an eighth of the timeout.
func stallLimit(timeout time.Duration) time.Duration { return timeout / 8 }

// memberResult is one member's outcome of a round.
type memberResult struct {
	results    []result
	heartbeats map[string]heartbeat
}

// round probes every member once, each bounded by the probe timeout from
// the moment its probe starts, and hands its report to emit (without a
// sequence number: emit numbers it). The probes' starts are spread evenly
// over the spread window. When the window is longer than chunkEvery
// (thousands of members), the report goes in chunks: every chunkEvery,
// the databases whose members' probes have all returned, so that a failure
// found early in the window reaches the nodes without waiting for the
// window's end; the last chunk holds the rest. A member whose probe the
// agent could not start in time, or whose probe has not returned by the
// round's end (it overran its own deadline: the agent is starved), is
// reported as not measured: that says nothing about the member. round
// returns false when ctx ended (shutting down: what is left is not
// emitted).
func (a *Agent) round(ctx context.Context, st *agentState, emit func(*api.Report)) bool {
	if ctx.Err() != nil {
		return false
	}
	roundNo := a.rounds.Add(1)
	p := st.cfg.Probes
	timeout, late := p.Timeout, startLimit(p.Interval)
	n := len(st.targets)
	window := SpreadWindow(p.Interval, n)
	start := time.Now()
	for _, e := range st.endpoints {
		// A retired client is unused once every probe that could hold it
		// has passed its deadline.
		e.closeRetired(start.Add(-(timeout + late + roundSlack)))
	}

	results := make([]memberResult, n)
	gather := newGatherer(func(i int, r memberResult) { results[i] = r })
	chunks := newChunker(st)
	chunked := window > chunkEvery
	lastChunk := start
	flush := func() {
		chunks.in(gather.drain()...)
		if idx := chunks.ready(); len(idx) > 0 {
			emit(a.report(st, idx, results))
		}
		lastChunk = time.Now()
	}
	var sleep *time.Timer
	for i, t := range st.targets {
		at := start
		if n > 1 {
			at = start.Add(window * time.Duration(i) / time.Duration(n))
		}
		if d := time.Until(at); d > time.Millisecond {
			if sleep == nil {
				sleep = time.NewTimer(d)
				defer sleep.Stop()
			} else {
				sleep.Reset(d)
			}
			select {
			case <-ctx.Done():
				return false
			case <-sleep.C:
			}
		}
		// Checked at every member, not only after sleeping: a round
		// running behind its schedule never sleeps.
		if chunked && time.Since(lastChunk) >= chunkEvery {
			flush()
		}
		if !t.busy.CompareAndSwap(false, true) {
			results[i] = a.notMeasured(st, t, "the member's previous probe overran its deadline (agent overloaded)")
			chunks.in(i)
			continue
		}
		pr := &probe{
			t: t, agentID: a.id, region: st.region, seq: roundNo,
			settings: &st.cfg.Probes, hbRegions: st.dbRegions[st.dbOf[t]],
		}
		gather.expect()
		a.wg.Add(1)
		a.workers.run(func() {
			defer a.wg.Done()
			defer t.busy.Store(false)
			if lag := time.Since(at); lag > late {
				gather.put(i, a.notMeasured(st, t, fmt.Sprintf("the probe started %s late (agent overloaded)", lag.Round(time.Millisecond))))
				return
			}
			gather.put(i, a.probeMember(ctx, st, pr))
		})
	}
	// Every probe started by start+window+late has its deadline by then
	// plus the timeout.
	deadline := time.NewTimer(time.Until(start.Add(window + late + timeout + roundSlack)))
	defer deadline.Stop()
	var tick <-chan time.Time
	if chunked {
		t := time.NewTicker(chunkEvery)
		defer t.Stop()
		tick = t.C
	}
	all := gather.start()
	for waiting := true; waiting; {
		select {
		case <-all:
			waiting = false
		case <-deadline.C:
			waiting = false
		case <-tick:
			flush()
		}
	}
	gather.close()
	if ctx.Err() != nil {
		return false // shutting down: the results say "canceled", not the members' health
	}
	chunks.in(gather.drain()...)
	measured := 0
	var why string
	for i, t := range st.targets {
		if !chunks.have[i] {
			results[i] = a.notMeasured(st, t, fmt.Sprintf("no result %s after the round started (agent overloaded)", time.Since(start).Round(time.Millisecond)))
			chunks.in(i)
		}
		for _, r := range results[i].results {
			if r.outcome == OutcomeNotMeasured {
				measured++
				if why == "" {
					why = t.member.Name + ": " + r.err
				}
				break
			}
		}
	}
	if measured > 0 {
		a.logOverload(measured, n, why)
	}
	if idx := chunks.ready(); len(idx) > 0 {
		emit(a.report(st, idx, results))
	}
	return true
}

// chunker tracks which databases of a round have all their members'
// results in. A database's members are adjacent in agentState.targets
// (config order), so a chunk holds whole databases: the lag computation
// compares the heartbeats read at all members of a database.
type chunker struct {
	st       *agentState
	left     []int  // per database: results not yet in
	have     []bool // per target: result in
	complete []int  // databases complete and not yet handed out
}

// targetRange is the targets [lo, hi) of one database.
type targetRange struct{ lo, hi int }

func newChunker(st *agentState) *chunker {
	c := &chunker{st: st, left: make([]int, len(st.dbs)), have: make([]bool, len(st.targets))}
	for d, r := range st.dbs {
		c.left[d] = r.hi - r.lo
	}
	return c
}

// in records the results of targets idx as in.
func (c *chunker) in(idx ...int) {
	for _, i := range idx {
		if c.have[i] {
			continue
		}
		c.have[i] = true
		d := c.st.dbIndex[i]
		if c.left[d]--; c.left[d] == 0 {
			c.complete = append(c.complete, d)
		}
	}
}

// ready returns the targets of the databases completed since the last
// call, in config order.
func (c *chunker) ready() []int {
	slices.Sort(c.complete)
	var idx []int
	for _, d := range c.complete {
		for i := c.st.dbs[d].lo; i < c.st.dbs[d].hi; i++ {
			idx = append(idx, i)
		}
	}
	c.complete = c.complete[:0]
	return idx
}

// gatherer takes a round's results as its probes finish, without waking
// the round for each one: the round sleeps until the last expected result
// is in, its deadline passes or it is time for a chunk (drain), whichever
// comes first. Every result put before close is taken, whatever the order
// (a starved round whose deadline passed while it was still starting
// probes keeps the results already in); results put later are dropped.
type gatherer[T any] struct {
	take func(int, T)
	all  chan struct{} // closed when the last expected result is in

	mu       sync.Mutex
	expected int   // results expected and not yet in
	started  bool  // start was called: no more results will be expected
	closed   bool  // close was called: results are dropped
	fresh    []int // indices taken since the last drain
}

func newGatherer[T any](take func(int, T)) *gatherer[T] {
	return &gatherer[T]{take: take, all: make(chan struct{})}
}

// expect announces one more result, before its probe starts.
func (g *gatherer[T]) expect() {
	g.mu.Lock()
	g.expected++
	g.mu.Unlock()
}

// put hands in result i; take runs under the gatherer's lock, so the round
// reads what it wrote once drain has returned i.
func (g *gatherer[T]) put(i int, r T) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return
	}
	g.take(i, r)
	g.fresh = append(g.fresh, i)
	g.expected--
	if g.expected == 0 && g.started {
		close(g.all)
	}
}

// start ends the expecting and returns a channel closed once every
// expected result is in (at once if they all are).
func (g *gatherer[T]) start() <-chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.started = true
	if g.expected == 0 {
		close(g.all)
	}
	return g.all
}

// drain returns the indices of the results taken since its last call.
func (g *gatherer[T]) drain() []int {
	g.mu.Lock()
	defer g.mu.Unlock()
	idx := g.fresh
	g.fresh = nil
	return idx
}

// close drops the results put from now on.
func (g *gatherer[T]) close() {
	g.mu.Lock()
	g.closed = true
	g.mu.Unlock()
}

// logOverload warns, at most once per overloadLogEvery, that members were
// not measured in a round.
func (a *Agent) logOverload(count, of int, example string) {
	now := time.Now().UnixNano()
	last := a.overloadLogged.Load()
	if now-last < int64(overloadLogEvery) || !a.overloadLogged.CompareAndSwap(last, now) {
		return
	}
	a.logger.Warn("members not measured this round: the agent could not probe them in time (reported as not_measured, which is no evidence)",
		"not_measured", count, "members", of, "example", example)
}

// probeMember runs every applicable check of one member, one after
// another, all within one deadline: the timeout from now.
func (a *Agent) probeMember(parent context.Context, st *agentState, p *probe) memberResult {
	timeout := st.cfg.Probes.Timeout
	ctx, cancel := context.WithTimeout(parent, timeout)
	defer cancel()
	p.c = p.t.redis()
	started := time.Now()
	var mr memberResult
	reset := false
	for _, c := range st.checks {
		if c.skip(p) {
			continue
		}
		start := time.Now()
		r := c.run(ctx, p)
		r.duration = time.Since(start)
		r.check = c.name()
		if r.outcome == OutcomeTimeout {
			// The deadline fires at the timeout; returning much later
			// means this process was not running (stopped, starved), so
			// the member may have answered in time: not measured. So is
			// a timeout whose deadline fell in a stall of the agent that
			// had lasted stallLimit: a reply arriving in that stall was
			// never read. A stall earlier in the probe is no excuse: the
			// reply, had it come before, was read when the stall ended.
			if over := time.Since(started) - timeout; over > lateLimit(timeout) {
				r.outcome = OutcomeNotMeasured
				r.err = fmt.Sprintf("%s (returned %s past the deadline: the agent was stalled)", r.err, over.Round(time.Millisecond))
			} else if stalled := a.stalls.stalledAt(started.Add(timeout)); stalled >= stallLimit(timeout) {
				r.outcome = OutcomeNotMeasured
				r.err = fmt.Sprintf("%s (the agent was stalled for the last %s before the deadline)", r.err, stalled.Round(time.Millisecond))
			}
		}
		if !r.ok() {
			a.logger.Debug("check failed", "member", p.t.member.Name, "check", r.check,
				"outcome", r.outcome, "error", r.err, "duration", r.duration)
		}
		if r.redial {
			reset = true
		}
		mr.results = append(mr.results, r)
	}
	mr.heartbeats = p.heartbeats
	// The endpoint remembers the member's last evidence at the connection
	// level (a dial that finds no slot fails like it); a probe that
	// measured nothing (the agent stalled) leaves it as it was.
	var connFailed Outcome
	var connText string
	measured := false
	for _, r := range mr.results {
		measured = measured || r.outcome != OutcomeNotMeasured
		if r.outcome == OutcomeTimeout || r.outcome == OutcomeUnreachable {
			connFailed, connText = r.outcome, r.err
			break
		}
	}
	if measured && (connFailed != "" || !reset) {
		p.t.ep.probed(connFailed, connText)
	}
	if reset {
		p.t.reset(p.c)
	}
	return mr
}

// notMeasured is the result of a member the agent could not probe in time:
// every applicable check not measured.
func (a *Agent) notMeasured(st *agentState, t *target, why string) memberResult {
	var mr memberResult
	p := &probe{t: t, settings: &st.cfg.Probes}
	for _, c := range st.checks {
		if !c.skip(p) {
			mr.results = append(mr.results, fail(c.name(), OutcomeNotMeasured, "%s", why))
		}
	}
	return mr
}

// report assembles the report of the targets idx (whole databases) of a
// round.
func (a *Agent) report(st *agentState, idx []int, results []memberResult) *api.Report {
	var lags map[string]map[string]time.Duration
	if st.cfg.Probes.HasCheck(config.CheckLag) {
		in := make([]lagInput, len(idx))
		for k, i := range idx {
			t := st.targets[i]
			in[k] = lagInput{member: t.member.Name, database: st.dbOf[t], region: t.member.Region, heartbeats: results[i].heartbeats}
		}
		lags = computeLag(in)
	}
	rep := &api.Report{
		AgentId:    a.id,
		Region:     st.region,
		BootId:     a.bootID,
		Sent:       timestamppb.Now(),
		ConfigHash: st.hash,
	}
	rep.Members = make([]*api.MemberReport, 0, len(idx))
	for _, i := range idx {
		t := st.targets[i]
		mr := &api.MemberReport{Member: t.member.Name}
		var rtt time.Duration
		for _, r := range results[i].results {
			mr.Checks = append(mr.Checks, &api.CheckResult{
				Name: string(r.check), Ok: r.ok(), Error: r.err,
				Duration: durationpb.New(r.duration), Outcome: string(r.outcome),
			})
			if r.ok() && (r.check == config.CheckPing || r.check == config.CheckEcho) && (rtt == 0 || r.duration < rtt) {
				rtt = r.duration
			}
		}
		mr.Rtt = durationpb.New(rtt)
		if l := lags[t.member.Name]; len(l) > 0 {
			mr.Lag = make(map[string]*durationpb.Duration, len(l))
			for src, d := range l {
				mr.Lag[src] = durationpb.New(d)
			}
		}
		if hbs := results[i].heartbeats; len(hbs) > 0 {
			mr.Heartbeats = make(map[string]*api.Heartbeat, len(hbs))
			for r, hb := range hbs {
				mr.Heartbeats[r] = &api.Heartbeat{Seq: hb.seq, UnixNanos: hb.ts, Writer: hb.writer}
			}
		}
		rep.Members = append(rep.Members, mr)
	}
	return rep
}

// reportBudget is the size a report is trimmed to: under the 1 MiB
// message limit of the report stream, with room for the envelope. A
// healthy report costs about 45 bytes per member (10,000 members: 450
// KB); failure texts can quadruple that.
const reportBudget = 900 << 10

// keepFullErrors is how many failing members keep their whole error text
// when a report is trimmed.
const keepFullErrors = 20

// fitReport shortens error texts when the report would exceed
// reportBudget, keeping the first keepFullErrors whole: a report too large
// to send would tell the nodes nothing at all. The outcome of each check
// is kept, so a trimmed entry still says why (timeout, not_measured, ...).
// It returns the report's size before and after (the same when nothing was
// cut).
func fitReport(rep *api.Report) (before, after int) {
	size := proto.Size(rep)
	if size <= reportBudget {
		return size, size
	}
	before = size
	for _, limit := range []int{64, 24, 0} {
		kept := 0
		for _, m := range rep.Members {
			for _, c := range m.Checks {
				if c.Error == "" {
					continue
				}
				if kept < keepFullErrors {
					kept++
					continue
				}
				if len(c.Error) > limit {
					c.Error = c.Error[:limit]
				}
			}
		}
		if size = proto.Size(rep); size <= reportBudget {
			break
		}
	}
	return before, size
}
