package policy

import (
	"net/netip"
	"strings"
	"time"
)

// Outcome classifies one check result, as the agent reported it.
type Outcome string

// The outcomes an agent reports (see api.CheckResult.outcome).
const (
	OutcomePass        Outcome = "pass"
	OutcomeTimeout     Outcome = "timeout"
	OutcomeUnreachable Outcome = "unreachable"
	OutcomeAuth        Outcome = "auth"
	OutcomeLoading     Outcome = "loading"
	OutcomeWrongReply  Outcome = "wrong_reply"
	OutcomeUnavailable Outcome = "unavailable"
	OutcomeError       Outcome = "error"
	// OutcomeNotMeasured: the agent could not run the check in time (its
	// own overload or dial budget). It says nothing about the member.
	OutcomeNotMeasured Outcome = "not_measured"
)

// vote is what a check outcome says about the member.
type vote uint8

const (
	votePass vote = iota + 1 // the member passed the check
	voteFail                 // the member failed the check
	voteNone                 // no evidence either way
)

// outcomeVotes is the one table that turns a check outcome into a vote.
// not_measured is the agent's own failure to run the check: never a
// failure, never a pass. An outcome missing from the table (empty, or one
// this node does not know) falls back on CheckResult.OK.
var outcomeVotes = map[Outcome]vote{
	OutcomePass:        votePass,
	OutcomeTimeout:     voteFail,
	OutcomeUnreachable: voteFail,
	OutcomeAuth:        voteFail,
	OutcomeLoading:     voteFail,
	OutcomeWrongReply:  voteFail,
	OutcomeUnavailable: voteFail,
	OutcomeError:       voteFail,
	OutcomeNotMeasured: voteNone,
}

// voteOf returns what one check result says about the member, and the
// outcome it counts as (OutcomePass or OutcomeError when the agent sent
// none or one unknown here).
func (c CheckResult) voteOf() (vote, Outcome) {
	if v, ok := outcomeVotes[c.Outcome]; ok {
		return v, c.Outcome
	}
	if c.OK {
		return votePass, OutcomePass
	}
	return voteFail, OutcomeError
}

// CheckResult is the outcome of one check of one member in one probe round.
type CheckResult struct {
	// Check is the check's name (ping, echo, keyspace, lag, rest, command).
	Check string
	// Outcome classifies the result; empty from an agent that does not
	// send one (then OK alone decides).
	Outcome Outcome
	// OK is true when the check passed.
	OK bool
	// Error is the failure text; empty when OK.
	Error string
	// Duration is how long the check took.
	Duration time.Duration
}

// Observation is what one vantage (probe agent) saw of one member in one
// probe round. The ingest turns each member entry of a report into one.
type Observation struct {
	// Agent is the reporting agent's ID (the vantage).
	Agent string
	// Region is the agent's region.
	Region string
	// Member is the observed member's name.
	Member string
	// Seq is the agent's report sequence number; it orders one vantage's
	// observations of a member. The ingest guarantees it strictly
	// increases per agent (it renumbers accepted reports, across agent
	// restarts); the engine still ignores one that does not, as a defence.
	Seq uint64
	// Time is when the node received the report, on the node's clock.
	Time time.Time
	// Checks holds one result per check run; see Outcome for how they make
	// the round's outcome.
	Checks []CheckResult
	// RTT is the round-trip time of the member's fastest check (PING).
	RTT time.Duration
	// Lag is the replication lag of this member behind each source region
	// (key: source region), as measured by the heartbeat method. Absent
	// when the lag check did not run or could not read a heartbeat.
	Lag map[string]time.Duration
}

// Outcome returns the round's outcome: the outcome of the first failing
// check when any check failed (OutcomeError when no check ran), else
// OutcomeNotMeasured when some check was not measured, else OutcomePass.
// Which outcomes fail is decided by one table (outcomeVotes).
func (o Observation) Outcome() Outcome {
	if len(o.Checks) == 0 {
		return OutcomeError
	}
	round := OutcomePass
	for _, c := range o.Checks {
		switch v, out := c.voteOf(); v {
		case voteFail:
			return out
		case voteNone:
			round = OutcomeNotMeasured
		}
	}
	return round
}

// Passed reports whether the round passed: every check passed.
func (o Observation) Passed() bool { return o.Outcome() == OutcomePass }

