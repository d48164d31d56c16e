package overrides

import (
	"context"

	"sort"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
)

// ExchangeEvery is how often a node exchanges its set with every peer,
// besides at once after each change.
const ExchangeEvery = 2 * time.Second

// ExchangeTimeout bounds one exchange with one peer.
const ExchangeTimeout = 2 * time.Second

// failureLogEvery bounds how often a peer's failing exchanges are logged.
const failureLogEvery = time.Minute

// Peer is another node of the NS set, as the caller reaches it.
type Peer interface {
	// Name is the peer's node name.
	Name() string
	// Exchange sends this node's records, as node from, and returns the
	// peer's records after it merged them (push and pull in one round
	// trip). It must authenticate: the peer refuses an exchange without
	// the admin token.
	Exchange(ctx context.Context, from string, recs []Record) ([]Record, error)
}

// PeerStatus is what this node knows of a peer's copy of the set.
type PeerStatus struct {
	// Name is the peer's node name.
	Name string `json:"name"`
	// LastExchange is when the last exchange with it (either way)
	// succeeded; zero if none has.
	LastExchange time.Time `json:"last_exchange,omitzero"`
	// LastError is the error of the last exchange this node started, when
	// it failed; empty once one succeeds again.
	LastError string `json:"last_error,omitempty"`
	// Failures counts the exchanges with it that failed since the node
	// started.
	Failures uint64 `json:"failures"`
	// Known maps each key to the stamp of the peer's record of it at
	// LastExchange.
	Known map[string]Stamp `json:"-"`
}

// Has reports whether the peer held r itself at the last exchange.
func (p PeerStatus) Has(r Record) bool {
	s, ok := p.Known[r.Key()]
	return ok && s == r.Stamp
}

// Syncer keeps a node's set in step with its peers: it exchanges the whole
// set with every peer every ExchangeEvery and at once after Notify, merges
// what it receives both ways, and collects old tombstones.
type Syncer struct {
	set      *Set
	self     string
	logger   hclog.Logger
	onChange func(changed []Record, from string)
	notify   chan struct{}

	exchanges *prometheus.CounterVec

	mu    sync.Mutex
	peers []Peer
	state map[string]*peerState
}

// peerState is a peer's status plus what the logs said about it.
type peerState struct {
	PeerStatus
	loggedAt   time.Time // last failure logged
	suppressed int       // failures not logged since
}

// NewSyncer returns the syncer of node self's set. onChange is called
// (outside any lock of the syncer) with the records that an exchange
// changed and the peer they came from. reg receives
// aagtm_overrides_exchanges_total; nil registers nothing.
func NewSyncer(set *Set, self string, peers []Peer, logger hclog.Logger, reg prometheus.Registerer, onChange func([]Record, string)) *Syncer {
	s := &Syncer{
		set:      set,
		self:     self,
		logger:   logger.Named("overrides"),
		onChange: onChange,
		notify:   make(chan struct{}, 1),
		state:    map[string]*peerState{},
		exchanges: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "aagtm_overrides_exchanges_total",
			Help: "Exchanges of the override set this node started with each peer node, by result (ok or error).",
		}, []string{"peer", "result"}),
	}
	if reg != nil {
		reg.MustRegister(s.exchanges)
	}
	s.SetPeers(peers)
	return s
}

// SetPeers replaces the peers (a config reload); the status of peers that
// remain is kept.
func (s *Syncer) SetPeers(peers []Peer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.peers = peers
	next := map[string]*peerState{}
	for _, p := range peers {
		st, ok := s.state[p.Name()]
		if !ok {
			st = &peerState{PeerStatus: PeerStatus{Name: p.Name()}}
		}
		next[p.Name()] = st
	}
	s.state = next
}

// Notify asks for an exchange with every peer now (a local change).
func (s *Syncer) Notify() {
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

// Pull exchanges with every peer once, concurrently, and returns when all
// have answered or failed (each bounded by ExchangeTimeout) or ctx ends:
// a starting node calls it before it serves. It returns how many peers
// answered.
func (s *Syncer) Pull(ctx context.Context) int {
	return s.exchangeAll(ctx)
}

// Run exchanges with every peer every ExchangeEvery and after each Notify,
// until ctx is cancelled.
func (s *Syncer) Run(ctx context.Context) {
	tick := time.NewTicker(ExchangeEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			s.set.Collect(s.set.clock.now())
		case <-s.notify:
		}
		s.exchangeAll(ctx)
	}
}

