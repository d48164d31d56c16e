package e2e

import (
	"context"
	"fmt"
	"net"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// TestSentinelBench is bench/sentinel (run.sh sets AAGTM_BENCH_SENTINEL=1):
// the same go-redis writer (a SET every 20ms, 300ms timeouts) runs twice
// at once, one client through DNS and unbound (TTL 1s) and one through
// the Sentinel endpoints (FailoverClient), while the us-east member is
// killed, then hung (SIGSTOP), each followed by its recovery and
// failback. It prints each client's longest write gap, the detection time
// (fault → the nodes answer the next member) and, after the failback hold,
// how long until each client's every connection is back on the member.
//
// The DNS client dials the address unbound answers, with the port of the
// member that owns it: the test members share no port, where real
// Active-Active members do.
func TestSentinelBench(t *testing.T) {
	if os.Getenv("AAGTM_BENCH_SENTINEL") == "" {
		t.Skip("a benchmark: run bench/sentinel/run.sh")
	}
	unbound := requireTool(t, "unbound", "unbound")
	p := defaultParams()
	p.sentinel = true
	p.timeout = 200 * time.Millisecond
	d := deploy(t, p)
	resolver := startUnbound(t, unbound, d.dns)
	d.waitAllFresh(t)
	d.waitHealthy(t, resolver)

	ports := map[string]string{}
	for _, r := range testRegions {
		ports[r.bind] = strconv.Itoa(d.members[r.member].Port())
	}
	res := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var dd net.Dialer
		return dd.DialContext(ctx, network, resolver)
	}}
	common := func(o *redis.Options) {
		o.DialTimeout, o.ReadTimeout, o.WriteTimeout = 300*time.Millisecond, 300*time.Millisecond, 300*time.Millisecond
		o.PoolSize, o.MinIdleConns, o.MaxRetries, o.DisableIdentity = 4, 4, -1, true
	}
	dnsOpts := &redis.Options{Addr: "cache.gtm.test:6379", ClientName: "bench-dns",
		Dialer: func(ctx context.Context, network, _ string) (net.Conn, error) {
			ips, err := res.LookupHost(ctx, "cache.gtm.test")
			if err != nil {
				return nil, err
			}
			var dd net.Dialer
			return dd.DialContext(ctx, network, net.JoinHostPort(ips[0], ports[ips[0]]))
		}}
	common(dnsOpts)
	sentinelClient := redis.NewFailoverClient(&redis.FailoverOptions{
		MasterName: "cache", SentinelAddrs: d.sentinel, ClientName: "bench-sentinel",
		DialTimeout: 300 * time.Millisecond, ReadTimeout: 300 * time.Millisecond, WriteTimeout: 300 * time.Millisecond,
		PoolSize: 4, MinIdleConns: 4, MaxRetries: -1, DisableIdentity: true,
	})
	defer sentinelClient.Close()
	clients := []struct {
		name string
		w    *writer
	}{
		{"dns", nil},
		{"sentinel", startWriter(sentinelClient, "aagtm:bench:sentinel")},
	}
	defer func() {
		for _, c := range clients {
			c.w.stop()
		}
	}()
	use := d.members["cache-use"]
	fmt.Printf("bench/sentinel: interval %s, fall %d, timeout %s, failback_hold %s, TTL 1s, writer SET every 20ms with 300ms timeouts\n",
		p.interval, p.fall, p.timeout, p.failbackHold)
	fmt.Println("(a new DNS client per fault: a DNS client's pool never moves back after a failback)")
	fmt.Printf("%-6s %-9s %12s %12s %16s %22s\n", "fault", "client", "detection", "longest gap", "gap - detection", "failback: all conns back")
	for _, fault := range []struct {
		name         string
		inject, heal func()
	}{
		{"kill", use.Kill, func() { use.Restart() }},
		{"hang", use.Stop, use.Cont},
	} {
		// A DNS client's pool never moves back after a failback (no
		// connection breaks), so each fault gets a new DNS client, which
		// starts on the member DNS answers now.
		if clients[0].w != nil {
			clients[0].w.stop()
			clients[0].w.rdb.Close()
		}
		clients[0].w = startWriter(redis.NewClient(dnsOpts), "aagtm:bench:dns")
		waitFor(t, 10*time.Second, "both writers writing on us-east's member", func() bool {
			for _, c := range clients {
				if c.w.lastAddr() != net.JoinHostPort(addrUse, ports[addrUse]) || time.Since(c.w.lastOK()) > 100*time.Millisecond {
					return false
				}
			}
			return true
		})
		for _, c := range clients {
			c.w.resetGap()
		}
		at := time.Now()
		fault.inject()
		nodes, _ := d.watchMove(t, resolver, at, 10*time.Second)
		detection := nodes[0]
		for _, n := range nodes[1:] {
			detection = max(detection, n)
		}
		// Let both clients settle on the next member (the DNS client
		// needs the resolver's cached answer to expire first).
		waitFor(t, 15*time.Second, "both writers on eu-west's member", func() bool {
			for _, c := range clients {
				if c.w.lastAddr() != net.JoinHostPort(addrEuw, ports[addrEuw]) || time.Since(c.w.lastOK()) > 100*time.Millisecond {
					return false
				}
			}
			return true
		})
		gaps := []time.Duration{clients[0].w.maxGap(), clients[1].w.maxGap()}
		fault.heal()
		// The hold's end: every node answers us-east's member again.
		waitFor(t, 30*time.Second, "every node to fail back", func() bool {
			for _, s := range d.dns {
				if answerA(s, "cache.gtm.test", noSubnet) != addrUse {
					return false
				}
			}
			return true
		})
		holdEnd := time.Now()
		back := map[string]time.Duration{}
		deadline := holdEnd.Add(10 * time.Second)
		for time.Now().Before(deadline) && len(back) < len(clients) {
			for _, c := range clients {
				if _, done := back[c.name]; done {
					continue
				}
				if connectionsNamed(d.members["cache-euw"], "bench-"+c.name) == 0 && connectionsNamed(use, "bench-"+c.name) > 0 {
					back[c.name] = time.Since(holdEnd)
				}
			}
			time.Sleep(10 * time.Millisecond)
		}
		for i, c := range clients {
			fb := "not within 10s"
			if b, ok := back[c.name]; ok {
				fb = b.Round(time.Millisecond).String()
			}
			fmt.Printf("%-6s %-9s %12s %12s %16s %22s\n", fault.name, c.name, detection.Round(time.Millisecond),
				gaps[i].Round(time.Millisecond), (gaps[i] - detection).Round(time.Millisecond), fb)
		}
		if g := gaps[1]; g > detection+150*time.Millisecond {
			t.Logf("%s: the Sentinel client's longest gap %s exceeds detection %s + 150ms (the target)", fault.name, g, detection)
		}
		if b, ok := back["sentinel"]; !ok || b > p.interval {
			t.Logf("%s: the Sentinel client's connections were back %v after the hold's end, target within one interval (%s)", fault.name, b, p.interval)
		}
		d.waitHealthy(t, resolver)
	}
}
