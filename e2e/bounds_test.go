package e2e

import (
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aagtm/aagtm/admin"
)

// checkBounds runs `aagtm check` on cfgPath and returns the DETECTION and
// RTO BOUND it prints for database db.
func checkBounds(t *testing.T, cfgPath, db string) (detection, rto time.Duration) {
	t.Helper()
	out, code := runCmd(t, 30*time.Second, "check", "-c", cfgPath)
	if code != 0 {
		t.Fatalf("aagtm check exited %d:\n%s", code, out)
	}
	cols := regexp.MustCompile(`\s{2,}`)
	var header []string
	for _, line := range strings.Split(out, "\n") {
		f := cols.Split(strings.TrimSpace(line), -1)
		if len(f) > 0 && f[0] == "DATABASE" {
			header = f
			continue
		}
		if header == nil || len(f) != len(header) || f[0] != db {
			continue
		}
		for i, h := range header {
			var err error
			switch h {
			case "DETECTION":
				detection, err = time.ParseDuration(f[i])
			case "RTO BOUND":
				rto, err = time.ParseDuration(f[i])
			}
			if err != nil {
				t.Fatalf("aagtm check: %s of %s: %v\n%s", h, db, err, out)
			}
		}
	}
	if detection <= 0 || rto <= 0 {
		t.Fatalf("aagtm check printed no DETECTION and RTO BOUND for %s:\n%s", db, out)
	}
	return detection, rto
}

// boundSlack is all these tests allow beyond the bounds `aagtm check`
// prints: the report's transit over loopback, the node's evaluation, and
// the polling period of the test's own clients. A bound that forgot a part
// of the agent's scheduling or of the resolver's TTL counting is exceeded
// by far more.
const boundSlack = 100 * time.Millisecond

// TestBoundsHold fails the us-east member (the answer of clients without
// ECS, which unbound sends none) several times, killed and hung (SIGSTOP),
// at a random phase of the probe rounds, and measures against the bounds
// `aagtm check` prints for the deployment:
//
//   - DETECTION: how long after the fault each node answers the next member;
//   - RTO BOUND: how long after the fault a client asking a real recursive
//     resolver (unbound, both nodes as its name servers) gets the next
//     member, the resolver counting the TTL in whole seconds as resolvers do.
//
// The test fails when a measurement exceeds its printed bound: the bounds
// are upper bounds, not typical figures.
func TestBoundsHold(t *testing.T) {
	unbound := requireTool(t, "unbound", "unbound")
	p := faultParams()
	p.failbackHold = time.Second // recover quickly between trials
	watchStalls(t)
	d := deploy(t, p)
	detBound, rtoBound := checkBounds(t, d.cfgPath, "cache")
	resolver := startUnbound(t, unbound, d.dns)
	d.waitAllFresh(t)
	member := d.members["cache-use"]

	const trials = 4
	for _, fault := range []struct {
		name           string
		inject, repair func()
	}{
		{"kill", member.Kill, func() { member.Restart() }},
		{"hang", member.Stop, member.Cont},
	} {
		t.Run(fault.name, func(t *testing.T) {
			var nodeWorst, clientWorst time.Duration
			for i := 0; i < trials; i++ {
				d.waitHealthy(t, resolver)
				// A random phase of the agents' rounds.
				time.Sleep(rand.N(p.interval))
				at := time.Now()
				fault.inject()
				nodes, client := d.watchMove(t, resolver, at, rtoBound+5*time.Second)
				fault.repair()
				for j, e := range nodes {
					nodeWorst = max(nodeWorst, e)
					if e > detBound+boundSlack {
						t.Errorf("trial %d: %s answered the next member %s after the %s, beyond DETECTION %s (+%s slack)", i+1, d.dns[j], e.Round(time.Millisecond), fault.name, detBound, boundSlack)
					}
				}
				clientWorst = max(clientWorst, client)
				if client > rtoBound+boundSlack {
					t.Errorf("trial %d: a client through unbound got the next member %s after the %s, beyond RTO BOUND %s (+%s slack)", i+1, client.Round(time.Millisecond), fault.name, rtoBound, boundSlack)
				}
				t.Logf("trial %d: %s: nodes moved after %v, client through unbound after %s", i+1, fault.name, roundAll(nodes), client.Round(time.Millisecond))
			}
			t.Logf("%s: worst node switch %s (DETECTION %s), worst client through unbound %s (RTO BOUND %s)",
				fault.name, nodeWorst.Round(time.Millisecond), detBound, clientWorst.Round(time.Millisecond), rtoBound)
		})
	}
}

// waitHealthy waits until every member is up and settled on every node and
// every node, and the resolver, answer us-east's own member.
func (d *deployment) waitHealthy(t *testing.T, resolver string) {
	t.Helper()
	d.waitStatus(t, 20*time.Second, "every member up and settled", func(st *admin.Status) bool {
		for _, m := range st.Members {
			if m.Verdict != "up" || !m.Settled {
				return false
			}
		}
		return allUp(st)
	})
	waitFor(t, 10*time.Second, "us-east's member through every node and the resolver", func() bool {
		for _, s := range append([]string{resolver}, d.dns...) {
			if answerA(s, "cache.gtm.test", noSubnet) != addrUse {
				return false
			}
		}
		return true
	})
}

// watchMove polls every node and the resolver every 5ms, as clients without
// ECS (us-east), until each answers eu-west's member, and returns how long
// after from each node and the resolver first did so (measured when the
// reply arrived).
func (d *deployment) watchMove(t *testing.T, resolver string, from time.Time, timeout time.Duration) (nodes []time.Duration, client time.Duration) {
	t.Helper()
	servers := append(append([]string(nil), d.dns...), resolver)
	seen := make([]time.Duration, len(servers))
	for left := len(servers); left > 0; {
		for i, s := range servers {
			if seen[i] == 0 && answerA(s, "cache.gtm.test", noSubnet) == addrEuw {
				seen[i] = time.Since(from)
				left--
			}
		}
		if left > 0 && time.Since(from) > timeout {
			t.Fatalf("timed out after %s waiting for the move to eu-west's member (seen: nodes then resolver %v)", timeout, seen)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return seen[:len(d.dns)], seen[len(d.dns)]
}

func roundAll(ds []time.Duration) []time.Duration {
	out := make([]time.Duration, len(ds))
	for i, d := range ds {
		out[i] = d.Round(time.Millisecond)
	}
	return out
}
