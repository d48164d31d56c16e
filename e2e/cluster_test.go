package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/aagtm/aagtm/admin"
	"github.com/aagtm/aagtm/internal/testenv"
)

// regionSpec is one region of the test deployment.
type regionSpec struct {
	name, member, bind, subnet, prefer string
}

// The test deployment: three regions with client subnets (used only as ECS
// data, never contacted) and members on their own loopback addresses.
var testRegions = []regionSpec{
	{"us-east", "cache-use", "127.0.0.21", "10.1.0.0/16", "[us-east, eu-west, ap-south]"},
	{"eu-west", "cache-euw", "127.0.0.22", "10.2.0.0/16", "[eu-west, us-east, ap-south]"},
	{"ap-south", "cache-aps", "127.0.0.23", "10.3.0.0/16", "[ap-south, eu-west, us-east]"},
}

// clientOf returns an ECS subnet inside a region.
func clientOf(region string) netip.Prefix {
	for _, r := range testRegions {
		if r.name == region {
			p := netip.MustParsePrefix(r.subnet)
			return netip.PrefixFrom(p.Addr().Next(), 24).Masked()
		}
	}
	panic("unknown region " + region)
}

// deployment is a running test GTM: members, agents, nodes.
type deployment struct {
	cfgPath string
	members map[string]*testenv.Redis // by member name
	dns     []string                  // each node's DNS address
	admin   []string                  // each node's admin address
	report  []string                  // each node's report (ingest) address
	// sentinel is each node's Sentinel endpoint when params.sentinel.
	sentinel []string
	nodes    []*proc
	agents   map[string]*proc // by agent id (= region)
	params   deployParams
	// proxies are the agents' paths when params.proxied, keyed by
	// proxyKey(agent, member or node name).
	proxies map[string]*tcpProxy
	// repl copies heartbeats between members when params.replicate.
	repl *replicator
}

// deployParams are the health settings under test.
type deployParams struct {
	interval, timeout, failbackHold, staleAfter time.Duration
	rise, fall                                  int
	nodes                                       int
	checks                                      string
	extraDB                                     string
	// lagTolerance sets databases.cache.lag_tolerance when positive.
	lagTolerance time.Duration
	// replicate runs a replicator (see there) from before the agents start;
	// use it with the lag check.
	replicate bool
	// proxied routes each agent's connections, to every member and to
	// every node's report port, through a tcpProxy of its own, so that a
	// test can cut one agent off from one member or from the nodes. Each
	// agent then reads a config of its own that differs from the nodes'
	// only in those addresses (members, answered addresses and settings
	// are the same); nodes and agents log the config-hash mismatch.
	proxied bool
	// sentinel serves the Sentinel protocol on every node.
	sentinel bool
}

func defaultParams() deployParams {
	return deployParams{
		interval: 250 * time.Millisecond, timeout: 150 * time.Millisecond,
		failbackHold: 3 * time.Second, staleAfter: time.Second,
		rise: 2, fall: 2, nodes: 2, checks: "[ping, echo, keyspace]",
	}
}

// detection is the worst-case detection bound of the params.
func (p deployParams) detection() time.Duration {
	return time.Duration(p.fall)*p.interval + p.timeout
}

// nodeName is the name of the i-th node (from 0).
func nodeName(i int) string { return fmt.Sprintf("ns%d", i+1) }

// proxyKey names the proxy of agent's path to a member or a node.
func proxyKey(agent, to string) string { return agent + ">" + to }

// proxy returns the proxy of agent's path to a member or a node (by name);
// the deployment must be proxied.
func (d *deployment) proxy(t *testing.T, agent, to string) *tcpProxy {
	t.Helper()
	p, ok := d.proxies[proxyKey(agent, to)]
	if !ok {
		t.Fatalf("no proxy from agent %s to %s (deployParams.proxied not set?)", agent, to)
	}
	return p
}

