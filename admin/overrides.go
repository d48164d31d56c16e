package admin

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/aagtm/aagtm/overrides"
)

// ReplicatedOverrides is implemented by a Backend whose overrides are a
// replicated set (package overrides): the status then lists each override
// with who, why, when, expiry and which nodes hold it, and POST
// /v1/overrides/exchange serves the other nodes' exchanges.
type ReplicatedOverrides interface {
	// OverrideRecords returns the overrides in force, sorted by key.
	OverrideRecords() []overrides.Record
	// OverridePeers returns what the node knows of each peer's copy.
	OverridePeers() []overrides.PeerStatus
	// ExchangeOverrides merges the records peer node from sent and
	// returns the node's records after the merge.
	ExchangeOverrides(from string, recs []overrides.Record) ([]overrides.Record, error)
}

// ExchangeRequest is the JSON body of POST /v1/overrides/exchange: a
// node's whole override set.
type ExchangeRequest struct {
	// From is the sending node's name, as in the config.
	From string `json:"from"`
	// Records are its records, tombstones included.
	Records []overrides.Record `json:"records"`
}

// ExchangeReply is the reply of POST /v1/overrides/exchange: the
// receiving node's set after merging the request's.
type ExchangeReply struct {
	// Node is the replying node.
	Node string `json:"node"`
	// Records are its records after the merge.
	Records []overrides.Record `json:"records"`
}

// OverrideRecord is one override in force, in GET /v1/status.
type OverrideRecord struct {
	// Kind is drain or force; Target the drained member or the forced
	// database; Member, for a force, the member answered.
	Kind   string `json:"kind"`
	Target string `json:"target"`
	Member string `json:"member,omitempty"`
	// Node is the node that took the change; At when (its hybrid clock).
	Node string    `json:"node"`
	At   time.Time `json:"at"`
	// Who asked ("admin-token" or "local") and why.
	Who    string `json:"who"`
	Reason string `json:"reason,omitempty"`
	// Expires is when the override ends on every node; omitted: never.
	Expires time.Time `json:"expires,omitzero"`
	// Everywhere is true when every other node held this very record at
	// its last exchange with this node.
	Everywhere bool `json:"everywhere"`
	// Missing lists the nodes not known to hold it yet.
	Missing []string `json:"missing,omitempty"`
}

// PeerSync is this node's exchange of overrides with one other node, in
// GET /v1/status.
type PeerSync struct {
	// Node is the peer's name.
	Node string `json:"node"`
	// LastExchange is when the last exchange with it succeeded.
	LastExchange time.Time `json:"last_exchange,omitzero"`
	// LastError is the error of the last exchange this node started, when
	// it failed.
	LastError string `json:"last_error,omitempty"`
	// Failures counts failed exchanges since the node started.
	Failures uint64 `json:"failures"`
}

// overrideStatus is the backend's overrides in force, with their records
// when it keeps a replicated set.
func (s *Server) overrideStatus() OverrideStatus {
	st := newOverrideStatus(s.b.Overrides())
	ro, ok := s.b.(ReplicatedOverrides)
	if !ok {
		return st
	}
	peers := ro.OverridePeers()
	for _, r := range ro.OverrideRecords() {
		or := OverrideRecord{Kind: string(r.Kind), Target: r.Target, Member: r.Member, Node: r.Stamp.Node, At: r.Stamp.Time(),
			Who: r.Who, Reason: r.Reason, Expires: r.Expires, Everywhere: true}
		for _, p := range peers {
			if !p.Has(r) {
				or.Everywhere = false
				or.Missing = append(or.Missing, p.Name)
			}
		}
		st.Records = append(st.Records, or)
	}
	return st
}

func peerStatuses(ps []overrides.PeerStatus) []PeerSync {
	out := make([]PeerSync, 0, len(ps))
	for _, p := range ps {
		out = append(out, PeerSync{Node: p.Name, LastExchange: p.LastExchange, LastError: p.LastError, Failures: p.Failures})
	}
	return out
}

// exchange serves POST /v1/overrides/exchange: authenticated as every
// mutating call (Host, Content-Type, admin token).
func (s *Server) exchange(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.admit(w, r, "exchange"); !ok {
		return
	}
	ro, ok := s.b.(ReplicatedOverrides)
	if !ok {
		s.writeError(w, fmt.Errorf("%w: this node keeps no replicated override set", ErrNotFound))
		return
	}
	var req ExchangeRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		s.writeError(w, fmt.Errorf("%w: body must be JSON like {\"from\": \"ns1\", \"records\": [...]}: %v", ErrBadRequest, err))
		return
	}
	cfg := s.b.Config()
	if _, ok := cfg.Node(req.From); !ok || req.From == s.node {
		s.writeError(w, fmt.Errorf("%w: from %q is not another node of this config: exchanges are between the config's nodes", ErrBadRequest, req.From))
		return
	}
	recs, err := ro.ExchangeOverrides(req.From, req.Records)
	if err != nil {
		s.writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, ExchangeReply{Node: s.node, Records: recs})
}

// ExchangeOverrides sends node from's override records to the node and
// returns the node's records after it merged them.
func (c *Client) ExchangeOverrides(ctx context.Context, from string, recs []overrides.Record) ([]overrides.Record, error) {
	var reply ExchangeReply
	if err := c.do(ctx, http.MethodPost, "/v1/overrides/exchange", ExchangeRequest{From: from, Records: recs}, &reply); err != nil {
		return nil, err
	}
	return reply.Records, nil
}

// refusalLogEvery bounds how often refused calls of one action are
// logged.
const refusalLogEvery = 10 * time.Second

// refusalLog rate-limits the log lines of refused calls, per action.
type refusalLog struct {
	mu   sync.Mutex
	last map[string]time.Time
	n    map[string]int // refusals not logged since last
}

// allow reports whether a refusal of action at now is logged, and how many
// were not logged before it.
func (l *refusalLog) allow(action string, now time.Time) (int, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.last == nil {
		l.last, l.n = map[string]time.Time{}, map[string]int{}
	}
	if last, ok := l.last[action]; ok && now.Sub(last) < refusalLogEvery {
		l.n[action]++
		return 0, false
	}
	n := l.n[action]
	l.last[action], l.n[action] = now, 0
	return n, true
}

// missingText is the NODES cell of an override in RenderStatus.
func missingText(r OverrideRecord) string {
	if r.Everywhere {
		return "all"
	}
	return "missing on " + strings.Join(r.Missing, ",")
}
