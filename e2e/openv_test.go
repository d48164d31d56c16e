package e2e

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/aagtm/aagtm/admin"
	"github.com/aagtm/aagtm/internal/testenv"
	"github.com/aagtm/aagtm/overrides"
	"github.com/aagtm/aagtm/policy"
)

// The operations tests (operate_test.go, reload_test.go,
// ratelimit_test.go) run on a deployment of their own, opEnv: like
// deploy() in cluster_test.go, but with settings those tests change (admin
// token, rate limiting, TTL, extra databases), a config it can re-render
// with the same ports for reloads, and nodes and agents it can stop and
// start again with the same arguments.

// The zone is gtm.optest., not the gtm.test. of the other e2e tests, so
// that a stray query of another test for a port this deployment reuses can
// neither match an answer nor share a rate-limit bucket.

// opRegions are the regions of deploy() (testRegions) with members on
// loopback addresses of their own.
var opRegions = func() []regionSpec {
	out := slices.Clone(testRegions)
	for i := range out {
		out[i].bind = fmt.Sprintf("127.0.0.%d", 31+i)
	}
	return out
}()

// The members' addresses, as answered.
const (
	opUse = "127.0.0.31"
	opEuw = "127.0.0.32"
	opAps = "127.0.0.33"
)

// opClient returns an ECS client subnet inside region.
func opClient(region string) netip.Prefix {
	for _, r := range opRegions {
		if r.name == region {
			p := netip.MustParsePrefix(r.subnet)
			return netip.PrefixFrom(p.Addr().Next(), 24).Masked()
		}
	}
	panic("unknown region " + region)
}

// opSettings are what a test chooses of the deployment's config.
type opSettings struct {
	nodes        int
	agents       bool          // start one probe agent per region
	ttl          string        // databases.cache.ttl
	failbackHold time.Duration // databases.cache.failback_hold
	adminToken   string        // written to a file named by security.admin_token_file
	dnsSection   string        // YAML lines under dns:, each indented by 2
	extraDB      string        // YAML of more databases, indented by 2
	brokenRegion string        // replaces cache-use's region (to make the config invalid)
	agentTokens  bool          // one token per agent: agents[].token_file = <dir>/<region>.token
	adminProxies bool          // the config names a proxy per node as its admin address (see opEnv.proxies)
}

func defaultOpSettings() opSettings {
	return opSettings{nodes: 2, agents: true, ttl: "1s", failbackHold: 2 * time.Second}
}

// opEnv is a running operations deployment.
type opEnv struct {
	t       *testing.T
	dir     string
	cfgPath string
	set     opSettings
	members map[string]*testenv.Redis

	dns, admin, report, state []string // per node
	nodes                     []*proc
	starts                    []int // per node: how many times started
	agents                    []*proc
	// proxies, with set.adminProxies, stand between each node's admin
	// listener (admin[i], passed to serve --admin) and everyone who
	// calls it by the config (other nodes, the CLI with -c).
	proxies []*tcpProxy
	// nodeEnv adds environment variables to a node's process.
	nodeEnv map[int][]string
}

// opDeploy starts the members, writes the config and starts the nodes and,
// with set.agents, the agents; then waits until every node answers (with
// agents: every region its own member).
func opDeploy(t *testing.T, set opSettings) *opEnv {
	t.Helper()
	e := &opEnv{t: t, dir: t.TempDir(), set: set, members: map[string]*testenv.Redis{}, nodeEnv: map[int][]string{}}
	for _, r := range opRegions {
		e.members[r.member] = testenv.StartRedis(t, testenv.WithBind(r.bind))
	}
	// freeTCPPort and freeUDPTCPPort never hand out a port twice.
	port := func(pick func(*testing.T) int) string { return fmt.Sprintf("127.0.0.1:%d", pick(t)) }
	tcpPort := freeTCPPort
	for i := 1; i <= set.nodes; i++ {
		e.dns = append(e.dns, port(freeUDPTCPPort))
		e.admin = append(e.admin, port(tcpPort))
		e.report = append(e.report, port(tcpPort))
		e.state = append(e.state, filepath.Join(e.dir, fmt.Sprintf("ns%d.state", i)))
	}
	if set.adminProxies {
		for _, a := range e.admin {
			e.proxies = append(e.proxies, startProxy(t, a))
		}
	}
	e.cfgPath = writeFile(t, e.dir, "aagtm.yaml", e.render(set))
	e.nodes = make([]*proc, set.nodes)
	e.starts = make([]int, set.nodes)
	for i := range e.nodes {
		e.startNode(i)
	}
	if set.agents {
		e.startAgents()
	}
	for i := range e.nodes {
		e.waitServing(i)
	}
	return e
}