// configYAML renders the deployment's config with each member's Redis URL
// and each node's report address given by the callers; listen, when not
// nil, sets each node's listen address.
func (d *deployment) configYAML(redisURL func(member string) string, report, listen func(i int) string, stateDir string) string {
	p := d.params
	var b strings.Builder
	fmt.Fprintf(&b, "zone:\n  name: gtm.test.\n  ns: [{name: ns1.gtm.test., address: 127.0.0.1}]\nregions:\n")
	for _, r := range testRegions {
		fmt.Fprintf(&b, "  %s: {subnets: [%s], prefer: %s}\n", r.name, r.subnet, r.prefer)
	}
	fmt.Fprintf(&b, "default_region: us-east\ndatabases:\n  cache:\n    mode: nearest\n    ttl: 1s\n    failback_hold: %s\n", p.failbackHold)
	if p.lagTolerance > 0 {
		fmt.Fprintf(&b, "    lag_tolerance: %s\n", p.lagTolerance)
	}
	b.WriteString("    members:\n")
	for _, r := range testRegions {
		fmt.Fprintf(&b, "      - {name: %s, region: %s, addresses: [%s], redis: %q}\n", r.member, r.name, r.bind, redisURL(r.member))
	}
	b.WriteString(p.extraDB)
	fmt.Fprintf(&b, "probes:\n  interval: %s\n  timeout: %s\n  rise: %d\n  fall: %d\n  stale_after: %s\n  checks: %s\n  keyspace_keys: 4\n",
		p.interval, p.timeout, p.rise, p.fall, p.staleAfter, p.checks)
	// The samplers and dnsperf ask for one name from 127.0.0.1 thousands of
	// times a second: response rate limiting (tested in dnsserver and
	// ratelimit_test.go) would measure itself, not failover.
	b.WriteString("dns:\n  rate_limit: {responses_per_second: 0}\n")
	b.WriteString("nodes:\n")
	for i := range d.dns {
		extra := ""
		if listen != nil {
			extra = fmt.Sprintf(", listen: %q", listen(i))
		}
		if len(d.sentinel) > 0 {
			extra += fmt.Sprintf(", sentinel: %q", d.sentinel[i])
		}
		fmt.Fprintf(&b, "  - {name: %s, report: %q%s, dns: [%q], admin: %q, state_file: %q}\n",
			nodeName(i), report(i), extra, d.dns[i], d.admin[i], fmt.Sprintf("%s/%s.state", stateDir, nodeName(i)))
	}
	b.WriteString("security:\n  insecure: true\n")
	return b.String()
}

// deploy starts 3 redis-server members, the nodes and one agent per region
// from one config file (or, when proxied, one per agent), and waits until
// every node answers every region with its own member.
func deploy(t *testing.T, p deployParams) *deployment {
	t.Helper()
	d := &deployment{members: map[string]*testenv.Redis{}, agents: map[string]*proc{}, params: p, proxies: map[string]*tcpProxy{}}
	for _, r := range testRegions {
		d.members[r.member] = testenv.StartRedis(t, testenv.WithBind(r.bind))
	}
	for i := 0; i < p.nodes; i++ {
		d.dns = append(d.dns, fmt.Sprintf("127.0.0.1:%d", freeUDPTCPPort(t)))
		d.admin = append(d.admin, fmt.Sprintf("127.0.0.1:%d", freeTCPPort(t)))
		d.report = append(d.report, fmt.Sprintf("127.0.0.1:%d", freeTCPPort(t)))
		if p.sentinel {
			d.sentinel = append(d.sentinel, fmt.Sprintf("127.0.0.1:%d", freeTCPPort(t)))
		}
	}
	dir := t.TempDir()
	memberURL := func(m string) string { return d.members[m].URL() }
	realReport := func(i int) string { return d.report[i] }
	d.cfgPath = writeFile(t, dir, "aagtm.yaml", d.configYAML(memberURL, realReport, nil, dir))

	agentCfg := map[string]string{}
	for _, r := range testRegions {
		agentCfg[r.name] = d.cfgPath
		if !p.proxied {
			continue
		}
		for _, m := range testRegions {
			d.proxies[proxyKey(r.name, m.member)] = startProxy(t, d.members[m.member].Addr())
		}
		for i := range d.report {
			d.proxies[proxyKey(r.name, nodeName(i))] = startProxy(t, d.report[i])
		}
		viaURL := func(m string) string { return "redis://" + d.proxies[proxyKey(r.name, m)].Addr() }
		viaReport := func(i int) string { return d.proxies[proxyKey(r.name, nodeName(i))].Addr() }
		agentCfg[r.name] = writeFile(t, dir, "agent-"+r.name+".yaml", d.configYAML(viaURL, viaReport, realReport, dir))
	}
	if p.replicate {
		d.repl = startReplicator(t, d.members)
	}

	for i := range d.dns {
		d.nodes = append(d.nodes, start(t, "serve "+nodeName(i), "serve", "-c", d.cfgPath, "--node", nodeName(i), "--log-level", "info"))
	}
	for _, r := range testRegions {
		d.agents[r.name] = start(t, "probe "+r.name, "probe", "-c", agentCfg[r.name], "--agent", r.name, "--log-level", "info")
	}
	for _, server := range d.dns {
		for _, r := range testRegions {
			waitFor(t, 15*time.Second, fmt.Sprintf("%s to answer %s for %s", server, r.bind, r.name), func() bool {
				return answerA(server, "cache.gtm.test", clientOf(r.name)) == r.bind
			})
		}
	}
	return d
}

