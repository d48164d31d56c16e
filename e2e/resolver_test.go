package e2e

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// startUnbound runs unbound, a real recursive resolver with query-name case
// randomisation (use-caps-for-id), with a stub-zone for gtm.test whose
// name servers are the nodes at servers (host:port each), and returns its
// address. It is killed in t.Cleanup. Its caching is unbound's default:
// TTLs counted in whole seconds, no prefetch, no expired answers served.
func startUnbound(t *testing.T, unbound string, servers []string) string {
	t.Helper()
	dir := t.TempDir()
	port := freeUDPTCPPort(t)
	var stubs strings.Builder
	for _, s := range servers {
		host, p := splitHostPort(t, s)
		fmt.Fprintf(&stubs, "  stub-addr: %s@%s\n", host, p)
	}
	conf := writeFile(t, dir, "unbound.conf", fmt.Sprintf(`server:
  interface: 127.0.0.1
  port: %d
  do-daemonize: no
  use-syslog: no
  logfile: ""
  chroot: ""
  username: ""
  directory: %q
  pidfile: %q
  verbosity: 1
  do-not-query-localhost: no
  use-caps-for-id: yes
  access-control: 127.0.0.0/8 allow
  module-config: "iterator"
  local-zone: "test." nodefault
  domain-insecure: "gtm.test"
stub-zone:
  name: "gtm.test"
%sremote-control:
  control-enable: no
`, port, dir, dir+"/unbound.pid", stubs.String()))
	cmd := exec.Command(unbound, "-d", "-c", conf)
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start unbound: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("---- unbound output ----\n%s", out.String())
		}
	})
	return fmt.Sprintf("127.0.0.1:%d", port)
}

// TestThroughRecursiveResolver puts unbound in front of a node and checks
// that the answer arrives through it. unbound drops replies whose question
// case differs from what it sent, so a node that did not preserve case
// would fail this test.
func TestThroughRecursiveResolver(t *testing.T) {
	unbound := requireTool(t, "unbound", "unbound")
	requireTool(t, "dig", "bind9-dnsutils")
	p := defaultParams()
	p.nodes = 1
	d := deploy(t, p)
	resolver := startUnbound(t, unbound, d.dns)
	host, port := splitHostPort(t, resolver)

	// unbound asks the node from 127.0.0.1 with no ECS: the default region.
	waitFor(t, 10*time.Second, "the answer through unbound", func() bool {
		return answerA(resolver, "CaChE.GtM.TeSt", noSubnet) == "127.0.0.21"
	})
	dig, err := exec.Command("dig", "@"+host, "-p", port, "cache.gtm.test", "A").CombinedOutput()
	if err != nil {
		t.Fatalf("dig through unbound: %v\n%s", err, dig)
	}
	text := string(dig)
	for _, want := range []string{"status: NOERROR", " ra", "127.0.0.21"} {
		if !strings.Contains(text, want) {
			t.Errorf("dig through unbound lacks %q:\n%s", want, text)
		}
	}
}