// render returns the config text of set with the deployment's ports.
func (e *opEnv) render(set opSettings) string {
	var b strings.Builder
	b.WriteString("zone:\n  name: gtm.optest.\n  ns: [{name: ns1.gtm.optest., address: 127.0.0.1}]\nregions:\n")
	for _, r := range opRegions {
		fmt.Fprintf(&b, "  %s: {subnets: [%s], prefer: %s}\n", r.name, r.subnet, r.prefer)
	}
	fmt.Fprintf(&b, "default_region: us-east\ndatabases:\n  cache:\n    mode: nearest\n    ttl: %s\n    failback_hold: %s\n    members:\n", set.ttl, set.failbackHold)
	for _, r := range opRegions {
		region := r.name
		if r.member == "cache-use" && set.brokenRegion != "" {
			region = set.brokenRegion
		}
		fmt.Fprintf(&b, "      - {name: %s, region: %s, addresses: [%s], redis: %q}\n", r.member, region, r.bind, e.members[r.member].URL())
	}
	b.WriteString(set.extraDB)
	if set.agentTokens {
		b.WriteString("agents:\n")
		for _, r := range opRegions {
			// Written once: a test may rotate the file afterwards.
			tok := filepath.Join(e.dir, r.name+".token")
			if _, err := os.Stat(tok); err != nil {
				writeFile(e.t, e.dir, r.name+".token", "e2e-token-"+r.name+"\n")
			}
			fmt.Fprintf(&b, "  - {id: %s, region: %s, token_file: %q}\n", r.name, r.name, tok)
		}
	}
	b.WriteString("probes:\n  interval: 250ms\n  timeout: 150ms\n  rise: 2\n  fall: 2\n  stale_after: 1s\n  checks: [ping, echo]\n")
	if set.dnsSection != "" {
		b.WriteString("dns:\n" + set.dnsSection)
	}
	b.WriteString("nodes:\n")
	for i := range e.dns {
		admin := e.admin[i]
		if set.adminProxies {
			admin = e.proxies[i].Addr()
		}
		fmt.Fprintf(&b, "  - {name: ns%d, report: %q, dns: [%q], admin: %q, state_file: %q}\n",
			i+1, e.report[i], e.dns[i], admin, e.state[i])
	}
	b.WriteString("security:\n  insecure: true\n")
	if set.adminToken != "" {
		tok := writeFile(e.t, e.dir, "admin-token", set.adminToken+"\n")
		fmt.Fprintf(&b, "  admin_token_file: %q\n", tok)
	}
	return b.String()
}

// nodeName is the config name of node i.
func (e *opEnv) nodeName(i int) string { return fmt.Sprintf("ns%d", i+1) }

// startNode starts (or starts again) node i with the same arguments.
func (e *opEnv) startNode(i int) *proc {
	e.starts[i]++
	name := fmt.Sprintf("serve %s (start %d)", e.nodeName(i), e.starts[i])
	e.nodes[i] = startEnv(e.t, name, e.nodeEnv[i], "serve", "-c", e.cfgPath, "--node", e.nodeName(i), "--admin", e.admin[i], "--log-level", "info")
	return e.nodes[i]
}

// stopNode stops node i with SIGTERM and expects a graceful exit.
func (e *opEnv) stopNode(i int) {
	e.t.Helper()
	if err := e.nodes[i].stop(e.t); err != nil {
		e.t.Errorf("%s exited with %v after SIGTERM, want 0", e.nodes[i].name, err)
	}
}

// startAgents starts one probe agent per region.
func (e *opEnv) startAgents() {
	e.agents = e.agents[:0]
	for _, r := range opRegions {
		e.agents = append(e.agents, start(e.t, "probe "+r.name, "probe", "-c", e.cfgPath, "--agent", r.name, "--log-level", "info"))
	}
}

// stopAgents stops every agent.
func (e *opEnv) stopAgents() {
	for _, a := range e.agents {
		if err := a.stop(e.t); err != nil {
			e.t.Errorf("%s exited with %v after SIGTERM, want 0", a.name, err)
		}
	}
}