// replicator stands in for Active-Active replication, which independent
// redis-server processes do not have: every 20ms it copies each region's
// heartbeat key aagtm:hb:{region} from that region's own member to the
// other members, as replication would carry it, so that the agents' lag
// check measures a small lag. Pausing the copies to one member simulates
// replication to it stalling: its lag grows as real lag would.
type replicator struct {
	clients map[string]*redis.Client // by member name; only run uses them
	addrs   map[string]string        // member name → host:port
	region  map[string]string        // member name → region
	cancel  context.CancelFunc
	done    chan struct{}

	mu     sync.Mutex
	paused map[string]bool
}

// startReplicator starts copying between members; it stops in t.Cleanup.
func startReplicator(t *testing.T, members map[string]*testenv.Redis) *replicator {
	r := &replicator{clients: map[string]*redis.Client{}, addrs: map[string]string{}, region: map[string]string{}, paused: map[string]bool{}, done: make(chan struct{})}
	for _, spec := range testRegions {
		r.region[spec.member] = spec.name
		r.addrs[spec.member] = members[spec.member].Addr()
		r.clients[spec.member] = r.newClient(spec.member)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go r.run(ctx)
	t.Cleanup(func() {
		r.cancel()
		<-r.done
		for _, c := range r.clients {
			c.Close()
		}
	})
	return r
}

// newClient returns a client of member. After a failed call the
// replicator replaces it: go-redis stops dialling a server for a second
// after a few failed dials, and replication should resume as soon as a
// restarted member is back.
func (r *replicator) newClient(member string) *redis.Client {
	return redis.NewClient(&redis.Options{
		Addr: r.addrs[member], DialTimeout: 100 * time.Millisecond,
		ReadTimeout: 100 * time.Millisecond, WriteTimeout: 100 * time.Millisecond,
		MaxRetries: -1, DialerRetries: 1, PoolSize: 1, DisableIdentity: true,
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
	})
}

// failed replaces member's client after an error other than a missing key.
func (r *replicator) failed(member string, err error) {
	if err == nil || err == redis.Nil {
		return
	}
	r.clients[member].Close()
	r.clients[member] = r.newClient(member)
}

// pause stops (on) or resumes (!on) copying to member.
func (r *replicator) pause(member string, on bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.paused[member] = on
}

func (r *replicator) run(ctx context.Context) {
	defer close(r.done)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			r.copyOnce(ctx)
		}
	}
}

func (r *replicator) copyOnce(ctx context.Context) {
	for _, src := range testRegions {
		key := "aagtm:hb:{" + src.name + "}"
		val, err := r.clients[src.member].Get(ctx, key).Result()
		if err != nil {
			r.failed(src.member, err)
			continue // source down, hung, or no heartbeat yet
		}
		for _, dst := range testRegions {
			r.mu.Lock()
			paused := r.paused[dst.member]
			r.mu.Unlock()
			if dst != src && !paused {
				r.failed(dst.member, r.clients[dst.member].Set(ctx, key, val, 0).Err())
			}
		}
	}
}

// status fetches a node's admin status through the CLI's admin client.
func status(adminAddr string) (*admin.Status, error) {
	c, err := admin.NewClient(adminAddr, adminAddr, "")
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	return c.Status(ctx)
}

// waitAllFresh waits until every node has fresh reports from every agent
// about every member, so that what follows is decided by probes.
func (d *deployment) waitAllFresh(t *testing.T) {
	t.Helper()
	for _, a := range d.admin {
		waitFor(t, 15*time.Second, "fresh reports from every agent at "+a, func() bool {
			st, err := status(a)
			if err != nil || len(st.Members) == 0 {
				return false
			}
			for _, m := range st.Members {
				if len(m.Vantages) != len(testRegions) {
					return false
				}
				for _, v := range m.Vantages {
					if !v.Fresh || v.Passes < d.params.rise {
						return false
					}
				}
			}
			return true
		})
	}
}

// quietRedis drops go-redis's own log lines (dial failures of the test
// replicator while a member is down are expected, not news).
type quietRedis struct{}

func (quietRedis) Printf(context.Context, string, ...any) {}

func init() { redis.SetLogger(quietRedis{}) }
