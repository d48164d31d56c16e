// Package benchenv holds what the benchmark programs under bench/ share:
// the three regions they deploy, a Redis liveness check and a free-port
// allocator. It is not used by aagtm itself.
package benchenv

import (
	"bufio"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// Region is one region of a bench deployment: its name, the short form
// member names end with, the loopback address its Redis binds, its client
// subnet and its preference list.
type Region struct {
	Name, Short, Bind, Subnet, Prefer string
}

// Regions are the three regions every bench deploys; us-east, the first,
// is the default region and the one the benches fail.
var Regions = []Region{
	{"us-east", "use", "127.0.0.41", "10.1.0.0/16", "[us-east, eu-west, ap-south]"},
	{"eu-west", "euw", "127.0.0.42", "10.2.0.0/16", "[eu-west, us-east, ap-south]"},
	{"ap-south", "aps", "127.0.0.43", "10.3.0.0/16", "[ap-south, eu-west, us-east]"},
}

// UsEastClient is the ECS subnet the benches' DNS clients ask as.
var UsEastClient = netip.MustParsePrefix("10.1.0.0/24")

// WriteZoneAndRegions writes the config's zone and regions sections and
// default_region (us-east) for Regions.
func WriteZoneAndRegions(c *strings.Builder) {
	c.WriteString("zone:\n  name: gtm.bench.\n  ns: [{name: ns1.gtm.bench., address: 127.0.0.1}]\nregions:\n")
	for _, r := range Regions {
		fmt.Fprintf(c, "  %s: {subnets: [%s], prefer: %s}\n", r.Name, r.Subnet, r.Prefer)
	}
	c.WriteString("default_region: us-east\n")
}

// Ping reports whether a Redis server at addr answers PING within 300ms.
func Ping(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(200 * time.Millisecond))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return false
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	return err == nil && line == "+PONG\r\n"
}

// usedPorts are the ports FreePort handed out: the kernel may offer a
// just-released port again, and two listeners of one deployment must not
// get the same one.
var usedPorts = struct {
	sync.Mutex
	m map[int]bool
}{m: map[int]bool{}}

// FreePort returns a TCP port that was free on host a moment ago and that
// it has not returned before.
func FreePort(host string) (int, error) {
	usedPorts.Lock()
	defer usedPorts.Unlock()
	for {
		l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
		if err != nil {
			return 0, fmt.Errorf("find a free port on %s: %w", host, err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if !usedPorts.m[port] {
			usedPorts.m[port] = true
			return port, nil
		}
	}
}
