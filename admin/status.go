package admin

import (
	"slices"
	"sort"
	"time"

	"github.com/aagtm/aagtm/config"
	"github.com/aagtm/aagtm/policy"
)

// Status is one node's view, as served by GET /v1/status and decoded by
// Client.Status. Durations are float seconds in fields ending in _seconds;
// times are RFC 3339 and omitted when unknown.
type Status struct {
	// Node is the answering node's name.
	Node string `json:"node"`
	// Generated is when the node's current snapshot was evaluated.
	Generated time.Time `json:"generated,omitzero"`
	// Serial is the snapshot serial: it increases whenever answers change.
	Serial uint64 `json:"serial"`
	// ConfigHash identifies the node's effective config; nodes that
	// disagree run different configs.
	ConfigHash string `json:"config_hash,omitempty"`
	// Zone is the zone the node is authoritative for.
	Zone string `json:"zone,omitempty"`
	// Ready mirrors /readyz.
	Ready bool `json:"ready"`
	// Members are the members in config order (databases by name, members
	// as in the file).
	Members []MemberStatus `json:"members"`
	// Answers are the current answers, by database then client region.
	Answers []AnswerStatus `json:"answers"`
	// Events are the recent answer changes, oldest first.
	Events []EventStatus `json:"events"`
	// Overrides are the operator overrides in force on this node.
	Overrides OverrideStatus `json:"overrides"`
	// Agents are the configured probe agents and their report
	// connections to this node, by ID (empty when the backend does not
	// know them).
	Agents []AgentStatus `json:"agents"`
	// State is the health of the node's state file (save failures, a
	// corrupt file found at start); absent without a state file.
	State *StateStatus `json:"state,omitempty"`
	// Peers are the node's override exchanges with the other nodes, by
	// name.
	Peers []PeerSync `json:"peers,omitempty"`
}

// MemberStatus is one member's health as the node sees it.
type MemberStatus struct {
	// Name, Database and Region identify the member.
	Name     string `json:"name"`
	Database string `json:"database"`
	Region   string `json:"region"`
	// Verdict is the quorum verdict: up or down.
	Verdict string `json:"verdict"`
	// Since is when the verdict last changed.
	Since time.Time `json:"since,omitzero"`
	// Reason is the member's state in one line, as answer reasons say it:
	// "down: timeout (3/3 vantages)", "up, no fresh vantage since T: last
	// verdict kept, ...".
	Reason string `json:"reason"`
	// DownOutcome is, while down, the most frequent check outcome among
	// the down votes (timeout, unreachable, auth, loading, ...).
	DownOutcome string `json:"down_outcome,omitempty"`
	// Voting is how many vantages vote (fresh, with rise passes or fall
	// failures of evidence); DownVotes how many of them say down.
	Voting    int `json:"voting"`
	DownVotes int `json:"down_votes"`
	// FailStatic is true when too few vantages vote for the quorum to
	// decide: Verdict is the last one decided, kept.
	FailStatic bool `json:"fail_static"`
	// NoFreshSince is, while FailStatic, the last time the quorum could
	// decide (omitted: never since the node started).
	NoFreshSince time.Time `json:"no_fresh_since,omitzero"`
	// LagSeconds is the replication lag (the max over source regions);
	// meaningful only when LagKnown.
	LagSeconds float64 `json:"lag_seconds"`
	// LagKnown is false while no lag has been measured.
	LagKnown bool `json:"lag_known"`
	// LagBySourceSeconds is the last lag behind each source region.
	LagBySourceSeconds map[string]float64 `json:"lag_by_source_seconds,omitempty"`
	// Lagging is true when the lag exceeds the database's lag_tolerance.
	Lagging bool `json:"lagging"`
	// Drained is true when an operator drained the member.
	Drained bool `json:"drained"`
	// Forced is true when an operator forced its database to this member.
	Forced bool `json:"forced"`
	// Settled is false while the member serves its failback hold.
	Settled bool `json:"settled"`
	// HealthySince is when the member last became up and in sync.
	HealthySince time.Time `json:"healthy_since,omitzero"`
	// Vantages are the per-agent views, sorted by agent.
	Vantages []VantageStatus `json:"vantages"`
}

// VantageStatus is one probe agent's view of one member.
type VantageStatus struct {
	// Agent and Region identify the vantage.
	Agent  string `json:"agent"`
	Region string `json:"region"`
	// Verdict is the vantage's rise/fall verdict.
	Verdict string `json:"verdict"`
	// Fresh is false once the agent has sent no pass or failure of the
	// member for probes.stale_after.
	Fresh bool `json:"fresh"`
	// Voting is true when the vantage's verdict counts: fresh, with rise
	// passes or fall failures since it became fresh.
	Voting bool `json:"voting"`
	// LastOutcome is the outcome of its last round: pass, timeout,
	// unreachable, auth, loading, wrong_reply, unavailable, error or
	// not_measured.
	LastOutcome string `json:"last_outcome,omitempty"`
	// LastSeen is when its last report about the member arrived.
	LastSeen time.Time `json:"last_seen,omitzero"`
	// LastSeq is that report's sequence number.
	LastSeq uint64 `json:"last_seq"`
	// Passes and Failures are the current consecutive counts.
	Passes   int `json:"passes"`
	Failures int `json:"failures"`
	// LastError is the last failing check's text.
	LastError string `json:"last_error,omitempty"`
	// RTTSeconds is the last round-trip time.
	RTTSeconds float64 `json:"rtt_seconds"`
}

