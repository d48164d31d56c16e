package e2e

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/aagtm/aagtm/internal/testenv"
)

// TestSentinelClients points real Sentinel clients at the nodes' Sentinel
// endpoints: redis-cli (RESP2 and RESP3), redis-py's Sentinel (Debian's
// python3-redis), ioredis and node-redis from npm, and go-redis's
// FailoverClient writing through a member kill, a member hang and both
// failbacks, after which every pooled connection is on the recovered
// member.
//
// Sentinel clients connect from 127.0.0.1, which no region subnet holds:
// they are in the default region, us-east, whose member is cache-use
// (addrUse); its next region is eu-west (addrEuw).
func TestSentinelClients(t *testing.T) {
	p := defaultParams()
	p.sentinel = true
	d := deploy(t, p)
	d.waitAllFresh(t)
	usePort := strconv.Itoa(d.members["cache-use"].Port())
	euwPort := strconv.Itoa(d.members["cache-euw"].Port())
	// The Sentinel answer is DNS's answer for the same client region.
	if got := answerA(d.dns[0], "cache.gtm.test", clientOf("us-east")); got != addrUse {
		t.Fatalf("DNS answers us-east %q, want %s", got, addrUse)
	}

	t.Run("redis-cli", func(t *testing.T) {
		cli := requireTool(t, "redis-cli", "redis-tools")
		for _, addr := range d.sentinel {
			host, port := splitHostPort(t, addr)
			for _, proto := range [][]string{nil, {"-3"}} {
				args := append(append([]string{"-h", host, "-p", port}, proto...), "SENTINEL", "get-master-addr-by-name", "cache")
				out, err := exec.Command(cli, args...).CombinedOutput()
				if err != nil {
					t.Fatalf("redis-cli %v: %v\n%s", args, err, out)
				}
				if got, want := strings.Fields(string(out)), []string{addrUse, usePort}; strings.Join(got, " ") != strings.Join(want, " ") {
					t.Errorf("redis-cli %v = %q, want %q", args, got, want)
				}
			}
			out, err := exec.Command(cli, "-3", "-h", host, "-p", port, "SENTINEL", "master", "cache@eu-west").CombinedOutput()
			if err != nil {
				t.Fatalf("redis-cli -3 SENTINEL master: %v\n%s", err, out)
			}
			for _, want := range []string{"ip " + addrEuw, "port " + euwPort, "flags master", "num-other-sentinels 1"} {
				if !strings.Contains(string(out), want) {
					t.Errorf("redis-cli -3 SENTINEL master cache@eu-west lacks %q:\n%s", want, out)
				}
			}
		}
	})

	t.Run("redis-py", func(t *testing.T) {
		python := "/usr/bin/python3" // Debian's, with python3-redis
		if _, err := os.Stat(python); err != nil {
			python = requireTool(t, "python3", "python3")
		}
		if err := exec.Command(python, "-c", "import redis.sentinel").Run(); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("python3-redis missing (apt-get install -y python3-redis): %v", err)
			}
			t.Skip("python3-redis missing: apt-get install -y python3-redis")
		}
		var addrs []string
		for _, a := range d.sentinel {
			h, p := splitHostPort(t, a)
			addrs = append(addrs, fmt.Sprintf("(%q, %s)", h, p))
		}
		script := fmt.Sprintf(`from redis.sentinel import Sentinel
s = Sentinel([%s], socket_timeout=1, min_other_sentinels=1)
host, port = s.discover_master("cache")
m = s.master_for("cache", socket_timeout=1)
m.set("aagtm:e2e:py", "ok")
print(host, port, m.get("aagtm:e2e:py").decode())
`, strings.Join(addrs, ", "))
		out, err := exec.Command(python, "-c", script).CombinedOutput()
		if err != nil {
			t.Fatalf("redis-py: %v\n%s", err, out)
		}
		if got, want := strings.TrimSpace(string(out)), addrUse+" "+usePort+" ok"; got != want {
			t.Errorf("redis-py discovered and wrote %q, want %q", got, want)
		}
	})

	t.Run("node", func(t *testing.T) {
		runNodeClients(t, d, usePort)
	})

	t.Run("go-redis", func(t *testing.T) {
		rdb := redis.NewFailoverClient(&redis.FailoverOptions{
			MasterName: "cache", SentinelAddrs: d.sentinel, ClientName: "e2e-sentinel",
			DialTimeout: 300 * time.Millisecond, ReadTimeout: 300 * time.Millisecond, WriteTimeout: 300 * time.Millisecond,
			PoolSize: 4, MinIdleConns: 4, MaxRetries: -1, DisableIdentity: true,
		})
		defer rdb.Close()
		w := startWriter(rdb, "aagtm:e2e:writer")
		defer w.stop()
		waitFor(t, 5*time.Second, "writes to flow", func() bool { return w.writes() > 10 })
		onlyOn(t, d, addrUse, "before the faults")

		for _, fault := range []struct {
			name         string
			inject, heal func()
		}{
			{"kill", d.members["cache-use"].Kill, func() { d.members["cache-use"].Restart() }},
			{"hang", d.members["cache-use"].Stop, d.members["cache-use"].Cont},
		} {
			w.resetGap()
			at := time.Now()
			fault.inject()
			waitFor(t, 10*time.Second, "writes on "+addrEuw+" after the "+fault.name, func() bool {
				return w.lastAddr() == net.JoinHostPort(addrEuw, euwPort) && time.Since(w.lastOK()) < 100*time.Millisecond
			})
			gap := w.maxGap()
			t.Logf("%s: longest write gap %s (detection bound %s)", fault.name, gap.Round(time.Millisecond), p.detection())
			if limit := p.detection() + time.Second; gap > limit {
				t.Errorf("%s: longest write gap %s, beyond detection %s + 1s", fault.name, gap, p.detection())
			}
			fault.heal()
			healed := time.Now()
			waitFor(t, 20*time.Second, "writes back on "+addrUse+" after the failback", func() bool {
				return w.lastAddr() == net.JoinHostPort(addrUse, usePort) && w.lastOKAfter(healed)
			})
			t.Logf("%s: failback %s after healing (hold %s), %s after the fault", fault.name,
				time.Since(healed).Round(time.Millisecond), p.failbackHold, time.Since(at).Round(time.Millisecond))
			// go-redis closes pooled connections to the old master on
			// +switch-master: within a probe interval, none is left.
			time.Sleep(p.interval)
			onlyOn(t, d, addrUse, "after the "+fault.name+" failback")
		}
		if n := w.failures(); n == 0 {
			t.Log("no write failed (the member's death was seen between writes)")
		}
	})
}

