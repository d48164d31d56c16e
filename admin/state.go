package admin

import (
	"fmt"
	"net/http"
	"time"
)

// StateKeeper is implemented by a Backend that persists its overrides in a
// state file: the status then reports the file's health, and
// POST /v1/state/ack-corrupt acknowledges a corrupt file.
type StateKeeper interface {
	// StateStatus returns the state file's health; nil without a state
	// file.
	StateStatus() *StateStatus
	// AckCorruptState clears the corrupt-file report (persisting that)
	// and returns the report it cleared, nil when there was none.
	AckCorruptState() (*CorruptState, error)
}

// StateStatus is the health of a node's state file, in GET /v1/status.
type StateStatus struct {
	// Path is the state file.
	Path string `json:"path"`
	// SaveFailures counts failed saves since the node started.
	SaveFailures uint64 `json:"save_failures"`
	// LastSaveError is the error of the last save when it failed; empty
	// once a save succeeds again.
	LastSaveError string `json:"last_save_error,omitempty"`
	// LastSaveErrorAt is when LastSaveError happened.
	LastSaveErrorAt time.Time `json:"last_save_error_at,omitzero"`
	// Corrupt reports a state file found unusable at start, until an
	// operator acknowledges it.
	Corrupt *CorruptState `json:"corrupt,omitempty"`
}

// CorruptState describes a state file found unusable at start.
type CorruptState struct {
	// At is when the node found it.
	At time.Time `json:"at"`
	// Error says why it was unusable.
	Error string `json:"error"`
	// MovedTo is where it was moved aside (<path>.corrupt-<time>); empty
	// when it could not be moved, and then the node does not write its
	// state file at all (drain and force fail) rather than overwrite it.
	MovedTo string `json:"moved_to,omitempty"`
	// Lost lists what the file held that the node did not apply: the
	// drains and forces readable from it.
	Lost string `json:"lost"`
}

// stateLines returns the lines RenderStatus prints about the state file:
// none when it is healthy.
func stateLines(s *StateStatus) []string {
	if s == nil {
		return nil
	}
	var out []string
	if s.LastSaveError != "" {
		out = append(out, fmt.Sprintf("STATE FILE NOT SAVED (%d failures, last %s): %s", s.SaveFailures, fmtTime(s.LastSaveErrorAt), s.LastSaveError))
	}
	if c := s.Corrupt; c != nil {
		where := "moved to " + c.MovedTo
		if c.MovedTo == "" {
			where = "could NOT be moved aside: the node will not write its state file"
		}
		out = append(out, fmt.Sprintf("STATE FILE %s WAS UNUSABLE at %s (%s), %s; lost: %s; after re-applying what was lost, run: aagtm ack-state",
			s.Path, fmtTime(c.At), c.Error, where, c.Lost))
	}
	return out
}

// ackState acknowledges a corrupt state file report.
func (s *Server) ackState(*http.Request) error {
	sk, ok := s.b.(StateKeeper)
	if !ok {
		return fmt.Errorf("%w: this node keeps no state file", ErrNotFound)
	}
	_, err := sk.AckCorruptState()
	return err
}