// AnswerStatus is the current answer for one database and client region.
type AnswerStatus struct {
	// Database, Host and Region say which answer this is.
	Database string `json:"database"`
	Host     string `json:"host"`
	Region   string `json:"region"`
	// Members are the answered members, most preferred first.
	Members []string `json:"members"`
	// Records are the answer records as text: "A 10.1.0.10", "CNAME x.".
	Records []string `json:"records"`
	// TTLSeconds is the records' TTL.
	TTLSeconds float64 `json:"ttl_seconds"`
	// ServFail is true when the database answers SERVFAIL.
	ServFail bool `json:"servfail"`
	// Reason explains the answer in one line (as `dig TXT _why.<host>`).
	Reason string `json:"reason"`
	// Since is when this answer started being given.
	Since time.Time `json:"since,omitzero"`
	// RegionDependent is false when every region gets the same answer.
	RegionDependent bool `json:"region_dependent"`
}

// EventStatus is one answer change: a failover, failback or change.
type EventStatus struct {
	// Kind is failover, failback or change.
	Kind string `json:"kind"`
	// Database and Region say which answer changed.
	Database string `json:"database"`
	Region   string `json:"region"`
	// From and To are the old and new first members ("" for none).
	From string `json:"from"`
	To   string `json:"to"`
	// At is when the node decided the change.
	At time.Time `json:"at,omitzero"`
	// DetectionSeconds is, for a failover, the time from the first failed
	// probe that led to the down verdict until At.
	DetectionSeconds float64 `json:"detection_seconds,omitempty"`
	// RPOEstimateSeconds is the last lag seen of To behind From's region;
	// meaningful only when RPOKnown.
	RPOEstimateSeconds float64 `json:"rpo_estimate_seconds"`
	// RPOKnown is false when that lag was never measured.
	RPOKnown bool `json:"rpo_known"`
	// Reason explains the change in one line.
	Reason string `json:"reason"`
}

// OverrideStatus lists the operator overrides in force.
type OverrideStatus struct {
	// Drained are the drained members, sorted.
	Drained []string `json:"drained"`
	// Forced maps a database to the member it is forced to.
	Forced map[string]string `json:"forced"`
	// Records are the overrides in force with who took them, why, when
	// and until when, and whether every node holds them (nodes that keep
	// a replicated set), sorted by kind and target.
	Records []OverrideRecord `json:"records,omitempty"`
}

// VantageCounts returns how many voting vantages say up, how many say
// down, and how many abstain (stale, or fresh without enough evidence yet).
func (m MemberStatus) VantageCounts() (up, down, abstain int) {
	for _, v := range m.Vantages {
		switch {
		case !v.Voting:
			abstain++
		case v.Verdict == string(policy.Down):
			down++
		default:
			up++
		}
	}
	return up, down, abstain
}

// MinRTT returns the smallest RTT among fresh vantages that measured one,
// and false when there is none.
func (m MemberStatus) MinRTT() (time.Duration, bool) {
	best, ok := time.Duration(0), false
	for _, v := range m.Vantages {
		if !v.Fresh || v.RTTSeconds <= 0 {
			continue
		}
		d := fromSeconds(v.RTTSeconds)
		if !ok || d < best {
			best, ok = d, true
		}
	}
	return best, ok
}

// NewStatus builds the Status document from a snapshot, the config in force
// and the overrides. snap and cfg may be nil (a node that has not evaluated
// yet); Ready is left false for the caller to set.
func NewStatus(node string, snap *policy.Snapshot, cfg *config.Config, ov policy.Overrides) *Status {
	st := &Status{
		Node:      node,
		Members:   []MemberStatus{},
		Answers:   []AnswerStatus{},
		Events:    []EventStatus{},
		Overrides: newOverrideStatus(ov),
		Agents:    []AgentStatus{},
	}
	if cfg != nil {
		st.ConfigHash, st.Zone = cfg.Hash, cfg.Zone.Name
	}
	if snap == nil {
		return st
	}
	st.Generated, st.Serial = snap.Generated, snap.Serial
	for _, name := range memberOrder(snap, cfg) {
		st.Members = append(st.Members, newMemberStatus(snap.Members[name], ov))
	}
	hosts := make([]*policy.HostAnswers, 0, len(snap.Hosts))
	for _, h := range snap.Hosts {
		hosts = append(hosts, h)
	}
	sort.Slice(hosts, func(i, j int) bool {
		if hosts[i].Database != hosts[j].Database {
			return hosts[i].Database < hosts[j].Database
		}
		return hosts[i].Host < hosts[j].Host
	})
	for _, h := range hosts {
		regions := make([]string, 0, len(h.ByRegion))
		for r := range h.ByRegion {
			regions = append(regions, r)
		}
		sort.Strings(regions)
		for _, r := range regions {
			st.Answers = append(st.Answers, newAnswerStatus(h, r, h.ByRegion[r]))
		}
	}
	for _, e := range snap.Recent {
		st.Events = append(st.Events, newEventStatus(e))
	}
	return st
}

