// Package node is the composition root of a GTM node (`aagtm serve`): it
// wires the report ingest, the policy engine, the override set (and its
// exchange with the other nodes), the DNS server and the admin API
// together, owns their goroutines, persists state and applies reloads.
//
// It holds no decision logic (that is policy), answers no query itself (that
// is dnsserver) and reads no files but its state file: the caller loads the
// config and hands it over.
package node

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"golang.org/x/sync/errgroup"

	"github.com/aagtm/aagtm/admin"
	"github.com/aagtm/aagtm/config"
	"github.com/aagtm/aagtm/dnsserver"
	"github.com/aagtm/aagtm/ingest"
	"github.com/aagtm/aagtm/overrides"
	"github.com/aagtm/aagtm/policy"
	"github.com/aagtm/aagtm/sentinel"
)

// evalEvery is how often the engine re-evaluates without new reports, to
// advance staleness and failback timers.
const evalEvery = 100 * time.Millisecond

// saveEvery bounds how often the state file is written.
const saveEvery = time.Second

// Options override the node's own entry in the config; tests and the demo
// use them to listen on chosen (or :0) addresses.
type Options struct {
	// DNS, Ingest and Admin replace the config's listen addresses when set.
	DNS    []string
	Ingest string
	Admin  string
	// Sentinel replaces nodes[].sentinel, the Sentinel listen address,
	// when set.
	Sentinel string
	// StateFile replaces the node's state_file when set.
	StateFile string
	// Registry receives the node's metrics; nil creates one.
	Registry *prometheus.Registry
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Node is one running GTM node.
type Node struct {
	name   string
	logger hclog.Logger
	opts   Options
	now    func() time.Time

	cfg atomic.Pointer[config.Config]

	evalMu  sync.Mutex     // serialises evaluate
	viewCfg *config.Config // config of the last Sentinel view (evalMu)
	mu      sync.Mutex     // guards engine, corrupt
	engine  *policy.Engine
	corrupt *admin.CorruptState // an unusable state file found at start, until acknowledged

	set      *overrides.Set     // the override set, replicated among the nodes
	syncer   *overrides.Syncer  // exchanges set with the other nodes
	inForce  []overrides.Record // overrides in force at the last evaluation (evalMu)
	savedSet atomic.Uint64      // set version in the state file

	// saveMu serialises writes of the state file, and an override from
	// its save to its commit, so an older state never replaces a newer one.
	saveMu sync.Mutex
	// stateBlocked is set at start when an unusable state file could not
	// be moved aside: the node then never writes the file (read-only
	// afterwards).
	stateBlocked error
	saveHealth   saveHealth

	snap    atomic.Pointer[policy.Snapshot]
	wake    chan struct{}
	ready   atomic.Bool
	started chan struct{}

	registry *prometheus.Registry
	metrics  *admin.PolicyMetrics
	dns      *dnsserver.Server
	sentinel *sentinel.Server // nil: nodes[].sentinel is unset
	ingest   *ingest.Ingest
	admin    *admin.Server
	adminTLS *tls.Config // nil: the admin API speaks plain HTTP

	savedSerial  atomic.Uint64 // snapshot serial in the state file
	saveFailures prometheus.Counter

	addrMu     sync.Mutex
	ingestAddr net.Addr
	adminAddr  net.Addr
}

// New prepares node name of cfg. Nothing listens until Run.
func New(cfg *config.Config, name string, logger hclog.Logger, opts Options) (*Node, error) {
	self, ok := cfg.Node(name)
	if !ok {
		var names []string
		for _, n := range cfg.Nodes {
			names = append(names, n.Name)
		}
		return nil, fmt.Errorf("node %q is not in the config's nodes (declared: %v): pass --node with one of them", name, names)
	}
	if len(opts.DNS) == 0 {
		opts.DNS = self.DNS
	}
	if opts.Ingest == "" {
		opts.Ingest = self.Listen
	}
	if opts.Admin == "" {
		opts.Admin = self.Admin
	}
	if opts.StateFile == "" {
		opts.StateFile = self.StateFile
	}
	if opts.Sentinel == "" {
		opts.Sentinel = self.Sentinel
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Registry == nil {
		opts.Registry = prometheus.NewRegistry()
		opts.Registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	base := logger.Named("node")
	logger = base.With("node", name)
	n := &Node{
		name:     name,
		logger:   logger,
		opts:     opts,
		now:      opts.Now,
		engine:   policy.New(cfg),
		set:      overrides.NewSet(name, opts.Now),
		wake:     make(chan struct{}, 1),
		started:  make(chan struct{}),
		registry: opts.Registry,
	}
	n.cfg.Store(cfg)
	n.metrics = admin.NewPolicyMetrics(opts.Registry)
	n.saveFailures = admin.NewStateMetrics(opts.Registry, n.stateCorrupt)
	cookieSecrets, err := readCookieSecrets(cfg)
	if err != nil {
		return nil, err
	}
	n.dns = dnsserver.New(dnsserver.Options{
		Node:                  name,
		Listen:                opts.DNS,
		MaxUDPSize:            cfg.DNS.MaxUDPSize,
		ReusePort:             cfg.DNS.ReusePort,
		RateLimit:             cfg.DNS.RateLimit,
		CookieSecrets:         cookieSecrets,
		UDPAmplificationLimit: cfg.DNS.UDPAmplificationLimit,
		TCP:                   cfg.DNS.TCP,
		Registerer:            opts.Registry,
	}, logger)
	// The ingest adds the node's name to its own logs and acks.
	n.ingest = ingest.New(cfg, base, n.observe, ingest.WithNodeName(name), ingest.WithRegisterer(opts.Registry))
	token, err := readAdminToken(cfg)
	if err != nil {
		return nil, err
	}
	n.admin = admin.NewServer(n, name, token, cfg.Security.Insecure, opts.Registry, logger)
	admin.NewReadyMetric(opts.Registry, n.admin.Ready)
	peers, err := peersOf(cfg, name, token)
	if err != nil {
		return nil, err
	}
	n.syncer = overrides.NewSyncer(n.set, name, peers, logger, opts.Registry, n.peerChanged)
	if t := self.AdminTLS; t.Enabled() {
		cert, err := tls.LoadX509KeyPair(t.Cert, t.Key)
		if err != nil {
			return nil, fmt.Errorf("nodes[%s].admin_tls: %w", name, err)
		}
		n.adminTLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	if opts.Sentinel != "" {
		if n.sentinel, err = newSentinel(cfg, self, opts, logger); err != nil {
			return nil, err
		}
	}
	n.restore()
	return n, nil
}

// restore loads the state file, if any, so the first snapshot repeats the
// last decision. An unreadable or corrupt file is not fatal: it is moved
// aside (never overwritten), logged with what it held, and reported in
// status until an operator acknowledges it; the node starts fresh.
func (n *Node) restore() {
	if n.opts.StateFile == "" {
		return
	}
	path := n.opts.StateFile
	st, data, err := loadState(path)
	if err != nil {
		now := n.now()
		c := &admin.CorruptState{At: now.UTC(), Error: err.Error(), Lost: salvageOverrides(data)}
		aside, merr := moveAside(path, now)
		if merr != nil {
			n.stateBlocked = fmt.Errorf("state file %s is unusable (%v) and could not be moved aside (%v): "+
				"not overwriting it; move it away and restart the node", path, err, merr)
			c.Error += "; moving it aside failed: " + merr.Error()
			n.logger.Error("state file unusable and not movable: the node will not write it; drains and forces fail until it is moved away and the node restarted",
				"path", path, "error", err, "move_error", merr, "lost", c.Lost)
		} else {
			n.logger.Error("state file unusable: kept aside, starting with no drains or forces; re-apply them, then run aagtm ack-state",
				"path", path, "moved_to", aside, "error", err, "lost", c.Lost)
		}
		c.MovedTo = aside
		n.corrupt = c
		return
	}
	if st == nil {
		n.logger.Info("no state file yet; starting fresh", "path", n.opts.StateFile)
		return
	}
	n.engine.Restore(st.Engine)
	recs := st.Overrides
	if st.legacy != nil {
		recs = n.migrate(*st.legacy)
	}
	if _, err := n.set.Merge(recs...); err != nil {
		n.logger.Warn("state file holds invalid override records: skipped", "path", path, "error", err)
	}
	n.corrupt = st.Corrupt
	n.logger.Info("restored last state", "path", n.opts.StateFile, "saved_at", st.SavedAt,
		"overrides_in_force", len(n.set.InForce(n.now())), "override_records", len(recs))
	if c := st.Corrupt; c != nil {
		n.logger.Error("an unusable state file found earlier is not acknowledged yet: run aagtm ack-state once its drains and forces are re-applied",
			"moved_to", c.MovedTo, "found_at", c.At, "lost", c.Lost)
	}
}

// observe is the ingest's sink: it queues observations and wakes the
// evaluation loop so a failure is acted on at once, not at the next tick.
func (n *Node) observe(obs []policy.Observation) {
	n.mu.Lock()
	for _, o := range obs {
		n.engine.Observe(o)
	}
	n.mu.Unlock()
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

// Run serves DNS, the ingest and the admin API until ctx is cancelled,
// then shuts down gracefully: readiness goes 503 first, listeners stop,
// in-flight work drains, and the state is saved.
func (n *Node) Run(ctx context.Context) error {
	cfg := n.cfg.Load()
	n.pullOverrides(ctx)
	n.evaluate() // serve the restored (or fail-open) decision from the first query

	ingestLis, err := net.Listen("tcp", n.opts.Ingest)
	if err != nil {
		return fmt.Errorf("listen for reports on %s: %w", n.opts.Ingest, err)
	}
	adminLis, err := net.Listen("tcp", n.opts.Admin)
	if err != nil {
		ingestLis.Close()
		return fmt.Errorf("listen for admin on %s: %w", n.opts.Admin, err)
	}
	if n.adminTLS != nil {
		adminLis = tls.NewListener(adminLis, n.adminTLS)
	}
	n.addrMu.Lock()
	n.ingestAddr, n.adminAddr = ingestLis.Addr(), adminLis.Addr()
	n.addrMu.Unlock()

	// The listeners run on their own context, cancelled only after
	// readiness has gone 503, so load balancers and health checks see the
	// node leave before it stops answering.
	serveCtx, stopServing := context.WithCancel(context.Background())
	defer stopServing()
	g, gctx := errgroup.WithContext(serveCtx)
	g.Go(func() error { return n.dns.Run(gctx) })
	g.Go(func() error { return n.ingest.Serve(gctx, ingestLis) })
	g.Go(func() error { return n.admin.Serve(gctx, adminLis) })
	if n.sentinel != nil {
		g.Go(func() error { return n.sentinel.Run(gctx) })
	}
	g.Go(func() error { n.loop(gctx); return nil })
	g.Go(func() error { n.syncer.Run(gctx); return nil })
	g.Go(func() error {
		select {
		case <-n.dns.Ready():
		case <-gctx.Done():
			return nil
		}
		if n.sentinel != nil {
			select {
			case <-n.sentinel.Ready():
			case <-gctx.Done():
				return nil
			}
		}
		n.ready.Store(true)
		close(n.started)
		n.logger.Info("serving", "dns", n.DNSAddrs(), "ingest", ingestLis.Addr().String(),
			"admin", adminLis.Addr().String(), "sentinel", n.SentinelAddr(), "zone", cfg.Zone.Name)
		return nil
	})
	g.Go(func() error {
		select {
		case <-ctx.Done():
		case <-gctx.Done(): // a listener failed
		}
		n.ready.Store(false)
		n.admin.SetShuttingDown()
		n.logger.Info("shutting down: readiness is 503; stopping listeners")
		stopServing()
		return nil
	})
	err = g.Wait()
	n.saveNow()
	if err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	n.logger.Info("stopped")
	return nil
}

// Started is closed once every listener is up.
func (n *Node) Started() <-chan struct{} { return n.started }

// DNSAddrs returns the DNS server's bound addresses (after Started).
func (n *Node) DNSAddrs() []string {
	var out []string
	for _, a := range n.dns.Addrs() {
		out = append(out, a.String())
	}
	return out
}

// SentinelAddr returns the Sentinel endpoint's bound address (after
// Started); "" when the node serves none.
func (n *Node) SentinelAddr() string {
	if n.sentinel == nil || n.sentinel.Addr() == nil {
		return ""
	}
	return n.sentinel.Addr().String()
}

// newSentinel prepares the Sentinel endpoint of node self: TLS from
// nodes[].sentinel_tls, the password from security.sentinel_password_file.
func newSentinel(cfg *config.Config, self *config.Node, opts Options, logger hclog.Logger) (*sentinel.Server, error) {
	so := sentinel.Options{Node: self.Name, Listen: opts.Sentinel, Registerer: opts.Registry}
	if t := self.SentinelTLS; t.Enabled() {
		cert, err := tls.LoadX509KeyPair(t.Cert, t.Key)
		if err != nil {
			return nil, fmt.Errorf("nodes[%s].sentinel_tls: %w", self.Name, err)
		}
		so.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	if f := cfg.Security.SentinelPasswordFile; f != "" {
		pw, err := config.ReadToken("security.sentinel_password_file", f)
		if err != nil {
			return nil, err
		}
		so.Password = pw
	}
	return sentinel.New(so, logger), nil
}

// IngestAddr and AdminAddr return the bound listener addresses.
func (n *Node) IngestAddr() string {
	n.addrMu.Lock()
	defer n.addrMu.Unlock()
	if n.ingestAddr == nil {
		return ""
	}
	return n.ingestAddr.String()
}

// AdminAddr returns the admin API's bound address.
func (n *Node) AdminAddr() string {
	n.addrMu.Lock()
	defer n.addrMu.Unlock()
	if n.adminAddr == nil {
		return ""
	}
	return n.adminAddr.String()
}

// evalShare bounds the share of one core that evaluations may take: the
// next evaluation starts no sooner than evalShare × the recent evaluation
// time after the last one began. With a few hundred members an evaluation
// takes well under a millisecond and reports are evaluated as they arrive;
// with thousands (tens of milliseconds each), reports arriving close
// together are batched into one evaluation instead of queueing a CPU-bound
// loop.
const evalShare = 3

// evalPacer spaces evaluations by the recent evaluation time, a moving
// average, not by the last one's alone: the evaluation that publishes a mass
// failover (thousands of answers rebuilt and logged) takes several times the
// usual, and pacing by it would hold back the next evaluation, which carries
// the verdicts reported meanwhile, by three times that (at 10,000 members,
// up to a second). The average still bounds the share over time: evaluations
// that stay slow pull it up to their length.
type evalPacer struct {
	avg time.Duration
}

// evalWeight is the weight of the latest evaluation in the average.
const evalWeight = 4 // 1/4

// next records an evaluation that began at start and took took, and returns
// the earliest start of the next one.
func (p *evalPacer) next(start time.Time, took time.Duration) time.Time {
	if p.avg == 0 {
		p.avg = took
	} else {
		p.avg += (took - p.avg) / evalWeight
	}
	return start.Add(evalShare * p.avg)
}

// loop re-evaluates on every report batch and every evalEvery, at most as
// often as evalShare allows, and saves state at most every saveEvery.
func (n *Node) loop(ctx context.Context) {
	tick := time.NewTicker(evalEvery)
	defer tick.Stop()
	lastSave := n.now()
	var pacer evalPacer
	var next time.Time // the earliest start of the next evaluation
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-n.wake:
		}
		if wait := time.Until(next); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
		}
		start := time.Now()
		n.evaluate()
		next = pacer.next(start, time.Since(start))
		if now := n.now(); now.Sub(lastSave) >= saveEvery {
			lastSave = now
			n.saveIfChanged()
		}
	}
}

// evaluate runs the engine once and publishes the snapshot to DNS, metrics
// and the logs.
func (n *Node) evaluate() {
	// One evaluation at a time, from decision to publication, so snapshots
	// are published in the order they were made and each change is logged
	// once.
	n.evalMu.Lock()
	defer n.evalMu.Unlock()
	now := n.now()
	inForce := n.set.InForce(now)
	n.logExpired(now, inForce)
	n.mu.Lock()
	snap := n.engine.Evaluate(now, policyOverrides(inForce))
	n.mu.Unlock()
	prev := n.snap.Swap(snap)
	cfg := n.cfg.Load()
	// The DNS view takes every snapshot (the reasons _why serves are
	// newer each time) and rebuilds only the hosts whose answers changed.
	n.dns.Update(cfg, snap)
	if prev == nil || snap.Serial != prev.Serial || cfg != n.viewCfg {
		if n.sentinel != nil {
			// After DNS: both serve the new answer before the
			// Sentinel endpoint publishes +switch-master.
			n.sentinel.Update(cfg, snap)
		}
		n.viewCfg = cfg
	}
	n.metrics.Observe(snap)
	n.logChanges(prev, snap)
}

// logChanges logs verdict changes and answer events at Info: these are the
// lines an operator reads after an incident. Members losing every voting
// vantage (fail-static: their last verdict is kept) are logged at Warn once
// when it begins and at Info when it ends, one line for all the members of
// an evaluation; the warm-up after a node starts, before any vantage has
// voted, is not logged.
func (n *Node) logChanges(prev, cur *policy.Snapshot) {
	if prev != nil {
		names := make([]string, 0, len(cur.Members))
		for name := range cur.Members {
			names = append(names, name)
		}
		sort.Strings(names)
		var began, ended []string
		var since time.Time
		for _, name := range names {
			m := cur.Members[name]
			old, ok := prev.Members[name]
			if !ok {
				continue
			}
			if old.Verdict != m.Verdict {
				n.logger.Info("member verdict changed", "member", name, "db", m.Database, "region", m.Region,
					"from", old.Verdict, "to", m.Verdict, "votes", voteSummary(m), "reason", m.Reason)
			}
			if old.Lagging != m.Lagging {
				n.logger.Info("member lag state changed", "member", name, "lagging", m.Lagging, "lag", policy.Readable(m.Lag))
			}
			if !old.Settled && m.Settled && m.Verdict == policy.Up {
				n.logger.Info("member completed failback hold", "member", name)
			}
			switch {
			case m.FailStatic && !old.FailStatic && !m.NoFreshSince.IsZero():
				began = append(began, name)
				if since.IsZero() || m.NoFreshSince.Before(since) {
					since = m.NoFreshSince
				}
			case old.FailStatic && !m.FailStatic && !old.NoFreshSince.IsZero():
				ended = append(ended, name)
			}
		}
		if len(began) > 0 {
			n.logger.Warn("no fresh vantage: last verdict kept", "count", len(began), "members", truncateNames(began),
				"since", since.UTC().Format(time.RFC3339))
		}
		if len(ended) > 0 {
			n.logger.Info("vantages vote again: verdicts decided by quorum", "count", len(ended), "members", truncateNames(ended))
		}
	}
	for _, e := range cur.Events {
		args := []any{"db", e.Database, "region", e.Region, "from", e.From, "to", e.To, "reason", e.Reason}
		if e.Kind.IsFailover() {
			args = append(args, "detection", policy.Readable(e.Detection))
			if e.RPOKnown {
				args = append(args, "rpo_estimate", policy.Readable(e.RPOEstimate))
			} else {
				args = append(args, "rpo_estimate", "unknown")
			}
		}
		n.logger.Info(string(e.Kind), args...)
	}
}

// loggedNames is how many member names one log line lists.
const loggedNames = 20

// truncateNames joins at most loggedNames names, then says how many more.
func truncateNames(names []string) string {
	if len(names) <= loggedNames {
		return strings.Join(names, ",")
	}
	return strings.Join(names[:loggedNames], ",") + fmt.Sprintf(",... (%d more)", len(names)-loggedNames)
}

// voteSummary counts a member's vantages: voting up, voting down, and
// abstaining (stale, or without rise/fall evidence yet).
func voteSummary(m *policy.MemberStatus) string {
	up, down, abstain := 0, 0, 0
	for _, v := range m.Vantages {
		switch {
		case !v.Voting:
			abstain++
		case v.Verdict == policy.Down:
			down++
		default:
			up++
		}
	}
	return fmt.Sprintf("%d up/%d down/%d abstaining", up, down, abstain)
}

// saveIfChanged writes the state file when answers or the override set
// changed since the last successful save (local override changes are
// saved before they apply; those learnt from peers here).
func (n *Node) saveIfChanged() {
	if snap := n.snap.Load(); snap != nil && snap.Serial == n.savedSerial.Load() && n.set.Version() == n.savedSet.Load() {
		return
	}
	n.saveNow()
}

// saveNow writes the state file; a failure is counted and reported in
// status (writeState), and retried by the next saveIfChanged.
func (n *Node) saveNow() {
	if n.opts.StateFile == "" {
		return
	}
	n.saveMu.Lock()
	defer n.saveMu.Unlock()
	snap := n.snap.Load()
	version := n.set.Version()
	n.mu.Lock()
	st := n.persistedLocked(n.set.Records(), n.corrupt)
	n.mu.Unlock()
	if err := n.writeState(st); err == nil {
		n.savedSet.Store(version)
		if snap != nil {
			n.savedSerial.Store(snap.Serial)
		}
	}
}

// persistedLocked is the state to save with override records recs and
// corrupt-file report c; n.mu is held.
func (n *Node) persistedLocked(recs []overrides.Record, c *admin.CorruptState) *persisted {
	return &persisted{Version: stateVersion, Node: n.name, SavedAt: n.now().UTC(), Overrides: recs, Engine: n.engine.Export(), Corrupt: c}
}

// writeState saves st (n.saveMu is held) and records the outcome: a
// failure counts in aagtm_node_state_save_failures_total, shows in status
// and is logged once until a save succeeds again. The error names the file
// and the cause.
func (n *Node) writeState(st *persisted) error {
	err := n.stateBlocked
	if err == nil {
		if err = saveState(n.opts.StateFile, st); err != nil {
			err = fmt.Errorf("cannot save state file %s: %w", n.opts.StateFile, err)
		}
	}
	h := &n.saveHealth
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case err != nil:
		n.saveFailures.Inc()
		h.failures++
		if h.lastErr == "" {
			n.logger.Error("state not saved: drains and forces cannot change until it is; retrying every second", "path", n.opts.StateFile, "error", err)
		}
		h.lastErr, h.lastErrAt = err.Error(), n.now().UTC()
	case h.lastErr != "":
		n.logger.Info("state saved again", "path", n.opts.StateFile, "failures", h.failures)
		h.lastErr, h.lastErrAt = "", time.Time{}
	}
	return err
}

// Reload swaps in a new, already validated config without dropping
// queries: the engine keeps the state of members that still exist.
func (n *Node) Reload(cfg *config.Config) error {
	if _, ok := cfg.Node(n.name); !ok {
		return fmt.Errorf("the new config no longer lists node %q: keeping the old config", n.name)
	}
	token, err := readAdminToken(cfg)
	if err != nil {
		return fmt.Errorf("keeping the old config: %w", err)
	}
	cookieSecrets, err := readCookieSecrets(cfg)
	if err != nil {
		return fmt.Errorf("keeping the old config: %w", err)
	}
	peers, err := peersOf(cfg, n.name, token)
	if err != nil {
		return fmt.Errorf("keeping the old config: %w", err)
	}
	// Last of the checks: past it, the new config is applied.
	if err := n.ingest.Reconfigure(cfg); err != nil {
		return fmt.Errorf("report ingest rejects the new config, keeping the old one: %w", err)
	}
	old := n.cfg.Load()
	n.admin.SetAuth(token, cfg.Security.Insecure)
	n.syncer.SetPeers(peers)
	n.dns.SetRateLimit(cfg.DNS.RateLimit)
	n.dns.SetMaxUDPSize(cfg.DNS.MaxUDPSize)
	n.dns.SetCookieSecrets(cookieSecrets)
	n.dns.SetUDPAmplificationLimit(cfg.DNS.UDPAmplificationLimit)
	if restart := config.RestartNeeded(old, cfg, n.name); len(restart) > 0 {
		n.logger.Warn("some changed settings take effect only after a restart", "settings", strings.Join(restart, ", "))
	}
	n.mu.Lock()
	n.engine.Reconfigure(cfg)
	n.mu.Unlock()
	n.cfg.Store(cfg)
	n.evaluate()
	return nil
}

// readCookieSecrets reads the DNS Cookies secrets; nil when no file is
// configured (the DNS server then makes its own).
func readCookieSecrets(cfg *config.Config) ([][16]byte, error) {
	if cfg.DNS.CookieSecretFile == "" {
		return nil, nil
	}
	secrets, err := config.ReadCookieSecrets(cfg.DNS.CookieSecretFile)
	if err != nil {
		return nil, fmt.Errorf("dns.cookie_secret_file: %w", err)
	}
	return secrets, nil
}

// readAdminToken reads the token that mutating admin calls need.
func readAdminToken(cfg *config.Config) (string, error) {
	if cfg.Security.AdminTokenFile == "" {
		return "", nil
	}
	return config.ReadToken("security.admin_token_file", cfg.Security.AdminTokenFile)
}

// Snapshot returns the current decision.
func (n *Node) Snapshot() *policy.Snapshot { return n.snap.Load() }

// Config returns the config in force.
func (n *Node) Config() *config.Config { return n.cfg.Load() }

// Ready reports whether the node serves its listeners.
func (n *Node) Ready() bool { return n.ready.Load() }

// Agents returns every configured agent's report connection to this node
// (admin.AgentLister), sorted by ID: agents that never reported are listed
// disconnected.
func (n *Node) Agents() []admin.AgentStatus {
	known := map[string]ingest.AgentStatus{}
	for _, a := range n.ingest.Agents() {
		known[a.ID] = a
	}
	cfg := n.cfg.Load()
	out := make([]admin.AgentStatus, 0, len(cfg.Agents))
	for _, ag := range cfg.Agents { // sorted by ID by the loader
		a, ok := known[ag.ID]
		if !ok {
			a = ingest.AgentStatus{ID: ag.ID, Region: ag.Region}
		}
		out = append(out, admin.AgentStatus{
			ID: a.ID, Region: a.Region, Connected: a.Connected, Streams: a.Streams, StreamSince: a.StreamSince,
			Remote: a.Remote, LastSeen: a.LastSeen, BootID: a.BootID, LastSeq: a.LastSeq, ConfigHash: a.ConfigHash,
			Accepted: a.Accepted, Refused: a.Refused, Dropped: a.Dropped,
			LastRefusal: a.LastRefusal, LastRefusalAt: a.LastRefusalAt,
		})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// saveHealth is the outcome of the node's recent state saves, for status.
type saveHealth struct {
	mu        sync.Mutex
	failures  uint64
	lastErr   string // "" after a successful save
	lastErrAt time.Time
}

// stateCorrupt reports whether an unusable state file found at start is
// still unacknowledged.
func (n *Node) stateCorrupt() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.corrupt != nil
}

// StateStatus reports the state file's health (admin.StateKeeper); nil
// without a state file.
func (n *Node) StateStatus() *admin.StateStatus {
	if n.opts.StateFile == "" {
		return nil
	}
	st := &admin.StateStatus{Path: n.opts.StateFile}
	n.saveHealth.mu.Lock()
	st.SaveFailures, st.LastSaveError, st.LastSaveErrorAt = n.saveHealth.failures, n.saveHealth.lastErr, n.saveHealth.lastErrAt
	n.saveHealth.mu.Unlock()
	n.mu.Lock()
	if n.corrupt != nil {
		c := *n.corrupt
		st.Corrupt = &c
	}
	n.mu.Unlock()
	return st
}

// AckCorruptState clears the report of an unusable state file
// (admin.StateKeeper) once the clearance is saved; without a state file
// there is nothing to acknowledge.
func (n *Node) AckCorruptState() (*admin.CorruptState, error) {
	if n.opts.StateFile == "" {
		return nil, nil
	}
	n.saveMu.Lock()
	defer n.saveMu.Unlock()
	n.mu.Lock()
	c := n.corrupt
	st := n.persistedLocked(n.set.Records(), nil)
	n.mu.Unlock()
	if c == nil {
		return nil, nil
	}
	if err := n.writeState(st); err != nil {
		return nil, fmt.Errorf("not acknowledged: %w", err)
	}
	n.mu.Lock()
	n.corrupt = nil
	n.mu.Unlock()
	n.logger.Info("unusable state file acknowledged by operator", "moved_to", c.MovedTo, "found_at", c.At)
	return c, nil
}
