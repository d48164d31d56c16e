package e2e

import (
	"fmt"
	"io"
	"net/netip"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"
)

// readyHeader matches the header line of the demo's status command for a
// ready node.
var readyHeader = regexp.MustCompile(`node ns1 .*config \S+ +ready\n`)

// demoRegions is how many regions the demo runs: us-east, eu-west and
// ap-south, one member and one agent each.
const demoRegions = 3

// TestDemo runs `aagtm demo` as the README's quick start does, queries it
// with dig, and fails a member through the demo's control input. It runs
// once with redis-server members and once with embedded miniredis, the
// fallback on machines without Redis.
func TestDemo(t *testing.T) {
	requireTool(t, "dig", "bind9-dnsutils")
	for _, backend := range []string{"redis-server", "miniredis"} {
		t.Run(backend, func(t *testing.T) {
			if backend == "redis-server" {
				requireTool(t, "redis-server", "redis-server")
			}
			p, stdin, dnsPort, adminPort, sentinelPort := startDemo(t, backend)
			server := fmt.Sprintf("127.0.0.1:%d", dnsPort)
			waitFor(t, 20*time.Second, "the demo to print its banner", func() bool {
				return strings.Contains(p.out.String(), "aagtm demo is running")
			})
			if want := map[string]string{"redis-server": "redis-server processes", "miniredis": "embedded miniredis"}[backend]; !strings.Contains(p.out.String(), want) {
				t.Errorf("demo does not say it uses %s", want)
			}
			if want := fmt.Sprintf("dig @127.0.0.1 -p %d cache.gtm.demo +short", dnsPort); !strings.Contains(p.out.String(), want) {
				t.Errorf("banner lacks the dig command %q", want)
			}

			digShort := func(args ...string) string {
				out, err := exec.Command("dig", append([]string{"@127.0.0.1", "-p", fmt.Sprint(dnsPort), "+short", "+time=1", "+tries=1"}, args...)...).CombinedOutput()
				if err != nil {
					return "error: " + err.Error()
				}
				return strings.TrimSpace(string(out))
			}
			// Wait until the agents' reports have arrived (the answer and
			// its explanation come from probes, not the fail-open start).
			waitFor(t, 20*time.Second, "a probe-based _why", func() bool {
				return strings.Contains(digShort("TXT", "_why.cache.gtm.demo"), "cache-use")
			})
			cases := map[string]string{"": "127.0.0.11", "+subnet=10.2.0.1/24": "127.0.0.12", "+subnet=10.3.0.1/24": "127.0.0.13"}
			for flag, want := range cases {
				args := []string{"cache.gtm.demo"}
				if flag != "" {
					args = append(args, flag)
				}
				if got := digShort(args...); got != want {
					t.Errorf("dig cache.gtm.demo %s = %q, want %q", flag, got, want)
				}
			}
			if got := digShort("CH", "TXT", "id.server"); got != `"ns1"` {
				t.Errorf("id.server = %q, want \"ns1\"", got)
			}
			// The banner's Sentinel line gives what DNS gives a us-east
			// client (127.0.0.1 is in us-east in the demo).
			sentinelLine := fmt.Sprintf("redis-cli -h 127.0.0.1 -p %d SENTINEL get-master-addr-by-name cache", sentinelPort)
			if !strings.Contains(p.out.String(), sentinelLine) {
				t.Errorf("banner lacks %q", sentinelLine)
			}
			if cli, err := exec.LookPath("redis-cli"); err == nil {
				out, err := exec.Command(cli, strings.Fields(sentinelLine)[1:]...).CombinedOutput()
				if got := strings.Fields(string(out)); err != nil || len(got) != 2 || got[0] != "127.0.0.11" {
					t.Errorf("%s = %q (%v), want 127.0.0.11 and the member port", sentinelLine, out, err)
				}
			}

			// Fail the us-east member through the demo's control input, once
			// every agent's vantage of every member has completed rise, so
			// that the quorum decides on probes.
			adminAddr := fmt.Sprintf("127.0.0.1:%d", adminPort)
			waitDemoUp(t, adminAddr)

			// The demo's status command shows the node's real readiness.
			if _, err := io.WriteString(stdin, "status\n"); err != nil {
				t.Fatal(err)
			}
			waitFor(t, 5*time.Second, "the status command's header", func() bool {
				return readyHeader.MatchString(p.out.String())
			})
			if strings.Contains(p.out.String(), "NOT READY") {
				t.Errorf("demo status says NOT READY for a node whose /readyz is 200")
			}

			if _, err := io.WriteString(stdin, "fail cache-use\n"); err != nil {
				t.Fatal(err)
			}
			waitFor(t, 10*time.Second, "the us-east answer to move to eu-west", func() bool {
				return answerA(server, "cache.gtm.demo", netip.Prefix{}) == "127.0.0.12"
			})
			// Only us-east clients move: the healthy members keep
			// replicating between themselves, so neither turns lagging
			// and the eu-west and ap-south answers stay, over several
			// probe rounds (interval 500ms, lag tolerance 500ms).
			others := map[string]string{"10.2.0.1/24": "127.0.0.12", "10.3.0.1/24": "127.0.0.13"}
			for end := time.Now().Add(4 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
				for subnet, want := range others {
					if got := answerA(server, "cache.gtm.demo", netip.MustParsePrefix(subnet)); got != want {
						t.Fatalf("with cache-use failed, a client in %s got %q, want %q (unchanged)", subnet, got, want)
					}
				}
				st, err := status(adminAddr)
				if err != nil {
					continue
				}
				for _, m := range st.Members {
					if m.Name != "cache-use" && m.Lagging {
						t.Fatalf("with cache-use failed, %s turned lagging (lag %.3fs):\n%s", m.Name, m.LagSeconds, statusText(st))
					}
				}
			}
			waitFor(t, 5*time.Second, "the failover to be logged", func() bool {
				return strings.Contains(p.out.String(), "failover")
			})
			if _, err := io.WriteString(stdin, "recover cache-use\n"); err != nil {
				t.Fatal(err)
			}
			waitFor(t, 30*time.Second, "the failback to us-east", func() bool {
				return answerA(server, "cache.gtm.demo", netip.Prefix{}) == "127.0.0.11"
			})
		})
	}
}

