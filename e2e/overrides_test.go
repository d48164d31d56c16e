package e2e

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// The override set is replicated among the nodes (package overrides):
// these tests run real nodes and measure how fast they converge.

// TestConflictingForcesConverge gives ns1 and ns2 different forces of one
// database at the same moment, each through its own admin listener: both
// end up answering the same member (the later change by the hybrid clock).
func TestConflictingForcesConverge(t *testing.T) {
	e := opDeploy(t, defaultOpSettings())
	var wg sync.WaitGroup
	outs := make([]string, 2)
	codes := make([]int, 2)
	targets := []string{"cache-aps", "cache-euw"}
	start := time.Now()
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			outs[i], codes[i] = runCmd(t, 10*time.Second, "force", "cache", targets[i], "--admin", e.admin[i], "--reason", "conflict "+e.nodeName(i))
		}()
	}
	wg.Wait()
	for i := range 2 {
		if codes[i] != 0 {
			t.Fatalf("force %s on %s: exit %d:\n%s", targets[i], e.nodeName(i), codes[i], outs[i])
		}
	}
	var answer string
	took := waitFor(t, 3*time.Second, "both nodes to answer the same forced member", func() bool {
		a, b := answerA(e.dns[0], "cache.gtm.optest", opClient("us-east")), answerA(e.dns[1], "cache.gtm.optest", opClient("us-east"))
		answer = a
		return a == b && (a == opAps || a == opEuw)
	})
	t.Logf("conflicting forces converged on both nodes to %s %s after the commands returned (%s after they started)",
		answer, took.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	// And they stay converged, with the same record on both.
	time.Sleep(ExchangeSettle)
	var recs []string
	for i := range 2 {
		if got := answerA(e.dns[i], "cache.gtm.optest", opClient("eu-west")); got != answer {
			t.Errorf("%s answers eu-west %s, want the converged %s", e.nodeName(i), got, answer)
		}
		st, err := status(e.admin[i])
		if err != nil {
			t.Fatal(err)
		}
		r := overrideIn(t, st, "force", "cache")
		recs = append(recs, fmt.Sprintf("%s=%s by %s (%s)", r.Target, r.Member, r.Node, r.Reason))
	}
	if recs[0] != recs[1] {
		t.Errorf("the nodes hold different records: %v", recs)
	}
	if out, code := runCmd(t, 10*time.Second, "force", "cache", "--clear", "-c", e.cfgPath); code != 0 {
		t.Fatalf("force --clear: exit %d:\n%s", code, out)
	}
}

// ExchangeSettle is long enough for one periodic exchange of the override
// set (every 2s) to have run.
const ExchangeSettle = 2500 * time.Millisecond

// TestOverrideExpiresEverywhere drains with --for 2s through ns1 only: the
// drain ends on both nodes at its expiry time, within one evaluation
// (100ms) of it.
func TestOverrideExpiresEverywhere(t *testing.T) {
	e := opDeploy(t, defaultOpSettings())
	e.waitFresh(0)
	e.waitFresh(1)
	out, code := runCmd(t, 10*time.Second, "drain", "cache-use", "--admin", e.admin[0], "--for", "2s", "--reason", "short")
	if code != 0 {
		t.Fatalf("drain --for 2s: exit %d:\n%s", code, out)
	}
	e.waitAnswer(1, "us-east", opEuw, 3*time.Second)
	st, err := status(e.admin[1])
	if err != nil {
		t.Fatal(err)
	}
	expires := overrideIn(t, st, "drain", "cache-use").Expires
	if expires.IsZero() {
		t.Fatalf("ns2's record of the drain has no expiry: %+v", st.Overrides)
	}
	// Poll both nodes every 5ms until each answers the member again.
	ended := make([]time.Time, 2)
	var wg sync.WaitGroup
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for deadline := expires.Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
				if answerA(e.dns[i], "cache.gtm.optest", opClient("us-east")) == opUse {
					ended[i] = time.Now()
					return
				}
			}
		}()
	}
	wg.Wait()
	for i, at := range ended {
		if at.IsZero() {
			t.Fatalf("%s still drains cache-use 3s after its expiry %s", e.nodeName(i), expires)
		}
		late := at.Sub(expires)
		t.Logf("%s: drain ended %s after its expiry time", e.nodeName(i), late.Round(time.Millisecond))
		// One evaluation is 100ms; the poll and a loaded machine add a little.
		if late < 0 || late > 300*time.Millisecond {
			t.Errorf("%s ended the drain %s after its expiry, want within one evaluation (100ms, 300ms with slack)", e.nodeName(i), late)
		}
	}
	if !strings.Contains(e.nodes[1].out.String(), "override expired") {
		t.Errorf("ns2 did not log the expiry:\n%s", tail(e.nodes[1].out.String(), 20))
	}
}

