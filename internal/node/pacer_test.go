package node

import (
	"testing"
	"time"
)

// TestEvalPacer: evaluations are spaced by evalShare × a moving average of
// their time, so one slow evaluation (a mass failover) does not hold back
// the next by three times its own length, while evaluations that stay slow
// still get no more than a third of a core.
func TestEvalPacer(t *testing.T) {
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	slowForGood := []time.Duration{ms(30)}
	for range 12 {
		slowForGood = append(slowForGood, ms(300))
	}
	tests := []struct {
		name string
		took []time.Duration // successive evaluation times
		// The wait from the last evaluation's start to the next's.
		min, max time.Duration
	}{
		{"first evaluation", []time.Duration{ms(30)}, ms(90), ms(90)},
		{"steady", []time.Duration{ms(30), ms(30), ms(30), ms(30)}, ms(90), ms(90)},
		// Pacing by the last evaluation alone would wait 900ms.
		{"one slow among steady", []time.Duration{ms(30), ms(30), ms(30), ms(300)}, ms(250), ms(300)},
		{"back to steady after one slow", []time.Duration{ms(30), ms(30), ms(300), ms(30)}, ms(90), ms(250)},
		{"slow for good", slowForGood, ms(850), ms(900)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var p evalPacer
			start := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
			var gap time.Duration
			for _, d := range tt.took {
				next := p.next(start, d)
				gap = next.Sub(start)
				start = start.Add(max(gap, d)) // the next starts once both the wait and the evaluation are over
			}
			if gap < tt.min || gap > tt.max {
				t.Fatalf("after evaluations of %v: the next may start %s after the last began, want %s–%s", tt.took, gap, tt.min, tt.max)
			}
		})
	}
}
