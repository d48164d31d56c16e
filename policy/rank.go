package policy

import (
	"maps"
	"slices"
	"time"

	"github.com/aagtm/aagtm/config"
)

// RankInput is what a Ranker may use to order one database's members for
// one client region.
type RankInput struct {
	// Config is the engine's current config.
	Config *config.Config
	// Database is the database being answered.
	Database *config.Database
	// Region is the client region.
	Region string
	// RTT holds the last round-trip times measured by fresh vantages:
	// RTT[member][agent region] is the lowest of that region's agents. It
	// is filled only for a custom Ranker (nil for the default one).
	RTT map[string]map[string]time.Duration
}

// Ranker orders a database's members for a client region, nearest first,
// by name. The engine then groups the order by health (in sync, lagging,
// recovering, drained), keeping the Ranker's order within each group.
// Names the Ranker leaves out follow in the file's order; unknown and
// repeated names are ignored. A Ranker applies to nearest and all modes;
// failover mode always uses the database's global order. A Ranker must be
// deterministic and must neither modify nor keep the RankInput's maps.
type Ranker func(in RankInput) []string

// PreferenceRanker is the default Ranker: members ordered by the position of
// their region in config.Preference of the client region, ties (several
// members in one region) in the file's order.
func PreferenceRanker(in RankInput) []string {
	order := nearestOrder(in.Database, in.Config.Preference(in.Region))
	out := make([]string, len(order))
	for i, j := range order {
		out[i] = in.Database.Members[j].Name
	}
	return out
}

// nearestOrder returns the member indexes of db ordered by their region's
// position in pref; members of regions missing from pref come last. The
// sort is stable, so ties keep the file's order.
func nearestOrder(db *config.Database, pref []string) []int {
	pos := make(map[string]int, len(pref))
	for i, r := range pref {
		pos[r] = i
	}
	rank := func(i int) int {
		if p, ok := pos[db.Members[i].Region]; ok {
			return p
		}
		return len(pref)
	}
	order := fileOrder(db)
	slices.SortStableFunc(order, func(a, b int) int { return rank(a) - rank(b) })
	return order
}

// fileOrder returns 0..len(members)-1.
func fileOrder(db *config.Database) []int {
	order := make([]int, len(db.Members))
	for i := range order {
		order[i] = i
	}
	return order
}

// failoverOrder returns db's global order: Database.Order when set, then
// any member it leaves out, in the file's order.
func failoverOrder(db *config.Database) []int {
	return completeOrder(db, db.Order)
}

// completeOrder turns names into member indexes, dropping unknown and
// repeated names, then appends the members left out in the file's order.
func completeOrder(db *config.Database, names []string) []int {
	seen := make([]bool, len(db.Members))
	order := make([]int, 0, len(db.Members))
	for _, n := range names {
		if i := memberIndex(db, n); i >= 0 && !seen[i] {
			seen[i] = true
			order = append(order, i)
		}
	}
	for i := range db.Members {
		if !seen[i] {
			order = append(order, i)
		}
	}
	return order
}

// Health tiers: the lower, the earlier a member is answered. Drained members
// take their health tier plus tierDrained, so they come after every
// undrained member that is up.
const (
	tierDown              = -1 // not eligible
	tierInSync            = 0  // up, settled, in sync (or lag unknown)
	tierLagging           = 1  // up, settled, lagging
	tierRecovering        = 2  // up, serving its failback hold
	tierRecoveringLagging = 3  // up, recovering and lagging
	tierDrained           = 4  // added to the above when drained
)

// tierOf returns the ranking tier of a member.
func tierOf(m *memberState, drained bool) int {
	if m.verdict == Down {
		return tierDown
	}
	t := tierInSync
	switch {
	case !m.settled && m.lagging:
		t = tierRecoveringLagging
	case !m.settled:
		t = tierRecovering
	case m.lagging:
		t = tierLagging
	}
	if drained {
		t += tierDrained
	}
	return t
}

// rankEligible returns the members of order that are up, stably sorted by
// tier: in sync, lagging, recovering, then drained ones. Within a
// recovering tier the member healthy the longest (earliest since) comes
// first: a recovered member must not take traffic from one that has been
// healthy longer just because it is nearer, or it would get traffic back
// before its failback hold.
func rankEligible(order []int, tiers []int, since []time.Time) []int {
	out := make([]int, 0, len(order))
	for _, i := range order {
		if tiers[i] != tierDown {
			out = append(out, i)
		}
	}
	slices.SortStableFunc(out, func(a, b int) int {
		if tiers[a] != tiers[b] {
			return tiers[a] - tiers[b]
		}
		if t := tiers[a] % tierDrained; t == tierRecovering && !since[a].IsZero() && !since[b].IsZero() {
			return since[a].Compare(since[b])
		}
		return 0
	})
	return out
}

// rttView returns, per member, the lowest last RTT per agent region among
// fresh vantages, for a custom Ranker.
func (e *Engine) rttView(now time.Time) map[string]map[string]time.Duration {
	out := make(map[string]map[string]time.Duration, len(e.members))
	for _, name := range slices.Sorted(maps.Keys(e.members)) {
		m := e.members[name]
		byRegion := map[string]time.Duration{}
		for _, v := range m.byAgent {
			if !v.seen || !e.isFresh(v.lastSeen, now) {
				continue
			}
			if r, ok := byRegion[v.region]; !ok || v.rtt < r {
				byRegion[v.region] = v.rtt
			}
		}
		out[name] = byRegion
	}
	return out
}
