package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aagtm/aagtm/config"
	"github.com/aagtm/aagtm/internal/testenv"
)

// cli is one in-process run of the aagtm command.
type cli struct {
	out  *testenv.LockedBuffer // stdout, stderr and logs
	done chan error
}

// startCLI runs aagtm with args until it returns or ctx ends.
func startCLI(ctx context.Context, args ...string) *cli {
	c := &cli{out: &testenv.LockedBuffer{}, done: make(chan error, 1)}
	root := newRootCmd()
	root.SetArgs(args)
	root.SetOut(c.out)
	root.SetErr(c.out)
	go func() { c.done <- root.ExecuteContext(ctx) }()
	return c
}

// runCLI runs aagtm with args to completion.
func runCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	c := startCLI(context.Background(), args...)
	select {
	case err := <-c.done:
		return c.out.String(), err
	case <-time.After(30 * time.Second):
		t.Fatalf("aagtm %s did not return", strings.Join(args, " "))
		return "", nil
	}
}

// startServe runs `aagtm serve` on loopback ports until the test ends and
// returns its admin address once /readyz answers 200.
func startServe(t *testing.T, file, node string) (admin string, run *cli) {
	t.Helper()
	admin = "127.0.0.1:" + strconv.Itoa(testenv.FreePort(t, "127.0.0.1"))
	ctx, cancel := context.WithCancel(context.Background())
	run = startCLI(ctx, "serve", "-c", file, "--node", node, "--dns", "127.0.0.1:0", "--ingest", "127.0.0.1:0",
		"--admin", admin, "--state-file", filepath.Join(t.TempDir(), "state.json"))
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-run.done:
			if err != nil {
				t.Errorf("serve stopped with %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("serve did not stop within 10s")
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case err := <-run.done:
			t.Fatalf("serve -c %s refused to start: %v\n%s", file, err, run.out.String())
		default:
		}
		if resp, err := http.Get("http://" + admin + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return admin, run
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve -c %s not ready within 10s\n%s", file, run.out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// runProbe runs `aagtm probe` for d and fails the test if it stops early.
func runProbe(t *testing.T, d time.Duration, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	run := startCLI(ctx, append([]string{"probe"}, args...)...)
	select {
	case err := <-run.done:
		if ctx.Err() == nil || err != nil {
			t.Fatalf("probe %v stopped before its context ended: %v\n%s", args, err, run.out.String())
		}
	case <-time.After(d + 10*time.Second):
		t.Fatalf("probe %v did not stop", args)
	}
	return run.out.String()
}

// Every shipped config is approved by check and starts serve (one node) and
// probe (every agent it names): check and the daemons apply the same rules.
func TestShippedConfigsCheckServeAndProbe(t *testing.T) {
	var files []string
	for _, pattern := range []string{"../../examples/*.yaml", "../../deploy/*/*.yaml"} {
		m, err := filepath.Glob(pattern)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	if len(files) < 3 {
		t.Fatalf("found only %v", files)
	}
	ca := testenv.NewCA(t, "agents")
	for _, file := range files {
		t.Run(strings.TrimPrefix(file, "../../"), func(t *testing.T) {
			out, err := runCLI(t, "check", "-c", file)
			if err != nil {
				t.Fatalf("check refuses it: %v\n%s", err, out)
			}
			cfg, err := config.Load(config.Options{Path: file})
			if err != nil {
				t.Fatal(err)
			}
			startServe(t, file, cfg.Nodes[0].Name)
			for _, a := range cfg.Agents {
				if cfg.Security.TLS.Enabled() {
					// Each agent host has its own client certificate at
					// the config's paths; here, AAGTM_* overrides do what
					// the host's files would.
					cert, key := ca.Client(t, a.ID)
					t.Setenv("AAGTM_SECURITY_TLS_CERT", cert)
					t.Setenv("AAGTM_SECURITY_TLS_KEY", key)
				}
				runProbe(t, 500*time.Millisecond, "-c", file, "--agent", a.ID)
			}
		})
	}
}

// A password in a member's URL appears in no output: not in check's, not
// in serve's or probe's logs, not in the status JSON; and a malformed URL
// is refused without echoing it.
func TestPasswordsInNoOutput(t *testing.T) {
	const password = "Sup3rSecret"
	member := testenv.StartRedis(t, testenv.WithPassword(password))
	ingest := testenv.FreePort(t, "127.0.0.1")
	write := func(redisURL string) string {
		y := fmt.Sprintf(`
zone: {name: gtm.test., ns: [{name: ns1.gtm.test., address: 127.0.0.1}]}
regions: {local: {subnets: [127.0.0.0/8]}}
databases:
  cache:
    members: [{name: cache-1, region: local, addresses: [127.0.0.1], redis: %q}]
probes: {interval: 100ms, timeout: 80ms, stale_after: 1s, checks: [ping]}
nodes: [{name: ns1, report: "127.0.0.1:%d"}]
security: {insecure: true}
`, redisURL, ingest)
		p := filepath.Join(t.TempDir(), "aagtm.yaml")
		if err := os.WriteFile(p, []byte(y), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	noPassword := func(what, text string) {
		t.Helper()
		if strings.Contains(text, "Sup3r") {
			t.Errorf("%s shows the password:\n%s", what, text)
		}
	}

	t.Run("malformed URL", func(t *testing.T) {
		file := write("redis://default:Sup3r%Secret@" + member.Host() + ":x")
		out, err := runCLI(t, "check", "-c", file)
		if err == nil || !strings.Contains(err.Error(), "databases.cache.members[0].redis") {
			t.Fatalf("check: %v, want an error naming the field", err)
		}
		noPassword("check's error", err.Error()+out)
		out, err = runCLI(t, "serve", "-c", file)
		if err == nil {
			t.Fatal("serve accepted it")
		}
		noPassword("serve's error and logs", err.Error()+out)
		out, err = runCLI(t, "probe", "-c", file)
		if err == nil {
			t.Fatal("probe accepted it")
		}
		noPassword("probe's error and logs", err.Error()+out)
	})

	t.Run("valid URL", func(t *testing.T) {
		file := write(fmt.Sprintf("redis://default:%s@%s", password, member.Addr()))
		out, err := runCLI(t, "check", "-c", file)
		if err != nil {
			t.Fatal(err)
		}
		noPassword("check's output", out)
		admin, serve := startServe(t, file, "ns1")
		probeOut := runProbe(t, time.Second, "-c", file)
		noPassword("probe's logs", probeOut)
		resp, err := http.Get("http://" + admin + "/v1/status")
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || !strings.Contains(string(body), "cache-1") {
			t.Fatalf("status: %v\n%s", err, body)
		}
		noPassword("/v1/status", string(body))
		noPassword("serve's logs", serve.out.String())
		if !strings.Contains(serve.out.String(), "redis://default:xxxxx@") {
			t.Errorf("serve's effective-config line lost the masked URL:\n%s", serve.out.String())
		}
	})
}

// --strict refuses a credential file other users can read; without it,
// check warns and serve logs the warning.
func TestStrictRefusesExposedCredentialFiles(t *testing.T) {
	dir := t.TempDir()
	token := filepath.Join(dir, "admin-token")
	if err := os.WriteFile(token, []byte("t0ken\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(token, 0o644); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "aagtm.yaml")
	y := fmt.Sprintf(`
zone: {name: gtm.test., ns: [{name: ns1.gtm.test., address: 127.0.0.1}]}
regions: {local: {subnets: [127.0.0.0/8]}}
databases: {cache: {members: [{name: cache-1, region: local, addresses: [127.0.0.1], redis: "redis://127.0.0.1:1"}]}}
probes: {checks: [ping]}
nodes: [{name: ns1, report: "127.0.0.1:%d"}]
security: {insecure: true, admin_token_file: admin-token}
`, testenv.FreePort(t, "127.0.0.1"))
	if err := os.WriteFile(file, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	want := "security.admin_token_file: " + token + " has mode 0644"
	cases := []struct {
		name    string
		args    []string
		refused bool
	}{
		{"check warns", []string{"check", "-c", file}, false},
		{"check --strict refuses", []string{"check", "--strict", "-c", file}, true},
		{"serve --strict refuses", []string{"serve", "--strict", "-c", file}, true},
		{"probe --strict refuses", []string{"probe", "--strict", "-c", file}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, err := runCLI(t, tc.args...)
			if err != nil {
				out += err.Error()
			}
			if (err != nil) != tc.refused || !strings.Contains(out, want) {
				t.Errorf("error %v, output:\n%s\nwant refused=%v and %q", err, out, tc.refused, want)
			}
		})
	}
	t.Run("serve warns", func(t *testing.T) {
		_, serve := startServe(t, file, "ns1")
		if out := serve.out.String(); !strings.Contains(out, "config warning") || !strings.Contains(out, want) {
			t.Errorf("serve did not log the warning:\n%s", out)
		}
	})
}
