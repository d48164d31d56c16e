package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

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
	nodes   []*proc
	agents  map[string]*proc // by agent id (= region)
	params  deployParams
}

// deployParams are the health settings under test.
type deployParams struct {
	interval, timeout, failbackHold, staleAfter time.Duration
	rise, fall                                  int
	nodes                                       int
	checks                                      string
	extraDB                                     string
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

// deploy starts 3 redis-server members, the nodes and one agent per region
// from one config file, and waits until every node answers every region
// with its own member.
func deploy(t *testing.T, p deployParams) *deployment {
	t.Helper()
	d := &deployment{members: map[string]*testenv.Redis{}, agents: map[string]*proc{}, params: p}
	for _, r := range testRegions {
		d.members[r.member] = testenv.StartRedis(t, testenv.WithBind(r.bind))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "zone:\n  name: gtm.test.\n  ns: [{name: ns1.gtm.test., address: 127.0.0.1}]\nregions:\n")
	for _, r := range testRegions {
		fmt.Fprintf(&b, "  %s: {subnets: [%s], prefer: %s}\n", r.name, r.subnet, r.prefer)
	}
	fmt.Fprintf(&b, "default_region: us-east\ndatabases:\n  cache:\n    mode: nearest\n    ttl: 1s\n    failback_hold: %s\n    members:\n", p.failbackHold)
	for _, r := range testRegions {
		fmt.Fprintf(&b, "      - {name: %s, region: %s, addresses: [%s], redis: %q}\n", r.member, r.name, r.bind, d.members[r.member].URL())
	}
	b.WriteString(p.extraDB)
	fmt.Fprintf(&b, "probes:\n  interval: %s\n  timeout: %s\n  rise: %d\n  fall: %d\n  stale_after: %s\n  checks: %s\n  keyspace_keys: 4\n",
		p.interval, p.timeout, p.rise, p.fall, p.staleAfter, p.checks)
	b.WriteString("nodes:\n")
	dir := t.TempDir()
	for i := 1; i <= p.nodes; i++ {
		dnsAddr := fmt.Sprintf("127.0.0.1:%d", freeUDPTCPPort(t))
		adminAddr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t, "127.0.0.1"))
		fmt.Fprintf(&b, "  - {name: ns%d, report: \"127.0.0.1:%d\", dns: [%q], admin: %q, state_file: %q}\n",
			i, testenv.FreePort(t, "127.0.0.1"), dnsAddr, adminAddr, fmt.Sprintf("%s/ns%d.state", dir, i))
		d.dns = append(d.dns, dnsAddr)
		d.admin = append(d.admin, adminAddr)
	}
	b.WriteString("security:\n  insecure: true\n")
	d.cfgPath = writeFile(t, dir, "aagtm.yaml", b.String())

	for i := 1; i <= p.nodes; i++ {
		d.nodes = append(d.nodes, start(t, fmt.Sprintf("serve ns%d", i), "serve", "-c", d.cfgPath, "--node", fmt.Sprintf("ns%d", i), "--log-level", "info"))
	}
	for _, r := range testRegions {
		d.agents[r.name] = start(t, "probe "+r.name, "probe", "-c", d.cfgPath, "--agent", r.name, "--log-level", "info")
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

// status fetches a node's admin status.
func status(adminAddr string) (*admin.Status, error) {
	c := &http.Client{Timeout: time.Second}
	resp, err := c.Get("http://" + adminAddr + "/v1/status")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("status: HTTP %d", resp.StatusCode)
	}
	var st admin.Status
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return nil, err
	}
	return &st, nil
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
