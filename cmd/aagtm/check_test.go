package main

import (
	"fmt"
	"testing"
	"time"

	"github.com/aagtm/aagtm/config"
)

// TestTimingBounds checks the bounds `aagtm check` prints against figures
// worked out by hand from the agent's scheduling: fall rounds one interval
// apart, the last one's report after the timeout and the report delay (the
// spread window for a round in one piece, 100 ms + 1/15 s in chunks), then
// the resolver's TTL in whole seconds plus one.
func TestTimingBounds(t *testing.T) {
	for _, tc := range []struct {
		name              string
		interval, timeout time.Duration
		fall, members     int
		ttl               time.Duration
		detection, rto    time.Duration
	}{
		// 3 members: spread 0.3ms, rounded up to 1ms.
		{"defaults", time.Second, 500 * time.Millisecond, 2, 3, 5 * time.Second, 2501 * time.Millisecond, 8501 * time.Millisecond},
		{"aggressive", 250 * time.Millisecond, 200 * time.Millisecond, 2, 2, time.Second, 701 * time.Millisecond, 2701 * time.Millisecond},
		// 1,000 members: spread 100ms; a TTL of 1.5s is served as 1s.
		{"1000 members", time.Second, 500 * time.Millisecond, 3, 1000, 1500 * time.Millisecond, 3600 * time.Millisecond, 5600 * time.Millisecond},
		// 10,000 members: a 500ms window, reported in chunks: 166.7ms.
		{"10000 members", time.Second, 500 * time.Millisecond, 2, 10000, 5 * time.Second, 2667 * time.Millisecond, 8667 * time.Millisecond},
		// 10,000 members at 250ms: a 125ms window, in chunks as well.
		{"10000 members, short interval", 250 * time.Millisecond, 200 * time.Millisecond, 2, 10000, time.Second, 867 * time.Millisecond, 2867 * time.Millisecond},
		// 1,001 members: a 100.1ms window, just in chunks.
		{"1001 members", time.Second, 500 * time.Millisecond, 2, 1001, time.Second, 2667 * time.Millisecond, 4667 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db := config.Database{Name: "cache", TTL: tc.ttl}
			for i := 0; i < tc.members; i++ {
				db.Members = append(db.Members, config.Member{Name: fmt.Sprintf("m%d", i)})
			}
			cfg := &config.Config{
				Probes:    config.Probes{Interval: tc.interval, Timeout: tc.timeout, Fall: tc.fall},
				Databases: []config.Database{db},
			}
			det, rto := timingBounds(cfg, db)
			if det != tc.detection || rto != tc.rto {
				t.Errorf("timingBounds = detection %s, RTO %s; want %s, %s", det, rto, tc.detection, tc.rto)
			}
		})
	}
}