// Overrides are operator decisions that take precedence over health.
type Overrides struct {
	// Drained members are answered only when nothing else is eligible.
	Drained map[string]bool
	// Forced maps a database name to the member every client gets,
	// whatever its health.
	Forced map[string]string
}

// Verdict is a health state.
type Verdict string

// The verdicts.
const (
	// Up: healthy (or never seen failing).
	Up Verdict = "up"
	// Down: failing by rise/fall (per vantage) or quorum (per member).
	Down Verdict = "down"
)

// RecordKind is the type of an answer record.
type RecordKind uint8

// The answer record kinds.
const (
	// RecordA is an IPv4 address.
	RecordA RecordKind = iota + 1
	// RecordAAAA is an IPv6 address.
	RecordAAAA
	// RecordCNAME is an alias to a member's hostname.
	RecordCNAME
)

// Record is one answer record, ready to be encoded by the DNS server.
type Record struct {
	// Kind is A, AAAA or CNAME.
	Kind RecordKind
	// Member is the member the record points at.
	Member string
	// Addr is set for A and AAAA.
	Addr netip.Addr
	// Target is set for CNAME: an FQDN.
	Target string
}

// Answer is the precomputed answer for one hostname and one client region.
// It is immutable once in a Snapshot.
type Answer struct {
	// Records are the answer records, most preferred first. A CNAME answer
	// holds exactly one record.
	Records []Record
	// TTL is the records' TTL.
	TTL time.Duration
	// ServFail is true when the database answers SERVFAIL
	// (when_all_down: servfail with nothing eligible).
	ServFail bool
	// Members are the answered members, in order.
	Members []string
	// Reason is a one-line explanation: which member, why, its lag, since
	// when. `dig TXT _why.<host>` serves it.
	Reason string
	// Since is when this answer (its first member) started being given.
	Since time.Time
	// RegionDependent is false when every region gets the same answer
	// (failover mode, forced, all-down); the ECS scope is then 0.
	RegionDependent bool
}

// VantageState is one vantage's view of one member.
type VantageState struct {
	// Agent is the vantage's agent ID; Region its region.
	Agent  string
	Region string
	// Verdict is the vantage's rise/fall verdict; it counts only while
	// Voting.
	Verdict Verdict
	// Fresh is true while the vantage's last pass or failure is younger
	// than stale_after (not_measured rounds do not keep it fresh).
	Fresh bool
	// Voting is true when the vantage is fresh and has seen rise passes or
	// fall failures since it became fresh: only then does it vote.
	Voting bool
	// LastSeen is when its last observation arrived; LastSeq its sequence.
	LastSeen time.Time
	LastSeq  uint64
	// LastOutcome is the outcome of its last round (see
	// Observation.Outcome).
	LastOutcome Outcome
	// Passes and Failures are the current consecutive counts.
	Passes   int
	Failures int
	// LastError is the last failing check's text.
	LastError string
	// RTT is the last observed round-trip time.
	RTT time.Duration
}

// MemberStatus is the engine's view of one member.
type MemberStatus struct {
	// Name, Database and Region identify the member.
	Name     string
	Database string
	Region   string
	// Verdict is the quorum verdict.
	Verdict Verdict
	// Since is when Verdict last changed (zero: never).
	Since time.Time
	// DownOutcome is, while down, the most frequent outcome among the
	// down votes (ties: the first by name), e.g. timeout.
	DownOutcome Outcome
	// Voting is the number of voting vantages; DownVotes how many of them
	// say down.
	Voting    int
	DownVotes int
	// FailStatic is true when too few vantages vote for the quorum to
	// decide (none, or fewer than a numeric quorum): Verdict is the last
	// one decided, kept.
	FailStatic bool
	// NoFreshSince is, while FailStatic, the last time the quorum could
	// decide (zero: never since this node started).
	NoFreshSince time.Time
	// Lag is the member's replication lag: the max over the other source
	// regions of LagBySource.
	Lag time.Duration
	// LagBySource is the member's lag behind each source region: per
	// source, the quorum-th largest of the vantages' unexpired samples.
	// Snapshots share it with the engine and with each other while it is
	// unchanged: read it, never modify it.
	LagBySource map[string]time.Duration
	// LagKnown is false when no unexpired lag sample exists.
	LagKnown bool
	// Lagging is true when Lag exceeds the database's lag tolerance.
	Lagging bool
	// Drained is true when an operator drained it.
	Drained bool
	// Settled is false while a recovered member serves its failback hold.
	Settled bool
	// HealthySince is when the member last became up and in sync.
	HealthySince time.Time
	// Held is how much observed healthy time the current failback hold
	// has accumulated (time while FailStatic does not count); it stops
	// growing once the member is settled.
	Held time.Duration
	// Reason is the member's state in the words answer reasons use, e.g.
	// "down: timeout (3/3 vantages)", or "up, no fresh vantage since T:
	// last verdict kept, lag unknown".
	Reason string
	// Vantages are the per-vantage views, sorted by agent ID.
	Vantages []VantageState
}

