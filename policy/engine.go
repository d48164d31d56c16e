// Package policy decides which members answer each database hostname for each
// client region. It turns probe observations, the clock and operator
// overrides into an immutable Snapshot with explanations and events.
//
// It performs no I/O, starts no goroutines, has no logger and reads no clock:
// time is always passed in. An Engine is not safe for concurrent use; its
// owner serialises calls.
package policy

import (
	"time"

	"github.com/aagtm/aagtm/config"
)

// Engine holds the health state of every (vantage, member) pair and member,
// and the last answers, between evaluations.
type Engine struct {
	cfg *config.Config
}

// New returns an engine for cfg. Every member starts up and settled
// (nothing has been seen failing yet).
func New(cfg *config.Config) *Engine {
	return &Engine{cfg: cfg}
}

// Observe records an observation for the next Evaluate. Observations of
// unknown members or agents are ignored. Within one Evaluate, observations
// are applied in (agent, member, seq) order, whatever order they arrived in;
// an observation whose Seq is not above the vantage's last one is ignored.
func (e *Engine) Observe(o Observation) {}

// Evaluate applies pending observations, advances staleness and failback
// timers to now, and returns the new snapshot with the events it decided.
func (e *Engine) Evaluate(now time.Time, ov Overrides) *Snapshot {
	return &Snapshot{Generated: now}
}

// Reconfigure swaps in a new config, keeping the state of members and
// vantages that still exist.
func (e *Engine) Reconfigure(cfg *config.Config) { e.cfg = cfg }