// memberOrder lists the snapshot's members in config order, then any the
// config does not know (a snapshot older than a reload) by name.
func memberOrder(snap *policy.Snapshot, cfg *config.Config) []string {
	out := make([]string, 0, len(snap.Members))
	seen := map[string]bool{}
	if cfg != nil {
		for _, d := range cfg.Databases {
			for _, m := range d.Members {
				if _, ok := snap.Members[m.Name]; ok && !seen[m.Name] {
					out = append(out, m.Name)
					seen[m.Name] = true
				}
			}
		}
	}
	var rest []string
	for name, m := range snap.Members {
		if !seen[name] && m != nil {
			rest = append(rest, name)
		}
	}
	sort.Slice(rest, func(i, j int) bool {
		a, b := snap.Members[rest[i]], snap.Members[rest[j]]
		if a.Database != b.Database {
			return a.Database < b.Database
		}
		return rest[i] < rest[j]
	})
	return append(out, rest...)
}

func newMemberStatus(m *policy.MemberStatus, ov policy.Overrides) MemberStatus {
	ms := MemberStatus{
		Name:         m.Name,
		Database:     m.Database,
		Region:       m.Region,
		Verdict:      string(m.Verdict),
		Since:        m.Since,
		Reason:       m.Reason,
		DownOutcome:  string(m.DownOutcome),
		Voting:       m.Voting,
		DownVotes:    m.DownVotes,
		FailStatic:   m.FailStatic,
		NoFreshSince: m.NoFreshSince,
		LagSeconds:   m.Lag.Seconds(),
		LagKnown:     m.LagKnown,
		Lagging:      m.Lagging,
		Drained:      m.Drained || ov.Drained[m.Name],
		Forced:       m.Database != "" && ov.Forced[m.Database] == m.Name,
		Settled:      m.Settled,
		HealthySince: m.HealthySince,
		Vantages:     make([]VantageStatus, 0, len(m.Vantages)),
	}
	if len(m.LagBySource) > 0 {
		ms.LagBySourceSeconds = make(map[string]float64, len(m.LagBySource))
		for src, d := range m.LagBySource {
			ms.LagBySourceSeconds[src] = d.Seconds()
		}
	}
	for _, v := range m.Vantages {
		ms.Vantages = append(ms.Vantages, VantageStatus{
			Agent:       v.Agent,
			Region:      v.Region,
			Verdict:     string(v.Verdict),
			Fresh:       v.Fresh,
			Voting:      v.Voting,
			LastOutcome: string(v.LastOutcome),
			LastSeen:    v.LastSeen,
			LastSeq:     v.LastSeq,
			Passes:      v.Passes,
			Failures:    v.Failures,
			LastError:   v.LastError,
			RTTSeconds:  v.RTT.Seconds(),
		})
	}
	return ms
}

func newAnswerStatus(h *policy.HostAnswers, region string, a *policy.Answer) AnswerStatus {
	as := AnswerStatus{Database: h.Database, Host: h.Host, Region: region, Members: []string{}, Records: []string{}}
	if a == nil {
		return as
	}
	as.Members = append(as.Members, a.Members...)
	for _, rec := range a.Records {
		as.Records = append(as.Records, recordText(rec))
	}
	as.TTLSeconds = a.TTL.Seconds()
	as.ServFail = a.ServFail
	as.Reason = a.Reason
	as.Since = a.Since
	as.RegionDependent = a.RegionDependent
	return as
}

func recordText(r policy.Record) string {
	switch r.Kind {
	case policy.RecordA:
		return "A " + r.Addr.String()
	case policy.RecordAAAA:
		return "AAAA " + r.Addr.String()
	case policy.RecordCNAME:
		return "CNAME " + r.Target
	default:
		return "? " + r.Member
	}
}

func newEventStatus(e policy.Event) EventStatus {
	return EventStatus{
		Kind:               string(e.Kind),
		Database:           e.Database,
		Region:             e.Region,
		From:               e.From,
		To:                 e.To,
		At:                 e.At,
		DetectionSeconds:   e.Detection.Seconds(),
		RPOEstimateSeconds: e.RPOEstimate.Seconds(),
		RPOKnown:           e.RPOKnown,
		Reason:             e.Reason,
	}
}

func newOverrideStatus(ov policy.Overrides) OverrideStatus {
	out := OverrideStatus{Drained: []string{}, Forced: map[string]string{}}
	for m, on := range ov.Drained {
		if on {
			out.Drained = append(out.Drained, m)
		}
	}
	slices.Sort(out.Drained)
	for db, m := range ov.Forced {
		if m != "" {
			out.Forced[db] = m
		}
	}
	return out
}

// fromSeconds converts float seconds from the JSON back to a Duration.
func fromSeconds(s float64) time.Duration {
	return time.Duration(s * float64(time.Second))
}