// EventKind names an answer change.
type EventKind string

// The event kinds.
const (
	// Failover: the answer left a member that stopped being eligible.
	Failover EventKind = "failover"
	// Failback: the answer returned to a more preferred member.
	Failback EventKind = "failback"
	// Change: any other change of the first answered member
	// (an override, a drain, a ranking).
	Change EventKind = "change"
	// AllDown: a failure left no member eligible; the answer now follows
	// when_all_down (even when its first member stays the same). It is
	// the failover into "all down": Detection and RPOEstimate are set as
	// for a Failover.
	AllDown EventKind = "all_down"
	// AllDownEnd: a member became eligible again and the answer left
	// when_all_down. It is not a failback (no hold was served).
	AllDownEnd EventKind = "all_down_end"
)

// IsFailover reports whether the event moved the answer off a failed or
// lagging member: a failover, or an all_down (the failover into
// when_all_down). Detection and RPOEstimate are meaningful for these.
func (k EventKind) IsFailover() bool { return k == Failover || k == AllDown }

// Event is a change of the first answered member of a database for a
// client region, its answer entering or leaving when_all_down, or, in all
// mode, a down member leaving the record set.
type Event struct {
	// Kind is failover, failback, change, all_down or all_down_end.
	Kind EventKind
	// Database and Region say which answer changed.
	Database string
	Region   string
	// From and To are the old and new first members ("" for none); for
	// an all-mode member leaving the record set, From is that member.
	From string
	To   string
	// At is when the engine decided the change.
	At time.Time
	// Detection is, for a failover or all_down, the time from the first
	// failure of the failure run that completed the down quorum until At.
	Detection time.Duration
	// RPOEstimate is the lag of To behind From's region (as in
	// LagBySource): the writes the old member may have held that the new
	// one lacked.
	RPOEstimate time.Duration
	// RPOKnown is false when no such lag was ever measured.
	RPOKnown bool
	// Reason explains the change in one line.
	Reason string
}

// HostAnswers holds every region's answer for one hostname. A database
// whose inputs did not change keeps the same HostAnswers from snapshot to
// snapshot (the same pointer, so comparing is cheap).
type HostAnswers struct {
	// Database is the database's name; Host its hostname (lower case FQDN).
	Database string
	Host     string
	// ByRegion maps a client region to its answer.
	ByRegion map[string]*Answer
}

// Snapshot is an immutable, complete decision: every hostname's answer for
// every client region, per-member status and the events of the evaluation
// that made it. Looking up an answer is a map lookup; nothing is computed
// per query.
type Snapshot struct {
	// Generated is the evaluation time.
	Generated time.Time
	// Serial increases with every snapshot whose answers differ from the
	// previous one.
	Serial uint64
	// Hosts maps a lower-case FQDN hostname to its answers.
	Hosts map[string]*HostAnswers
	// Members maps member name to status.
	Members map[string]*MemberStatus
	// Events are the answer changes this evaluation decided.
	Events []Event
	// Recent holds the last events (at most RecentEvents), oldest first.
	Recent []Event
}

// RecentEvents is how many events a Snapshot keeps in Recent.
const RecentEvents = 100

// Lookup returns the answer for a hostname (any case, FQDN) and a client
// region. ok is false for a hostname that is not a database.
func (s *Snapshot) Lookup(host, region string) (*Answer, bool) {
	h, ok := s.Hosts[host]
	if !ok {
		h, ok = s.Hosts[strings.ToLower(host)]
		if !ok {
			return nil, false
		}
	}
	a, ok := h.ByRegion[region]
	return a, ok
}