// startDemo starts `aagtm demo` with the given member backend on free
// ports for 60s, stopped (and its output shown on failure) at cleanup. It
// returns the process, its control input and its DNS, admin and Sentinel
// ports.
func startDemo(t *testing.T, backend string) (p *proc, stdin io.WriteCloser, dnsPort, adminPort, sentinelPort int) {
	t.Helper()
	dnsPort, adminPort, sentinelPort = freeUDPTCPPort(t), freeUDPTCPPort(t), freeTCPPort(t)
	p = &proc{name: "demo " + backend, out: &syncBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(binary, "demo", "--backend", backend, "--for", "60s",
		"--dns", fmt.Sprintf("127.0.0.1:%d", dnsPort), "--admin", fmt.Sprintf("127.0.0.1:%d", adminPort),
		"--sentinel", fmt.Sprintf("127.0.0.1:%d", sentinelPort))
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	stdin, err := p.cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		stdin.Close()
		if err := p.stop(t); err != nil {
			t.Errorf("demo exited with %v after SIGTERM, want 0", err)
		}
		if t.Failed() {
			t.Logf("---- demo output ----\n%s", tail(p.out.String(), 80))
		}
	})
	return p, stdin, dnsPort, adminPort, sentinelPort
}

// waitDemoUp waits until every agent's vantage of every demo member has
// completed rise, so that what follows is decided by probes.
func waitDemoUp(t *testing.T, adminAddr string) {
	t.Helper()
	waitFor(t, 20*time.Second, "every vantage of every member up at the demo's admin API", func() bool {
		st, err := status(adminAddr)
		if err != nil || len(st.Members) != demoRegions {
			return false
		}
		for _, m := range st.Members {
			if m.Verdict != "up" || len(m.Vantages) != demoRegions {
				return false
			}
			for _, v := range m.Vantages {
				if !v.Fresh || v.Verdict != "up" {
					return false
				}
			}
		}
		return true
	})
}
