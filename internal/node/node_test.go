package node

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/miekg/dns"

	"github.com/aagtm/aagtm/admin"
	"github.com/aagtm/aagtm/api"
	"github.com/aagtm/aagtm/config"
	"github.com/aagtm/aagtm/internal/testenv"
	"github.com/aagtm/aagtm/probes"
)

// fixture is one node wired to two real redis-server members and two
// in-process agents, all over real sockets.
type fixture struct {
	cfg     *config.Config
	node    *Node
	members map[string]*testenv.Redis
	cancel  context.CancelFunc
	done    chan error
	agents  sync.WaitGroup
	state   string
	yaml    string
	// lastAck is the last ack any agent received from the node.
	lastAck atomic.Pointer[api.Ack]
}

const fixtureYAML = `
zone: {name: gtm.test., ns: [{name: ns1.gtm.test., address: 127.0.0.1}]}
regions:
  east: {subnets: [10.1.0.0/16], prefer: [east, west]}
  west: {subnets: [10.2.0.0/16], prefer: [west, east]}
default_region: east
databases:
  cache:
    ttl: 1s
    failback_hold: 1s
    members:
      - {name: cache-e, region: east, addresses: [127.0.0.31], redis: "%s"}
      - {name: cache-w, region: west, addresses: [127.0.0.32], redis: "%s"}
probes: {interval: 100ms, timeout: 80ms, stale_after: 1s, checks: [ping, echo]}
nodes: [{name: ns1, report: "127.0.0.1:%d", dns: ["127.0.0.1:0"], admin: "127.0.0.1:0"}]
security: {insecure: true}
`

func newFixture(t *testing.T, stateFile string) *fixture {
	t.Helper()
	f := &fixture{members: map[string]*testenv.Redis{}, state: stateFile}
	f.members["cache-e"] = testenv.StartRedis(t, testenv.WithBind("127.0.0.31"))
	f.members["cache-w"] = testenv.StartRedis(t, testenv.WithBind("127.0.0.32"))
	f.yaml = fmt.Sprintf(fixtureYAML, f.members["cache-e"].URL(), f.members["cache-w"].URL(), testenv.FreePort(t, "127.0.0.1"))
	cfg, err := config.Parse([]byte(f.yaml))
	if err != nil {
		t.Fatal(err)
	}
	f.cfg = cfg
	f.start(t)
	return f
}

func logger(t *testing.T) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Level: hclog.Info, Output: testWriter{t}})
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// start runs the node and its agents until stop.
func (f *fixture) start(t *testing.T) {
	t.Helper()
	n, err := New(f.cfg, "ns1", logger(t), Options{StateFile: f.state})
	if err != nil {
		t.Fatal(err)
	}
	f.node = n
	ctx, cancel := context.WithCancel(context.Background())
	f.cancel, f.done = cancel, make(chan error, 1)
	go func() { f.done <- n.Run(ctx) }()
	select {
	case <-n.Started():
	case err := <-f.done:
		t.Fatalf("node stopped at start: %v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("node did not start")
	}
	for _, a := range f.cfg.Agents {
		agent, err := probes.NewAgent(f.cfg, a.ID, logger(t),
			probes.WithAckHook(func(_ string, ack *api.Ack) { f.lastAck.Store(ack) }))
		if err != nil {
			t.Fatal(err)
		}
		f.agents.Add(1)
		go func() { defer f.agents.Done(); _ = agent.Run(ctx) }()
	}
	t.Cleanup(func() { f.stop(t) })
}

func (f *fixture) stop(t *testing.T) {
	if f.cancel == nil {
		return
	}
	f.cancel()
	f.cancel = nil
	select {
	case err := <-f.done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Error("node did not stop within 10s")
	}
	f.agents.Wait()
}

// answer asks the node's DNS for cache.gtm.test as a client of subnet.
func (f *fixture) answer(t *testing.T, subnet string) string {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion("cache.gtm.test.", dns.TypeA)
	o := &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT}}
	o.SetUDPSize(1232)
	ip, _, _ := strings.Cut(subnet, "/")
	o.Option = append(o.Option, &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: 24, Address: parseIP(ip)})
	m.Extra = append(m.Extra, o)
	r, _, err := (&dns.Client{Timeout: time.Second}).Exchange(m, f.node.DNSAddrs()[0])
	if err != nil {
		return "error: " + err.Error()
	}
	var ips []string
	for _, rr := range r.Answer {
		if a, ok := rr.(*dns.A); ok {
			ips = append(ips, a.A.String())
		}
	}
	return strings.Join(ips, ",")
}