// exchangeAll exchanges with every peer concurrently and returns how many
// answered.
func (s *Syncer) exchangeAll(ctx context.Context) int {
	s.mu.Lock()
	peers := append([]Peer(nil), s.peers...)
	s.mu.Unlock()
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok := 0
	for _, p := range peers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if s.exchange(ctx, p) == nil {
				mu.Lock()
				ok++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return ok
}

// exchange sends the set to p and merges its reply.
func (s *Syncer) exchange(ctx context.Context, p Peer) error {
	cctx, cancel := context.WithTimeout(ctx, ExchangeTimeout)
	defer cancel()
	reply, err := p.Exchange(cctx, s.self, s.set.Records())
	if err != nil {
		if ctx.Err() == nil {
			s.failed(p.Name(), err)
		}
		return err
	}
	changed, merr := s.set.Merge(reply...)
	if merr != nil {
		s.logger.Warn("peer sent invalid override records: skipped", "peer", p.Name(), "error", merr)
	}
	s.exchanges.WithLabelValues(p.Name(), "ok").Inc()
	s.succeeded(p.Name(), reply)
	s.changed(changed, p.Name())
	return nil
}

// Receive is the server side of an exchange: it merges the records peer
// from sent and returns this node's records after the merge, which the
// peer merges in turn.
func (s *Syncer) Receive(from string, recs []Record) ([]Record, error) {
	changed, err := s.set.Merge(recs...)
	if err != nil {
		s.logger.Warn("peer sent invalid override records: skipped", "peer", from, "error", err)
	}
	reply := s.set.Records()
	s.succeeded(from, reply)
	s.changed(changed, from)
	return reply, nil
}

// changed reports records a peer brought and spreads them on to the other
// peers at once.
func (s *Syncer) changed(changed []Record, from string) {
	if len(changed) == 0 {
		return
	}
	if s.onChange != nil {
		s.onChange(changed, from)
	}
	s.Notify()
}

// succeeded records that peer holds recs (its reply, or ours after a merge
// it will make) and logs the end of a failing spell.
func (s *Syncer) succeeded(peer string, recs []Record) {
	known := make(map[string]Stamp, len(recs))
	for _, r := range recs {
		known[r.Key()] = r.Stamp
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.state[peer]
	if !ok {
		return // not a configured peer (the CLI, a removed node)
	}
	if st.LastError != "" {
		s.logger.Info("override exchange with peer works again", "peer", peer, "failures", st.suppressed+1)
	}
	st.LastExchange, st.LastError, st.Known, st.suppressed, st.loggedAt = s.set.clock.now().UTC(), "", known, 0, time.Time{}
}

// failed records a failed exchange with peer; failures are logged at most
// once per failureLogEvery per peer, with the count of those not logged.
func (s *Syncer) failed(peer string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.exchanges.WithLabelValues(peer, "error").Inc()
	st, ok := s.state[peer]
	if !ok {
		return
	}
	st.Failures++
	st.LastError = err.Error()
	now := s.set.clock.now()
	if !st.loggedAt.IsZero() && now.Sub(st.loggedAt) < failureLogEvery {
		st.suppressed++
		return
	}
	s.logger.Warn("override exchange with peer failed: it converges once reachable", "peer", peer, "error", err,
		"failures_not_logged", st.suppressed)
	st.loggedAt, st.suppressed = now, 0
}

// Peers returns the status of every peer, by name.
func (s *Syncer) Peers() []PeerStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]PeerStatus, 0, len(s.state))
	for _, st := range s.state {
		ps := st.PeerStatus
		ps.Known = make(map[string]Stamp, len(st.Known))
		for k, v := range st.Known {
			ps.Known[k] = v
		}
		out = append(out, ps)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
