package probes

import (
	"sync"
	"testing"
	"time"

	"github.com/aagtm/aagtm/internal/testenv"
)

// TestWorkerPool: a burst of blocking probes all run at once (none waits
// for another: a hung server must not delay other members' probes), at
// most maxIdle workers stay afterwards, later probes still run, and close
// ends the idle workers.
func TestWorkerPool(t *testing.T) {
	tests := []struct {
		name    string
		burst   int
		maxIdle int32
	}{
		{"burst above maxIdle", 500, 8},
		{"burst below maxIdle", 5, 8},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newWorkerPool(tt.maxIdle, time.Minute)
			release := make(chan struct{})
			var started, done sync.WaitGroup
			started.Add(tt.burst)
			done.Add(tt.burst)
			for range tt.burst {
				p.run(func() {
					defer done.Done()
					started.Done()
					<-release
				})
			}
			started.Wait() // every job runs while all of them block
			close(release)
			done.Wait()
			want := min(int32(tt.burst), tt.maxIdle)
			testenv.WaitFor(t, 5*time.Second, "idle workers to settle", func() bool { return p.idle.Load() == want })

			var again sync.WaitGroup
			for range 100 {
				again.Add(1)
				p.run(again.Done)
				again.Wait()
			}
			testenv.WaitFor(t, 5*time.Second, "idle workers after reuse", func() bool { return p.idle.Load() == want })

			closed := make(chan struct{})
			go func() { p.close(); close(closed) }()
			select {
			case <-closed:
			case <-time.After(5 * time.Second):
				t.Fatal("close did not end the idle workers")
			}
			if n := p.idle.Load(); n != 0 {
				t.Errorf("%d idle workers after close", n)
			}
		})
	}
}

// TestGatherer: results put before the round's wait ends are taken, even
// when the deadline has passed too (a starved round that was still
// starting probes at its deadline); wait returns at once when every result
// is in, at the deadline without the missing ones, and results put after
// it are dropped.
func TestGatherer(t *testing.T) {
	tests := []struct {
		name           string
		want, before   int // results expected; put before wait
		during         int // put by other goroutines while wait runs
		deadlinePassed bool
	}{
		{"all in before wait", 100, 100, 0, false},
		{"all in, deadline passed as well", 100, 100, 0, true},
		{"all in while waiting", 100, 40, 60, false},
		{"some missing at the deadline", 100, 60, 0, true},
		{"none in at the deadline", 10, 0, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := map[int]bool{}
			g := newGatherer(func(i int, _ string) { got[i] = true })
			for range tt.want {
				g.expect()
			}
			for i := range tt.before {
				g.put(i, "r")
			}
			deadline := make(chan time.Time, 1)
			if tt.deadlinePassed {
				deadline <- time.Now()
			}
			var wg sync.WaitGroup
			for i := tt.before; i < tt.before+tt.during; i++ {
				wg.Go(func() { g.put(i, "r") })
			}
			g.wait(deadline) // never returns if the last result does not end it
			wg.Wait()
			if len(got) != tt.before+tt.during {
				t.Errorf("took %d results, want the %d put before the wait ended", len(got), tt.before+tt.during)
			}
			g.put(tt.want-1, "late")
			if want := tt.before+tt.during == tt.want; got[tt.want-1] != want {
				t.Errorf("a result put after wait was taken")
			}
		})
	}
}