// signal sends sig to every running process of ps.
func signalAll(t *testing.T, sig syscall.Signal, ps ...*proc) {
	t.Helper()
	for _, p := range ps {
		if err := p.cmd.Process.Signal(sig); err != nil {
			t.Fatalf("signal %v to %s: %v", sig, p.name, err)
		}
	}
}

// waitServing waits until node i answers DNS: with agents, every region
// its own member; without, any NOERROR answer over TCP (which rate
// limiting never touches).
func (e *opEnv) waitServing(i int) {
	e.t.Helper()
	alive := func() {
		select {
		case <-e.nodes[i].done:
			e.t.Fatalf("%s exited (%v) before serving:\n%s", e.nodes[i].name, e.nodes[i].err, tail(e.nodes[i].out.String(), 20))
		default:
		}
	}
	if !e.set.agents {
		waitFor(e.t, 15*time.Second, e.nodeName(i)+" to answer over TCP", func() bool {
			alive()
			r, err := queryTCP(e.dns[i], "cache.gtm.optest", dns.TypeA)
			return err == nil && r.Rcode == dns.RcodeSuccess && len(r.Answer) > 0
		})
		return
	}
	for _, r := range opRegions {
		waitFor(e.t, 15*time.Second, fmt.Sprintf("%s to answer %s for %s", e.nodeName(i), r.bind, r.name), func() bool {
			alive()
			return answerA(e.dns[i], "cache.gtm.optest", opClient(r.name)) == r.bind
		})
	}
}

// waitFresh waits until node i has fresh reports from every agent about
// every cache member, each vantage past rise.
func (e *opEnv) waitFresh(i int) {
	e.t.Helper()
	waitFor(e.t, 15*time.Second, "fresh reports from every agent at "+e.nodeName(i), func() bool {
		st, err := status(e.admin[i])
		if err != nil || len(st.Members) == 0 {
			return false
		}
		for _, m := range st.Members {
			if m.Database != "cache" {
				continue
			}
			if len(m.Vantages) != len(opRegions) {
				return false
			}
			for _, v := range m.Vantages {
				if !v.Fresh || v.Passes < 2 {
					return false
				}
			}
		}
		return true
	})
}

// waitAnswer waits until node i answers want to clients of region.
func (e *opEnv) waitAnswer(i int, region, want string, timeout time.Duration) time.Duration {
	e.t.Helper()
	return waitFor(e.t, timeout, fmt.Sprintf("%s to answer %s to %s clients", e.nodeName(i), want, region), func() bool {
		return answerA(e.dns[i], "cache.gtm.optest", opClient(region)) == want
	})
}

// firstAnswer polls a node that is starting until it replies at all and
// returns that first reply's A records (or rcode).
func firstAnswer(t *testing.T, server string, subnet netip.Prefix) string {
	t.Helper()
	var got string
	waitFor(t, 15*time.Second, server+" to reply at all", func() bool {
		got = answerA(server, "cache.gtm.optest", subnet)
		return !strings.HasPrefix(got, "error:")
	})
	return got
}

// memberOf returns a member's status from st.
func memberOf(t *testing.T, st *admin.Status, name string) admin.MemberStatus {
	t.Helper()
	for _, m := range st.Members {
		if m.Name == name {
			return m
		}
	}
	t.Fatalf("status of %s lists no member %s", st.Node, name)
	return admin.MemberStatus{}
}

// savedState is the node's state file as the tests read it (the node's own
// type is internal).
type savedState struct {
	Version   int                `json:"version"`
	Node      string             `json:"node"`
	Overrides []overrides.Record `json:"overrides"`
	Engine    policy.State       `json:"engine"`
}

// drained reports whether the saved override set drains member.
func (s *savedState) drained(member string) bool {
	for _, r := range s.Overrides {
		if r.Kind == overrides.Drain && r.Target == member && r.InForce(time.Now()) {
			return true
		}
	}
	return false
}

// readState decodes a state file.
func readState(path string) (*savedState, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var st savedState
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, err
	}
	return &st, nil
}

// verdictIn returns member's verdict in a saved state ("" when absent).
func (s *savedState) verdictIn(member string) policy.Verdict {
	for _, m := range s.Engine.Members {
		if m.Name == member {
			return m.Verdict
		}
	}
	return ""
}

// queryTCP asks server over TCP.
func queryTCP(server, name string, qtype uint16) (*dns.Msg, error) {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	c := &dns.Client{Net: "tcp", Timeout: 500 * time.Millisecond}
	r, _, err := c.Exchange(m, server)
	return r, err
}
