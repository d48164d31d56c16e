package dnsserver

import (
	"net/netip"
	"testing"
	"time"

	"github.com/aagtm/aagtm/config"
)

// TestLimiterOutOfOrderTimes: a request can reach a bucket with an earlier
// time than one already counted (the wall clock stepping back). Such a
// request must not refill backwards (take tokens away): a client within
// its burst is never limited, whatever order its requests' times arrive in.
func TestLimiterOutOfOrderTimes(t *testing.T) {
	l := newLimiter(config.RateLimit{ResponsesPerSecond: 5, Slip: 2})
	client := netip.MustParseAddr("127.0.0.1")
	t0 := l.epoch.Add(time.Hour)
	// The burst of 5: the first to take the lock was stamped last.
	times := []time.Time{
		t0.Add(time.Millisecond), t0, t0.Add(100 * time.Microsecond), t0, t0.Add(10 * time.Microsecond),
	}
	for i, at := range times {
		if v := l.check(client, "cache.gtm.example.com.", at); v != pass {
			t.Fatalf("request %d of a burst of 5 (stamped %s after t0): verdict %d, want pass", i+1, at.Sub(t0), v)
		}
	}
	if v := l.check(client, "cache.gtm.example.com.", t0.Add(time.Millisecond)); v == pass {
		t.Errorf("6th request within the same millisecond passed, want limited")
	}
	// A second later the bucket is full again.
	for i := range 5 {
		if v := l.check(client, "cache.gtm.example.com.", t0.Add(1100*time.Millisecond)); v != pass {
			t.Fatalf("after refilling, request %d: verdict %d, want pass", i+1, v)
		}
	}
}
