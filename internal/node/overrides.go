package node

import (
	"context"
	"fmt"
	"time"

	"github.com/aagtm/aagtm/admin"
	"github.com/aagtm/aagtm/config"
	"github.com/aagtm/aagtm/overrides"
	"github.com/aagtm/aagtm/policy"
)

// pullTimeout bounds the exchange with the peers before a starting node
// serves: peers that are down answer at once (connection refused), peers
// behind a partition within overrides.ExchangeTimeout.
const pullTimeout = overrides.ExchangeTimeout + 500*time.Millisecond

// adminPeer is another node reached through its admin API, with this
// node's admin token.
type adminPeer struct {
	name string
	c    *admin.Client
}

func (p adminPeer) Name() string { return p.name }

func (p adminPeer) Exchange(ctx context.Context, from string, recs []overrides.Record) ([]overrides.Record, error) {
	return p.c.ExchangeOverrides(ctx, from, recs)
}

// peersOf returns every node of cfg but self, as override exchange peers.
func peersOf(cfg *config.Config, self, token string) ([]overrides.Peer, error) {
	var peers []overrides.Peer
	for _, nd := range cfg.Nodes {
		if nd.Name == self {
			continue
		}
		c, err := admin.NodeClient(nd, token)
		if err != nil {
			return nil, fmt.Errorf("override exchange with node %s: %w", nd.Name, err)
		}
		peers = append(peers, adminPeer{name: nd.Name, c: c})
	}
	return peers, nil
}

// pullOverrides merges the other nodes' override sets before the node
// serves, so that a node that was down, or lost its state file, starts
// with the overrides every other node has.
func (n *Node) pullOverrides(ctx context.Context) {
	peers := n.syncer.Peers()
	if len(peers) == 0 {
		return
	}
	pctx, cancel := context.WithTimeout(ctx, pullTimeout)
	defer cancel()
	start := time.Now()
	answered := n.syncer.Pull(pctx)
	n.logger.Info("pulled the override set from the other nodes", "answered", answered, "peers", len(peers),
		"in_force", len(n.set.InForce(n.now())), "took", time.Since(start).Round(time.Millisecond))
}

// policyOverrides is the overrides in force as policy takes them.
func policyOverrides(inForce []overrides.Record) policy.Overrides {
	ov := policy.Overrides{Drained: map[string]bool{}, Forced: map[string]string{}}
	for _, r := range inForce {
		switch r.Kind {
		case overrides.Drain:
			ov.Drained[r.Target] = true
		case overrides.Force:
			ov.Forced[r.Target] = r.Member
		}
	}
	return ov
}

// logExpired logs the overrides in force at the last evaluation whose
// expiry has come (n.evalMu is held) and remembers inForce.
func (n *Node) logExpired(now time.Time, inForce []overrides.Record) {
	for _, r := range n.inForce {
		if !r.Expires.IsZero() && !now.Before(r.Expires) {
			n.logger.Info("override expired", recordArgs(r)...)
		}
	}
	n.inForce = inForce
}

// recordArgs are the log key/values of an override record.
func recordArgs(r overrides.Record) []any {
	args := []any{"override", r.Describe(), "taken_by", r.Stamp.Node, "at", r.Stamp.Time().Format(time.RFC3339Nano), "who", r.Who}
	if r.Reason != "" {
		args = append(args, "reason", r.Reason)
	}
	if !r.Expires.IsZero() {
		args = append(args, "expires", r.Expires.UTC().Format(time.RFC3339Nano))
	}
	return args
}

