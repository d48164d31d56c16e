package overrides

import (
	"fmt"
	"sync"
	"time"
)

// Stamp is a hybrid logical clock timestamp: wall-clock nanoseconds, a
// logical counter that orders events within one wall-clock value (or while
// the local clock lags a stamp already seen), and the node that made it,
// which breaks the remaining ties. Stamps are totally ordered.
type Stamp struct {
	// Wall is Unix nanoseconds: the largest physical time seen when the
	// stamp was made.
	Wall int64 `json:"wall"`
	// Logical counts events within one Wall.
	Logical uint32 `json:"logical"`
	// Node is the node that made the stamp.
	Node string `json:"node"`
}

// Compare returns -1, 0 or +1 as s orders before, equal to or after o.
func (s Stamp) Compare(o Stamp) int {
	switch {
	case s.Wall != o.Wall:
		return cmp(s.Wall < o.Wall)
	case s.Logical != o.Logical:
		return cmp(s.Logical < o.Logical)
	case s.Node != o.Node:
		return cmp(s.Node < o.Node)
	}
	return 0
}

func cmp(less bool) int {
	if less {
		return -1
	}
	return 1
}

// Time returns the stamp's wall-clock part.
func (s Stamp) Time() time.Time { return time.Unix(0, s.Wall).UTC() }

// String formats the stamp for logs: 2006-01-02T15:04:05.000Z+3@ns1.
func (s Stamp) String() string {
	return fmt.Sprintf("%s+%d@%s", s.Time().Format("2006-01-02T15:04:05.000Z"), s.Logical, s.Node)
}

// Clock is one node's hybrid logical clock (Kulkarni et al., "Logical
// Physical Clocks", 2014): its stamps follow every stamp it has made or
// observed, and stay close to the wall clock. A change taken after a node
// learnt of another change therefore always wins over it, whatever the
// nodes' clock skew; only concurrent changes are decided by the wall
// clocks (then by node name).
type Clock struct {
	mu   sync.Mutex
	node string
	now  func() time.Time
	last Stamp
}

// NewClock returns the clock of node, reading physical time from now.
func NewClock(node string, now func() time.Time) *Clock {
	return &Clock{node: node, now: now, last: Stamp{Node: node}}
}

// Now returns a new stamp, after every stamp made or observed so far.
func (c *Clock) Now() Stamp {
	c.mu.Lock()
	defer c.mu.Unlock()
	pt := c.now().UnixNano()
	if pt > c.last.Wall {
		c.last = Stamp{Wall: pt, Node: c.node}
	} else {
		c.last = Stamp{Wall: c.last.Wall, Logical: c.last.Logical + 1, Node: c.node}
	}
	return c.last
}

// Observe moves the clock past s, a stamp received from another node.
func (c *Clock) Observe(s Stamp) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s.Wall > c.last.Wall || (s.Wall == c.last.Wall && s.Logical > c.last.Logical) {
		c.last = Stamp{Wall: s.Wall, Logical: s.Logical, Node: c.node}
	}
}
