package probes

import (
	"context"
	"sync"
	"time"
)

// stallWatch notices when the agent process itself does not run: a
// goroutine that should wake every tick and wakes late was not scheduled
// (the host's CPUs busy with other processes, the process stopped, a long
// GC pause). A probe timing out across such a stall says nothing about the
// member: its reply may have arrived while nobody read it. The watch keeps
// the recent stalls so probes can ask whether the agent was stalled at
// their deadline, and since when.
type stallWatch struct {
	tick time.Duration

	mu     sync.Mutex
	stalls [stallRing]stall // ring of the most recent stalls
	next   int
	// last is when the watch last woke (zero: not running).
	last time.Time
}

// stall is a span when the agent did not run: a tick due at from ran at to.
type stall struct{ from, to time.Time }

// stallRing is how many stalls the watch remembers: at a 10 ms tick, more
// than a probe's window can hold.
const stallRing = 256

// stallTick is how often the watch wakes.
const stallTick = 10 * time.Millisecond

func newStallWatch(tick time.Duration) *stallWatch { return &stallWatch{tick: tick} }

// run wakes every tick until ctx is done and records each wake-up later
// than one tick after the previous one as a stall.
func (w *stallWatch) run(ctx context.Context) {
	t := time.NewTicker(w.tick)
	defer t.Stop()
	w.woke(time.Now())
	defer w.woke(time.Time{})
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		w.woke(time.Now())
	}
}

// woke records a wake-up at now (zero: the watch stops), and the stall
// before it if it came late.
func (w *stallWatch) woke(now time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if s, ok := w.pending(now); ok {
		w.stalls[w.next] = s
		w.next = (w.next + 1) % stallRing
	}
	w.last = now
}

// pending is the stall between the last wake-up and now, if the watch has
// not woken for two ticks. The caller holds mu.
func (w *stallWatch) pending(now time.Time) (stall, bool) {
	if w.last.IsZero() || now.IsZero() {
		return stall{}, false
	}
	due := w.last.Add(w.tick)
	return stall{from: due, to: now}, now.Sub(due) >= w.tick
}

// stalledAt returns how long the agent had been stalled at t: t minus the
// start of the stall that spans t (a recorded one, or the one still going
// on if the watch has not woken for two ticks: a probe resuming after a
// stall may ask before the watch has woken), or 0 when the agent was
// running at t.
func (w *stallWatch) stalledAt(t time.Time) time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	var longest time.Duration
	spans := func(s stall) {
		if !s.from.After(t) && !s.to.Before(t) {
			longest = max(longest, t.Sub(s.from))
		}
	}
	for _, s := range w.stalls {
		if !s.to.IsZero() {
			spans(s)
		}
	}
	if s, ok := w.pending(time.Now()); ok {
		spans(s)
	}
	return longest
}
