package e2e

import (
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestFailoverAndFailback kills the nearest member of us-east and checks
// that both nodes move us-east clients to the next member within the
// detection bound, leave other regions alone, and move them back only after
// the failback hold once the member returns.
func TestFailoverAndFailback(t *testing.T) {
	p := defaultParams()
	d := deploy(t, p)
	d.waitAllFresh(t)

	use, euw := clientOf("us-east"), clientOf("eu-west")
	bound := p.detection() + time.Second

	killed := time.Now()
	d.members["cache-use"].Kill()
	for _, server := range d.dns {
		server := server
		took := waitFor(t, 10*time.Second, server+" to fail us-east over to eu-west", func() bool {
			return answerA(server, "cache.gtm.test", use) == "127.0.0.22"
		})
		elapsed := time.Since(killed)
		t.Logf("%s: failover seen %s after the kill (poll %s), bound %s", server, elapsed, took, bound)
		if elapsed > bound {
			t.Errorf("%s failed over after %s, beyond fall×interval+timeout+1s = %s", server, elapsed, bound)
		}
		if got := answerA(server, "cache.gtm.test", euw); got != "127.0.0.22" {
			t.Errorf("%s: eu-west clients got %q during the us-east failure, want 127.0.0.22", server, got)
		}
	}

	d.members["cache-use"].Restart()
	restarted := time.Now()
	var seen []time.Duration
	for _, server := range d.dns {
		server := server
		waitFor(t, 20*time.Second, server+" to fail back to us-east", func() bool {
			got := answerA(server, "cache.gtm.test", use)
			if got != "127.0.0.22" && got != "127.0.0.21" {
				t.Errorf("%s: unexpected answer %q while failing back", server, got)
			}
			return got == "127.0.0.21"
		})
		seen = append(seen, time.Since(restarted))
	}
	for i, s := range seen {
		t.Logf("%s: failback seen %s after the restart (hold %s)", d.dns[i], s, p.failbackHold)
		if s < p.failbackHold {
			t.Errorf("%s failed back after %s, before failback_hold %s", d.dns[i], s, p.failbackHold)
		}
	}

	// The user-facing view, once: dig as a client of eu-west.
	requireTool(t, "dig", "bind9-dnsutils")
	host, port := splitHostPort(t, d.dns[0])
	out, err := exec.Command("dig", "@"+host, "-p", port, "cache.gtm.test", "A", "+subnet=10.2.0.1/24").CombinedOutput()
	if err != nil {
		t.Fatalf("dig: %v\n%s", err, out)
	}
	text := string(out)
	for _, want := range []string{"status: NOERROR", " aa", "ANSWER SECTION", "127.0.0.22", "CLIENT-SUBNET: 10.2.0.0/24/16"} {
		if !strings.Contains(text, want) {
			t.Errorf("dig output lacks %q:\n%s", want, text)
		}
	}

	// Graceful shutdown: SIGTERM → exit 0.
	for _, n := range d.nodes {
		if err := n.stop(t); err != nil {
			t.Errorf("%s exited with %v after SIGTERM, want 0", n.name, err)
		}
	}
}

func splitHostPort(t *testing.T, addr string) (string, string) {
	t.Helper()
	i := strings.LastIndex(addr, ":")
	if i < 0 {
		t.Fatalf("bad address %s", addr)
	}
	return addr[:i], addr[i+1:]
}

// TestCheckCommand runs `aagtm check` on a good and a bad config.
func TestCheckCommand(t *testing.T) {
	out, code := runCmd(t, 30*time.Second, "check", "-c", "../examples/aagtm.yaml")
	if code != 0 {
		t.Fatalf("check on the example failed (%d):\n%s", code, out)
	}
	for _, want := range []string{"is valid", "DETECTION", "RTO BOUND", "2.501s", "8.501s", "cache.gtm.example.com."} {
		if !strings.Contains(out, want) {
			t.Errorf("check output lacks %q:\n%s", want, out)
		}
	}
	bad := writeFile(t, t.TempDir(), "bad.yaml", strings.Replace(readFile(t, "../examples/aagtm.yaml"), "region: eu-west, addresses: [10.2.0.10]", "region: eu-wst, addresses: [10.2.0.10]", 1))
	out, code = runCmd(t, 30*time.Second, "check", "-c", bad)
	if code != 1 {
		t.Fatalf("check on a bad config exited %d, want 1:\n%s", code, out)
	}
	if want := `databases.cache.members[1].region: "eu-wst" is not a declared region`; !strings.Contains(out, want) {
		t.Errorf("check output lacks %q:\n%s", want, out)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
