package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// TestLiveReload reloads a running node three times while a client queries
// it every 10ms: a valid change on SIGHUP (TTL 1s → 3s, a new database), an
// invalid one on SIGHUP (rejected, every problem logged by field, the old
// config keeps serving), and a valid change made by replacing the file
// with a rename, as editors do, without any signal. No query fails.
//
// The config path is a symlink into another folder at first, so that
// editing the target in place is invisible to the node's file watcher and
// only SIGHUP can trigger the first two reloads.
func TestLiveReload(t *testing.T) {
	set := defaultOpSettings()
	set.nodes = 1
	e := opDeploy(t, set)
	e.waitFresh(0)

	// Point the processes at a symlink: restart them on it.
	e.stopNode(0)
	e.stopAgents()
	realDir, linkDir := filepath.Join(e.dir, "real"), filepath.Join(e.dir, "link")
	for _, d := range []string{realDir, linkDir} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	target := filepath.Join(realDir, "aagtm.yaml")
	if err := os.Rename(e.cfgPath, target); err != nil {
		t.Fatal(err)
	}
	e.cfgPath = filepath.Join(linkDir, "aagtm.yaml")
	if err := os.Symlink(target, e.cfgPath); err != nil {
		t.Fatal(err)
	}
	node := e.startNode(0)
	e.startAgents()
	e.waitServing(0)

	// The client: one A query every 10ms, recording TTLs and failures.
	type sample struct {
		at  time.Time
		ttl uint32
	}
	var (
		mu       sync.Mutex
		samples  []sample
		failures []string
	)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			r, err := query(e.dns[0], "cache.gtm.optest", dns.TypeA, opClient("us-east"))
			mu.Lock()
			switch {
			case err != nil:
				failures = append(failures, err.Error())
			case r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1:
				failures = append(failures, fmt.Sprintf("rcode %s, %d answers", dns.RcodeToString[r.Rcode], len(r.Answer)))
			default:
				samples = append(samples, sample{time.Now(), r.Answer[0].Header().Ttl})
			}
			mu.Unlock()
		}
	}()
	ttlNow := func() uint32 {
		mu.Lock()
		defer mu.Unlock()
		if len(samples) == 0 {
			return 0
		}
		return samples[len(samples)-1].ttl
	}
	waitFor(t, 2*time.Second, "the client's first answers", func() bool { return ttlNow() == 1 })

	sessions := "  sessions:\n    mode: failover\n    ttl: 2s\n    members:\n" +
		fmt.Sprintf("      - {name: sessions-euw, region: eu-west, addresses: [%s], redis: %q}\n", opEuw, e.members["cache-euw"].URL()) +
		fmt.Sprintf("      - {name: sessions-aps, region: ap-south, addresses: [%s], redis: %q}\n", opAps, e.members["cache-aps"].URL())
	if got := answerA(e.dns[0], "sessions.gtm.optest", noSubnet); got != "rcode: NXDOMAIN" {
		t.Fatalf("sessions before the reload: %q, want NXDOMAIN", got)
	}

	t.Run("SIGHUP valid", func(t *testing.T) {
		next := set
		next.ttl, next.extraDB = "3s", sessions
		if err := os.WriteFile(target, []byte(e.render(next)), 0o600); err != nil {
			t.Fatal(err)
		}
		// No watcher event reaches the node: the old config serves on.
		time.Sleep(500 * time.Millisecond)
		if got := ttlNow(); got != 1 {
			t.Fatalf("TTL %d before SIGHUP, want 1 (the file watcher should not see the symlink target)", got)
		}
		signalAll(t, syscall.SIGHUP, append([]*proc{node}, e.agents...)...)
		took := waitFor(t, 3*time.Second, "TTL 3 after SIGHUP", func() bool { return ttlNow() == 3 })
		t.Logf("new TTL served %s after SIGHUP", took.Round(time.Millisecond))
		if got := answerA(e.dns[0], "sessions.gtm.optest", noSubnet); got != opEuw {
			t.Errorf("the added database answers %q, want %s", got, opEuw)
		}
		// The old database keeps its members' state: no failover, same answers.
		for _, r := range opRegions {
			if got := answerA(e.dns[0], "cache.gtm.optest", opClient(r.name)); got != r.bind {
				t.Errorf("after reload %s clients got %q, want %s", r.name, got, r.bind)
			}
		}
		log := node.out.String()
		for _, want := range []string{"SIGHUP: reloading config", "config reloaded"} {
			if !strings.Contains(log, want) {
				t.Errorf("node log lacks %q", want)
			}
		}
	})

	t.Run("SIGHUP invalid", func(t *testing.T) {
		bad := set
		bad.ttl, bad.extraDB = "9s", strings.Replace(sessions, "mode: failover", "mode: failovr", 1)
		bad.brokenRegion = "us-eastt"
		if err := os.WriteFile(target, []byte(e.render(bad)), 0o600); err != nil {
			t.Fatal(err)
		}
		before := len(node.out.String())
		signalAll(t, syscall.SIGHUP, node)
		waitFor(t, 3*time.Second, "the rejection in the log", func() bool {
			return strings.Contains(node.out.String()[before:], "config has 2 problems")
		})
		log := node.out.String()[before:]
		for _, want := range []string{
			"config reload rejected; the old config keeps serving",
			`databases.cache.members[0].region: \"us-eastt\" is not a declared region`,
			"databases.sessions.mode",
		} {
			if !strings.Contains(log, want) {
				t.Errorf("rejection log lacks %q:\n%s", want, log)
			}
		}
		if n := strings.Count(log, "invalid config"); n != 2 {
			t.Errorf("%d 'invalid config' lines, want one per problem (2):\n%s", n, log)
		}
		time.Sleep(500 * time.Millisecond)
		if got := ttlNow(); got != 3 {
			t.Errorf("TTL %d after a rejected reload, want 3 (the old config)", got)
		}
		if got := answerA(e.dns[0], "sessions.gtm.optest", noSubnet); got != opEuw {
			t.Errorf("sessions answers %q after a rejected reload, want %s", got, opEuw)
		}
	})

	t.Run("rename replace without signal", func(t *testing.T) {
		next := set
		next.ttl = "7s" // and sessions removed
		tmp := writeFile(t, linkDir, ".aagtm.yaml.tmp", e.render(next))
		if err := os.Rename(tmp, e.cfgPath); err != nil {
			t.Fatal(err)
		}
		took := waitFor(t, 5*time.Second, "TTL 7 after the file was replaced", func() bool { return ttlNow() == 7 })
		t.Logf("new TTL served %s after the rename", took.Round(time.Millisecond))
		if !strings.Contains(node.out.String(), "config file changed: reloading") {
			t.Errorf("node log lacks 'config file changed: reloading'")
		}
		if got := answerA(e.dns[0], "sessions.gtm.optest", noSubnet); got != "rcode: NXDOMAIN" {
			t.Errorf("removed database answers %q, want NXDOMAIN", got)
		}
	})

	close(stop)
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	if len(failures) > 0 {
		t.Errorf("%d of %d queries failed during the reloads, e.g. %v", len(failures), len(failures)+len(samples), failures[:min(5, len(failures))])
	}
	// TTLs only ever moved forward through 1, 3, 7.
	var seq []uint32
	for _, s := range samples {
		if len(seq) == 0 || seq[len(seq)-1] != s.ttl {
			seq = append(seq, s.ttl)
		}
	}
	if fmt.Sprint(seq) != "[1 3 7]" {
		t.Errorf("TTL sequence seen by the client = %v, want [1 3 7]", seq)
	}
	t.Logf("%d queries answered during the reloads, none failed", len(samples))
}
