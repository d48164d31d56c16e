package probes

import (
	"context"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/aagtm/aagtm/config"
)

// BenchmarkRound measures one probe round of n members with an endpoint
// each (a database number each on one redis-server), after a warm-up, with
// ping only and with the default checks (ping, keyspace, lag): the agent's
// CPU per member probed (user + system, which includes the GC), bytes
// allocated per member and the heap in use per member. The redis-server
// runs in the same machine; its CPU is not counted. docs/operations.md
// (Sizing) quotes these figures.
//
//	go test -run '^$' -bench Round -benchtime 20x ./probes
func BenchmarkRound(b *testing.B) {
	for _, bc := range []struct {
		name   string
		n      int
		checks []config.Check
	}{
		{"ping/members=1000", 1000, []config.Check{config.CheckPing}},
		{"ping/members=3000", 3000, []config.Check{config.CheckPing}},
		{"default/members=1000", 1000, []config.Check{config.CheckPing, config.CheckKeyspace, config.CheckLag}},
	} {
		n := bc.n
		b.Run(bc.name, func(b *testing.B) {
			cfg := dbPerMember(b, n, bc.checks...)
			runtime.GC()
			var before runtime.MemStats
			runtime.ReadMemStats(&before)
			a := newTestAgent(b, cfg)
			a.warmUp(context.Background(), a.pending)
			if _, err := a.ProbeOnce(context.Background()); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			cpu0 := cpuTime()
			for range b.N {
				rep, err := a.ProbeOnce(context.Background())
				if err != nil {
					b.Fatal(err)
				}
				for _, m := range rep.GetMembers() {
					if c := m.GetChecks()[0]; !c.GetOk() && c.GetOutcome() != string(OutcomeNotMeasured) {
						b.Fatalf("%s: %s %s", m.GetMember(), c.GetOutcome(), c.GetError())
					}
				}
			}
			cpu := cpuTime() - cpu0
			b.StopTimer()
			var after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&after)
			b.ReportMetric(float64(cpu.Microseconds())/float64(b.N*n), "cpu-µs/member")
			b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/float64((b.N+1)*n), "alloc-B/member")
			b.ReportMetric(float64(int64(after.HeapInuse)-int64(before.HeapInuse))/float64(n), "heap-B/member")
		})
	}
}

// cpuTime is the process's user + system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
