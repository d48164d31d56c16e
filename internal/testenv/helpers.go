package testenv

import (
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/aagtm/aagtm/policy"
)

// Logger returns a Debug-level logger that writes to t until the test
// ends; lines logged later (by a goroutine still stopping) are dropped
// instead of failing the test.
func Logger(t testing.TB) hclog.Logger {
	w := &testWriter{t: t}
	t.Cleanup(func() {
		w.mu.Lock()
		w.done = true
		w.mu.Unlock()
	})
	return hclog.New(&hclog.LoggerOptions{Name: t.Name(), Output: w, Level: hclog.Debug})
}

type testWriter struct {
	t    testing.TB
	mu   sync.Mutex
	done bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done && len(p) > 0 {
		w.t.Log(string(p[:len(p)-1]))
	}
	return len(p), nil
}

// WaitFor polls cond every 10ms until it holds, and fails the test when d
// passes first.
func WaitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Recorder is an ingest sink that keeps every observation it is given.
type Recorder struct {
	mu  sync.Mutex
	obs []policy.Observation
}

// Sink records obs; pass it to ingest.New.
func (r *Recorder) Sink(obs []policy.Observation) {
	r.mu.Lock()
	r.obs = append(r.obs, obs...)
	r.mu.Unlock()
}

// All returns a copy of every observation recorded so far.
func (r *Recorder) All() []policy.Observation {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]policy.Observation(nil), r.obs...)
}