// onlyOn checks that the e2e-sentinel client's connections are all on
// the member at host, none on the others.
func onlyOn(t *testing.T, d *deployment, host, when string) {
	t.Helper()
	for name, m := range d.members {
		list := fmt.Sprint(m.MustDo("CLIENT", "LIST"))
		n := connectionsNamed(m, "e2e-sentinel")
		switch {
		case m.Host() == host && n == 0:
			t.Errorf("%s: no pooled connection on %s (%s)", when, name, host)
		case m.Host() != host && n > 0:
			t.Errorf("%s: %d pooled connections still on %s:\n%s", when, n, name, list)
		}
	}
}

// connectionsNamed counts member m's client connections named name.
func connectionsNamed(m *testenv.Redis, name string) int {
	return strings.Count(fmt.Sprint(m.MustDo("CLIENT", "LIST")), "name="+name+" ")
}

// writer SETs a key every 20ms with a 300ms timeout, as the benchmark's
// client does, and records the longest time between successful writes.
type writer struct {
	rdb    redis.UniversalClient
	key    string
	cancel context.CancelFunc
	done   chan struct{}

	mu     sync.Mutex
	ok     time.Time
	addr   string // the address of the last successful write
	gap    time.Duration
	count  int
	failed int
}

func startWriter(rdb redis.UniversalClient, key string) *writer {
	ctx, cancel := context.WithCancel(context.Background())
	w := &writer{rdb: rdb, key: key, cancel: cancel, done: make(chan struct{}), ok: time.Now()}
	go w.run(ctx)
	return w
}

