package policy

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/aagtm/aagtm/config"
)

// scaleConfig is testConfig with n databases of three members each (one
// per region), the shape bench/scale runs.
func scaleConfig(n int) *config.Config {
	cfg := testConfig()
	proto := cfg.Databases[0]
	cfg.Databases = make([]config.Database, n)
	for i := range n {
		db := proto
		db.Name = fmt.Sprintf("db%d", i)
		db.Host = fmt.Sprintf("db%d.gtm.example.com.", i)
		db.Members = make([]config.Member, len(proto.Members))
		for j, m := range proto.Members {
			m.Name = fmt.Sprintf("db%d-%s", i, m.Region)
			m.Database = db.Name
			m.Addresses = []netip.Addr{netip.AddrFrom4([4]byte{10, byte(j + 1), byte(i >> 8), byte(i)})}
			db.Members[j] = m
		}
		cfg.Databases[i] = db
	}
	return cfg
}

// BenchmarkEvaluate measures one evaluation of an engine with n databases
// × 3 members × 3 agents, every member passing with a measured lag, as the
// node runs it in its steady state: before each evaluation a report chunk
// arrives from every agent with a tenth of the databases (the next tenth
// each time), their lag a millisecond off the last one, so those
// databases' reasons change and the rest keep their answers. The node
// evaluates after every report batch and at least every 100 ms.
//
//	go test -run '^$' -bench Evaluate -benchmem ./policy
func BenchmarkEvaluate(b *testing.B) {
	for _, n := range []int{1, 334, 3334} {
		b.Run(fmt.Sprintf("members=%d", 3*n), func(b *testing.B) {
			cfg := scaleConfig(n)
			e := New(cfg)
			now := t0
			seq := map[string]uint64{}
			chunk := 0
			// report observes the databases [from, to) from every agent.
			report := func(from, to int, lag time.Duration) {
				for _, a := range cfg.Agents {
					seq[a.ID]++
					for _, db := range cfg.Databases[from:to] {
						for _, m := range db.Members {
							e.Observe(Observation{Agent: a.ID, Member: m.Name, Seq: seq[a.ID], Time: now,
								Checks: []CheckResult{{Check: "ping", Outcome: OutcomePass, OK: true}},
								RTT:    time.Millisecond,
								Lag:    map[string]time.Duration{"us-east": lag}})
						}
					}
				}
			}
			ov := Overrides{}
			for range 3 {
				now = now.Add(time.Second)
				report(0, n, 5*time.Millisecond)
				e.Evaluate(now, ov)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				now = now.Add(100 * time.Millisecond)
				b.StopTimer()
				from := chunk * n / 10
				report(from, max((chunk+1)*n/10, from+1), time.Duration(5+chunk%2)*time.Millisecond)
				chunk = (chunk + 1) % 10
				b.StartTimer()
				e.Evaluate(now, ov)
			}
		})
	}
}