func parseIP(s string) []byte {
	var a [4]byte
	fmt.Sscanf(s, "%d.%d.%d.%d", &a[0], &a[1], &a[2], &a[3])
	return a[:]
}

func TestNodeFailoverDrainForceAndReload(t *testing.T) {
	f := newFixture(t, filepath.Join(t.TempDir(), "ns1.state"))
	east := "10.1.0.1"
	testenv.WaitFor(t, 5*time.Second, "east answer", func() bool { return f.answer(t, east) == "127.0.0.31" })

	// A failed member is failed over, through probes, ingest and engine.
	f.members["cache-e"].Kill()
	testenv.WaitFor(t, 5*time.Second, "failover to west", func() bool { return f.answer(t, east) == "127.0.0.32" })
	f.members["cache-e"].Restart()
	testenv.WaitFor(t, 10*time.Second, "failback to east", func() bool { return f.answer(t, east) == "127.0.0.31" })

	// Drain and force take effect at once and validate their arguments.
	if err := f.node.Drain("cache-e", admin.Change{}); err != nil {
		t.Fatal(err)
	}
	if got := f.answer(t, east); got != "127.0.0.32" {
		t.Errorf("after drain: east got %s, want 127.0.0.32", got)
	}
	if err := f.node.Drain("nope", admin.Change{}); err == nil {
		t.Error("draining an unknown member succeeded")
	}
	if err := f.node.Undrain("cache-e", admin.Change{}); err != nil {
		t.Fatal(err)
	}
	if err := f.node.Force("cache", "cache-w", admin.Change{}); err != nil {
		t.Fatal(err)
	}
	if got := f.answer(t, east); got != "127.0.0.32" {
		t.Errorf("after force: east got %s, want 127.0.0.32", got)
	}
	if err := f.node.Force("cache", "nope", admin.Change{}); err == nil {
		t.Error("forcing a member of another database succeeded")
	}

	// Reload: a new TTL is served; a config without this node is refused.
	next, err := config.Parse([]byte(strings.Replace(f.yaml, "ttl: 1s", "ttl: 7s", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.node.Reload(next); err != nil {
		t.Fatal(err)
	}
	if f.node.Config().Databases[0].TTL != 7*time.Second {
		t.Error("reload did not swap the config")
	}
	other, err := config.Parse([]byte(strings.Replace(f.yaml, "name: ns1, report", "name: ns9, report", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.node.Reload(other); err == nil || !strings.Contains(err.Error(), "ns1") {
		t.Errorf("reload without this node: got %v", err)
	}
	if f.node.Config() != next {
		t.Error("a refused reload replaced the config")
	}
}

func TestNodeRestoresStateAndIgnoresCorruptFile(t *testing.T) {
	state := filepath.Join(t.TempDir(), "ns1.state")
	f := newFixture(t, state)
	east := "10.1.0.1"
	testenv.WaitFor(t, 5*time.Second, "east answer", func() bool { return f.answer(t, east) == "127.0.0.31" })
	if err := f.node.Drain("cache-e", admin.Change{}); err != nil {
		t.Fatal(err)
	}
	f.stop(t)

	// Restarted, the node still has the drain from its state file.
	f.start(t)
	if got := f.answer(t, east); got != "127.0.0.32" {
		t.Errorf("after restart: east got %s, want the drain kept (127.0.0.32)", got)
	}
	if !f.node.Overrides().Drained["cache-e"] {
		t.Error("drain not restored")
	}
	f.stop(t)

	// A corrupt state file is reported and ignored: the node starts fresh.
	if err := os.WriteFile(state, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	f.start(t)
	if f.node.Overrides().Drained["cache-e"] {
		t.Error("corrupt state file was used")
	}
	testenv.WaitFor(t, 5*time.Second, "east answer after a corrupt state", func() bool { return f.answer(t, east) == "127.0.0.31" })
}

func TestNewRejectsUnknownNode(t *testing.T) {
	cfg, err := config.Parse([]byte(fmt.Sprintf(fixtureYAML, "redis://127.0.0.1:1", "redis://127.0.0.1:2", 7411)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := New(cfg, "ns7", hclog.NewNullLogger(), Options{}); err == nil || !strings.Contains(err.Error(), "--node") {
		t.Fatalf("got %v", err)
	}
}
