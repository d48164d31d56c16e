package admin

import "time"

// AgentStatus is one probe agent's report connection to the answering
// node, as served in Status.Agents.
type AgentStatus struct {
	// ID and Region identify the agent.
	ID     string `json:"id"`
	Region string `json:"region"`
	// Connected is true while the agent holds a report stream to this
	// node; Streams counts them and StreamSince is when the oldest opened.
	Connected   bool      `json:"connected"`
	Streams     int       `json:"streams"`
	StreamSince time.Time `json:"stream_since,omitzero"`
	// Remote is the address its reports come from.
	Remote string `json:"remote,omitempty"`
	// LastSeen is when its last accepted report arrived.
	LastSeen time.Time `json:"last_seen,omitzero"`
	// BootID and LastSeq identify its last accepted report: the agent
	// process (a new boot id per start) and the report's sequence number.
	BootID  string `json:"boot_id,omitempty"`
	LastSeq uint64 `json:"last_seq"`
	// ConfigHash is the config hash its last report carried.
	ConfigHash string `json:"config_hash,omitempty"`
	// Accepted, Refused and Dropped count its reports on this node:
	// accepted, refused (wrong region, a seq that does not advance) and
	// dropped by the rate limit.
	Accepted uint64 `json:"accepted"`
	Refused  uint64 `json:"refused"`
	Dropped  uint64 `json:"dropped"`
	// LastRefusal is why its last refused report was refused, at
	// LastRefusalAt.
	LastRefusal   string    `json:"last_refusal,omitempty"`
	LastRefusalAt time.Time `json:"last_refusal_at,omitzero"`
}

// AgentLister is implemented by a Backend that knows its agents'
// connections; Status.Agents is filled from it.
type AgentLister interface {
	// Agents returns every configured agent's connection state, sorted by
	// ID.
	Agents() []AgentStatus
}