// TestPartitionBetweenNodesHeals cuts the nodes' admin traffic to each
// other (a proxy that drops every byte): each side keeps serving its own
// view and reports the failing exchange; healed, they converge.
func TestPartitionBetweenNodesHeals(t *testing.T) {
	set := defaultOpSettings()
	set.adminProxies = true
	e := opDeploy(t, set)
	for _, p := range e.proxies {
		p.Blackhole()
	}
	// A change on each side, through each node's own listener.
	if out, code := runCmd(t, 10*time.Second, "drain", "cache-use", "--admin", e.admin[0], "--reason", "side A"); code != 0 {
		t.Fatalf("drain on ns1: exit %d:\n%s", code, out)
	}
	if out, code := runCmd(t, 10*time.Second, "drain", "cache-aps", "--admin", e.admin[1], "--reason", "side B"); code != 0 {
		t.Fatalf("drain on ns2: exit %d:\n%s", code, out)
	}
	time.Sleep(2 * ExchangeSettle)
	views := []struct{ use, aps string }{{opEuw, opAps}, {opUse, opEuw}} // ns1: cache-use drained; ns2: cache-aps drained
	for i, v := range views {
		if got := answerA(e.dns[i], "cache.gtm.optest", opClient("us-east")); got != v.use {
			t.Errorf("during the partition %s answers us-east %s, want its own view %s", e.nodeName(i), got, v.use)
		}
		if got := answerA(e.dns[i], "cache.gtm.optest", opClient("ap-south")); got != v.aps {
			t.Errorf("during the partition %s answers ap-south %s, want its own view %s", e.nodeName(i), got, v.aps)
		}
	}
	st, err := status(e.admin[0])
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Peers) != 1 || st.Peers[0].LastError == "" || overrideIn(t, st, "drain", "cache-use").Everywhere {
		t.Errorf("ns1 status during the partition: peers %+v, records %+v; want the failing exchange and the drain not everywhere", st.Peers, st.Overrides.Records)
	}

	for _, p := range e.proxies {
		p.Heal()
	}
	took := waitFor(t, 10*time.Second, "both nodes to drain both members", func() bool {
		for i := range 2 {
			if answerA(e.dns[i], "cache.gtm.optest", opClient("us-east")) != opEuw || answerA(e.dns[i], "cache.gtm.optest", opClient("ap-south")) != opEuw {
				return false
			}
		}
		return true
	})
	t.Logf("partition healed: both nodes converged %s after the heal", took.Round(time.Millisecond))
	waitFor(t, 5*time.Second, "ns1 to see both drains everywhere", func() bool {
		st, err := status(e.admin[0])
		return err == nil && overrideIn(t, st, "drain", "cache-use").Everywhere && overrideIn(t, st, "drain", "cache-aps").Everywhere
	})
}

// TestPeerWithWrongTokenRefused starts ns2 with another admin token: each
// node refuses the other's exchanges (401) and logs it, rate-limited, and
// a drain on ns1 does not reach ns2.
func TestPeerWithWrongTokenRefused(t *testing.T) {
	set := defaultOpSettings()
	set.adminToken = "e2e-admin-token-0123456789"
	set.agents = false
	e := opDeploy(t, set)
	e.stopNode(1)
	wrong := writeFile(t, t.TempDir(), "wrong-token", "not-the-cluster-token\n")
	e.nodeEnv[1] = []string{"AAGTM_SECURITY_ADMIN_TOKEN_FILE=" + wrong}
	e.startNode(1)
	e.waitServing(1)
	before := answerA(e.dns[1], "cache.gtm.optest", opClient("us-east"))
	if out, code := runCmd(t, 10*time.Second, "drain", "cache-use", "--admin", e.admin[0], "--token-file", filepath.Join(e.dir, "admin-token")); code != 0 {
		t.Fatalf("drain on ns1: exit %d:\n%s", code, out)
	}
	time.Sleep(3 * ExchangeSettle) // several exchanges each way
	if got := answerA(e.dns[1], "cache.gtm.optest", opClient("us-east")); got != before || got != opUse {
		t.Errorf("ns2 (wrong token) answers %s, want %s as before: the drain must not reach it", got, opUse)
	}
	log := e.nodes[0].out.String()
	refused := len(regexp.MustCompile(`admin call refused:.*action=exchange`).FindAllString(log, -1))
	if refused < 1 || refused > 2 || !strings.Contains(log, "wrong admin token") {
		t.Errorf("ns1 logged %d refused exchanges in ~7s (want 1 or 2: logged, rate-limited):\n%s", refused, tail(log, 30))
	}
	st, err := status(e.admin[1])
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Peers) != 1 || st.Peers[0].Failures < 2 || !strings.Contains(st.Peers[0].LastError, "HTTP 401") {
		t.Errorf("ns2's exchanges with ns1: %+v, want failing with HTTP 401", st.Peers)
	}
	if !strings.Contains(e.nodes[1].out.String(), "override exchange with peer failed") {
		t.Errorf("ns2 did not log its refused exchange:\n%s", tail(e.nodes[1].out.String(), 30))
	}
}
