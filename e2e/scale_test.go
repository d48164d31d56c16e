package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aagtm/aagtm/internal/testenv"
)

// TestScaleNoFalseVerdictsAtStart is the shortened form of bench/scale: 334
// databases × 3 members (1,002 members per agent), each database on its own
// logical database number of its region's redis-server (an endpoint per
// database, as with a port per database on Redis Software), three agents
// and one node started together. Nothing fails, so from the agents' start
// until the end no member may ever be judged down and no failover may
// happen; and by the end every member has a fresh, passing report from
// every agent. With -short: 100 databases.
func TestScaleNoFalseVerdictsAtStart(t *testing.T) {
	n, watch := 334, 12*time.Second
	if testing.Short() {
		n, watch = 100, 8*time.Second
	}
	regions := []struct{ name, short, bind, subnet, prefer string }{
		{"us-east", "use", "127.0.0.61", "10.1.0.0/16", "[us-east, eu-west, ap-south]"},
		{"eu-west", "euw", "127.0.0.62", "10.2.0.0/16", "[eu-west, us-east, ap-south]"},
		{"ap-south", "aps", "127.0.0.63", "10.3.0.0/16", "[ap-south, eu-west, us-east]"},
	}
	var servers []*testenv.Redis
	for _, r := range regions {
		servers = append(servers, testenv.StartRedis(t, testenv.WithBind(r.bind),
			testenv.WithArgs("--databases", fmt.Sprint(n), "--maxclients", fmt.Sprint(3*n+500))))
	}
	dnsAddr := fmt.Sprintf("127.0.0.1:%d", freeUDPTCPPort(t))
	adminAddr := fmt.Sprintf("127.0.0.1:%d", freeTCPPort(t))
	report := fmt.Sprintf("127.0.0.1:%d", freeTCPPort(t))
	dir := t.TempDir()

	var c strings.Builder
	c.WriteString("zone:\n  name: gtm.test.\n  ns: [{name: ns1.gtm.test., address: 127.0.0.1}]\nregions:\n")
	for _, r := range regions {
		fmt.Fprintf(&c, "  %s: {subnets: [%s], prefer: %s}\n", r.name, r.subnet, r.prefer)
	}
	c.WriteString("default_region: us-east\ndatabases:\n")
	for i := range n {
		fmt.Fprintf(&c, "  db%04d:\n    mode: nearest\n    ttl: 1s\n    members:\n", i)
		for j, r := range regions {
			fmt.Fprintf(&c, "      - {name: db%04d-%s, region: %s, addresses: [%s], redis: \"%s/%d\"}\n", i, r.short, r.name, r.bind, servers[j].URL(), i)
		}
	}
	c.WriteString("probes:\n  interval: 1s\n  timeout: 500ms\n  rise: 2\n  fall: 2\n  stale_after: 3s\n  checks: [ping]\n")
	fmt.Fprintf(&c, "nodes:\n  - {name: ns1, report: %q, dns: [%q], admin: %q, state_file: %q}\n", report, dnsAddr, adminAddr, dir+"/ns1.state")
	c.WriteString("security:\n  insecure: true\n")
	cfg := writeFile(t, dir, "aagtm.yaml", c.String())

	start(t, "serve ns1", "serve", "-c", cfg, "--node", "ns1", "--log-level", "info")
	waitFor(t, 15*time.Second, "the node's status API", func() bool {
		st, err := status(adminAddr)
		return err == nil && len(st.Members) == 3*n
	})
	begin := time.Now()
	for _, r := range regions {
		start(t, "probe "+r.name, "probe", "-c", cfg, "--agent", r.name, "--log-level", "info")
	}

	everDown := map[string]string{}
	var failovers []string
	fresh := 0
	for time.Since(begin) < watch {
		time.Sleep(500 * time.Millisecond)
		st, err := status(adminAddr)
		if err != nil {
			continue // a slow status read on a loaded machine; the next one counts
		}
		fresh = 0
		for _, m := range st.Members {
			if m.Verdict == "down" {
				if _, seen := everDown[m.Name]; !seen {
					var why []string
					for _, v := range m.Vantages {
						why = append(why, v.Agent+": "+v.Verdict+" "+v.LastError)
					}
					everDown[m.Name] = strings.Join(why, "; ")
				}
			}
			ok := len(m.Vantages) == len(regions)
			for _, v := range m.Vantages {
				ok = ok && v.Fresh && v.Passes > 0
			}
			if ok {
				fresh++
			}
		}
		for _, e := range st.Events {
			if e.Kind == "failover" {
				failovers = append(failovers, fmt.Sprintf("%s %s: %s → %s (%s)", e.Database, e.Region, e.From, e.To, e.Reason))
			}
		}
	}
	if len(everDown) > 0 {
		shown := 0
		for m, why := range everDown {
			if shown++; shown > 5 {
				break
			}
			t.Errorf("member %s was judged down though nothing failed: %s", m, why)
		}
		t.Errorf("%d of %d members were judged down in the first %s", len(everDown), 3*n, watch)
	}
	if len(failovers) > 0 {
		t.Errorf("%d failover events though nothing failed, e.g. %s", len(failovers), failovers[0])
	}
	if fresh != 3*n {
		t.Errorf("after %s, %d of %d members have a fresh passing report from every agent", watch, fresh, 3*n)
	}
}