func (w *writer) run(ctx context.Context) {
	defer close(w.done)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		cctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		var addr string
		err := w.rdb.Do(cctx, "SET", w.key, i).Err()
		if err == nil {
			// Which member took it: the server's own view of the link.
			addr, err = w.rdb.Do(cctx, "CLIENT", "INFO").Text()
			addr = fieldOf(addr, "laddr")
		}
		cancel()
		now := time.Now()
		w.mu.Lock()
		if err != nil {
			w.failed++
		} else {
			if g := now.Sub(w.ok); g > w.gap {
				w.gap = g
			}
			w.ok, w.addr = now, addr
			w.count++
		}
		w.mu.Unlock()
	}
}

// fieldOf returns key's value in a CLIENT INFO line.
func fieldOf(info, key string) string {
	for _, f := range strings.Fields(info) {
		if v, ok := strings.CutPrefix(f, key+"="); ok {
			return v
		}
	}
	return ""
}

func (w *writer) stop() { w.cancel(); <-w.done }

func (w *writer) writes() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.count
}

func (w *writer) failures() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.failed
}

func (w *writer) lastAddr() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.addr
}

func (w *writer) lastOK() time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.ok
}

func (w *writer) lastOKAfter(t time.Time) bool { return w.lastOK().After(t) }

func (w *writer) maxGap() time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.gap
}

func (w *writer) resetGap() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.gap = 0
}

// nodeModules returns a folder with ioredis and node-redis installed:
// $AAGTM_NPM_CACHE, else ~/.cache/aagtm-npm, installed from npm when
// missing (scripts/test.sh installs Node and npm).
func nodeModules(t *testing.T) string {
	t.Helper()
	requireTool(t, "node", "nodejs")
	npm := requireTool(t, "npm", "npm")
	dir := os.Getenv("AAGTM_NPM_CACHE")
	if dir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			t.Fatal(err)
		}
		dir = home + "/.cache/aagtm-npm"
	}
	if _, err := os.Stat(dir + "/node_modules/ioredis/package.json"); err == nil {
		if _, err := os.Stat(dir + "/node_modules/redis/package.json"); err == nil {
			return dir + "/node_modules"
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(npm, "install", "--prefix", dir, "--no-audit", "--no-fund", "ioredis@6.0.0", "redis@6.3.1")
	if out, err := cmd.CombinedOutput(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("npm install ioredis redis: %v\n%s", err, out)
		}
		t.Skipf("npm install ioredis redis failed (offline?): %v", err)
	}
	return dir + "/node_modules"
}

// runNodeClients runs testdata/sentinel-clients.cjs and checks that
// ioredis and node-redis each wrote their key on us-east's member.
func runNodeClients(t *testing.T, d *deployment, usePort string) {
	mods := nodeModules(t)
	cmd := exec.Command("node", append([]string{"testdata/sentinel-clients.cjs"}, d.sentinel...)...)
	cmd.Env = append(os.Environ(), "NODE_MODULES="+mods)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("node sentinel-clients.cjs: %v\n%s", err, out)
	}
	text := string(out)
	if strings.Contains(text, "error: ") {
		t.Errorf("a Node client failed:\n%s", text)
	}
	if !strings.Contains(text, "laddr="+net.JoinHostPort(addrUse, usePort)) {
		t.Errorf("ioredis did not write through %s:%s:\n%s", addrUse, usePort, text)
	}
	for _, key := range []string{"aagtm:e2e:ioredis", "aagtm:e2e:node-redis"} {
		if got := fmt.Sprint(d.members["cache-use"].MustDo("GET", key)); got != "ok" {
			t.Errorf("%s on cache-use = %q, want ok (written by the Node client through the Sentinel answer)", key, got)
		}
	}
}
