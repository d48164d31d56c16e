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

// TestGatherer: results put before close are taken and drained, even
// when the deadline has passed too (a starved round that was still
// starting probes at its deadline); start's channel is closed once every
// expected result is in (at once if they all are), and results put after
// close are dropped.
func TestGatherer(t *testing.T) {
	tests := []struct {
		name           string
		want, before   int // results expected; put before start
		during         int // put by other goroutines after start
		deadlinePassed bool
	}{
		{"all in before start", 100, 100, 0, false},
		{"all in, deadline passed as well", 100, 100, 0, true},
		{"all in while waiting", 100, 40, 60, false},
		{"some missing at the deadline", 100, 60, 0, true},
		{"none in at the deadline", 10, 0, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			taken := map[int]bool{}
			g := newGatherer(func(i int, _ string) { taken[i] = true })
			for range tt.want {
				g.expect()
			}
			for i := range tt.before {
				g.put(i, "r")
			}
			drained := len(g.drain())
			deadline := make(chan time.Time, 1)
			if tt.deadlinePassed {
				deadline <- time.Now()
			}
			all := g.start()
			var wg sync.WaitGroup
			for i := tt.before; i < tt.before+tt.during; i++ {
				wg.Go(func() { g.put(i, "r") })
			}
			select { // never returns if the last result does not close all
			case <-all:
			case <-deadline:
			}
			wg.Wait()
			g.close()
			drained += len(g.drain())
			if got, want := len(taken), tt.before+tt.during; got != want || drained != want {
				t.Errorf("took %d and drained %d results, want the %d put before close", got, drained, want)
			}
			g.put(tt.want-1, "late")
			if len(g.drain()) != 0 || len(taken) != tt.before+tt.during {
				t.Errorf("a result put after close was taken")
			}
		})
	}
}
