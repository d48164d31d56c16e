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

// TestCollect: results that arrived before the round's deadline are taken
// even when the deadline has passed too (a starved round that was still
// starting probes at its deadline), and collection stops at the deadline
// without waiting for the missing ones.
func TestCollect(t *testing.T) {
	tests := []struct {
		name           string
		want, buffered int
		deadlinePassed bool
	}{
		{"all in before the deadline", 100, 100, false},
		{"all in, deadline passed as well", 100, 100, true},
		{"some missing at the deadline", 100, 60, true},
		{"none in at the deadline", 10, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ch := make(chan int, tt.want)
			for i := range tt.buffered {
				ch <- i
			}
			deadline := make(chan time.Time, 1)
			if tt.deadlinePassed {
				deadline <- time.Now()
			}
			got := 0
			collect(ch, tt.want, deadline, func(int) { got++ })
			if got != tt.buffered {
				t.Errorf("took %d results, want the %d that had arrived", got, tt.buffered)
			}
			if len(ch) != 0 {
				t.Errorf("%d results left behind", len(ch))
			}
		})
	}
}