// peerChanged is the syncer's report of records a peer brought: each is
// logged, the decision re-evaluated at once, and the state file updated by
// the loop's next save.
func (n *Node) peerChanged(changed []overrides.Record, from string) {
	for _, r := range changed {
		n.logger.Info("override learnt from peer", append(recordArgs(r), "from", from)...)
	}
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

// migrate turns the overrides of a version 1 state file into records
// taken by this node now.
func (n *Node) migrate(old policy.Overrides) []overrides.Record {
	var recs []overrides.Record
	for m, on := range old.Drained {
		if on {
			recs = append(recs, n.set.Stamp(overrides.Record{Kind: overrides.Drain, Target: m, Who: admin.WhoLocal, Reason: "from a version 1 state file"}))
		}
	}
	for db, m := range old.Forced {
		if m != "" {
			recs = append(recs, n.set.Stamp(overrides.Record{Kind: overrides.Force, Target: db, Member: m, Who: admin.WhoLocal, Reason: "from a version 1 state file"}))
		}
	}
	return recs
}

// Overrides returns the overrides in force now (admin.Backend).
func (n *Node) Overrides() policy.Overrides { return policyOverrides(n.set.InForce(n.now())) }

// OverrideRecords returns the overrides in force now, with who took them,
// why and until when (admin.ReplicatedOverrides).
func (n *Node) OverrideRecords() []overrides.Record { return n.set.InForce(n.now()) }

// OverridePeers returns what the node knows of the other nodes' sets
// (admin.ReplicatedOverrides).
func (n *Node) OverridePeers() []overrides.PeerStatus { return n.syncer.Peers() }

// ExchangeOverrides serves another node's exchange (admin.ReplicatedOverrides).
func (n *Node) ExchangeOverrides(from string, recs []overrides.Record) ([]overrides.Record, error) {
	return n.syncer.Receive(from, recs)
}

// Drain marks a member drained: answered only when nothing else is eligible.
func (n *Node) Drain(member string, c admin.Change) error {
	return n.change(overrides.Record{Kind: overrides.Drain, Target: member}, c, func(cfg *config.Config) error {
		return memberExists(cfg, member)
	})
}

// Undrain clears a drain.
func (n *Node) Undrain(member string, c admin.Change) error {
	return n.change(overrides.Record{Kind: overrides.Drain, Target: member, Removed: true}, c, func(cfg *config.Config) error {
		return memberExists(cfg, member)
	})
}

// Force answers member to every client of db, whatever its health.
func (n *Node) Force(db, member string, c admin.Change) error {
	return n.change(overrides.Record{Kind: overrides.Force, Target: db, Member: member}, c, func(cfg *config.Config) error {
		d, ok := cfg.Database(db)
		if !ok {
			return fmt.Errorf("%w: database %q", admin.ErrNotFound, db)
		}
		for _, m := range d.Members {
			if m.Name == member {
				return nil
			}
		}
		return fmt.Errorf("%w: %q is not a member of database %s", admin.ErrBadRequest, member, db)
	})
}

// Unforce returns db to health-based answers.
func (n *Node) Unforce(db string, c admin.Change) error {
	return n.change(overrides.Record{Kind: overrides.Force, Target: db, Removed: true}, c, func(cfg *config.Config) error {
		if _, ok := cfg.Database(db); !ok {
			return fmt.Errorf("%w: database %q", admin.ErrNotFound, db)
		}
		return nil
	})
}

func memberExists(cfg *config.Config, member string) error {
	if _, _, ok := cfg.Member(member); !ok {
		return fmt.Errorf("%w: member %q", admin.ErrNotFound, member)
	}
	return nil
}

// change takes rec as a change of this node: stamped, persisted with the
// set, and only then merged, evaluated, logged and sent to the other
// nodes. A change that cannot be saved is not applied at all (the error
// names the state file and the cause, a 500), so what the API reports,
// what DNS serves and what survives a restart never disagree.
func (n *Node) change(rec overrides.Record, c admin.Change, validate func(*config.Config) error) error {
	if err := validate(n.cfg.Load()); err != nil {
		return err
	}
	rec.Who, rec.Reason = c.Who, c.Reason
	if rec.Who == "" {
		rec.Who = admin.WhoLocal // called in process (tests, demo)
	}
	n.saveMu.Lock()
	defer n.saveMu.Unlock()
	rec = n.set.Stamp(rec)
	if c.For > 0 {
		rec.Expires = n.now().Add(c.For).UTC()
	}
	if n.opts.StateFile != "" {
		n.mu.Lock()
		st := n.persistedLocked(n.set.With(rec), n.corrupt)
		n.mu.Unlock()
		if err := n.writeState(st); err != nil {
			return fmt.Errorf("not applied: %w", err)
		}
	}
	if _, err := n.set.Merge(rec); err != nil {
		return fmt.Errorf("not applied: %w", err)
	}
	n.logger.Info("override changed by operator", recordArgs(rec)...)
	n.evaluate()
	n.syncer.Notify()
	return nil
}
