package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aagtm/aagtm/admin"
	"github.com/aagtm/aagtm/policy"
)

// TestRestartServesPersistedState fails a member over, stops a node and
// every agent, brings the member back while nobody watches, and restarts
// the node: its very first answers, before any report can arrive, are the
// failed-over ones from its state file (not the fail-open "everything up"
// of a fresh node), and they stay so while no agent reports (fail-static).
// Once the agents return, the node converges: the member is seen up and
// gets its traffic back after the failback hold.
func TestRestartServesPersistedState(t *testing.T) {
	set := defaultOpSettings()
	e := opDeploy(t, set)
	e.waitFresh(0)
	e.waitFresh(1)

	e.members["cache-use"].Kill()
	for i := range e.nodes {
		e.waitAnswer(i, "us-east", opEuw, 10*time.Second)
	}
	// The node saves at most every second once the answer changed.
	waitFor(t, 5*time.Second, "ns1's state file to record cache-use down", func() bool {
		st, err := readState(e.state[0])
		return err == nil && st.verdictIn("cache-use") == policy.Down
	})

	e.stopNode(0)
	e.stopAgents()
	e.members["cache-use"].Restart() // up again, but no agent can tell
	restarted := time.Now()
	e.startNode(0)

	if got := firstAnswer(t, e.dns[0], opClient("us-east")); got != opEuw {
		t.Fatalf("first answer after restart to us-east clients = %q, want the failed-over %s (the last decision), not fail-open", got, opEuw)
	}
	t.Logf("first answer %s after %s from the restart, before any report", opEuw, time.Since(restarted).Round(time.Millisecond))
	for _, r := range []struct{ region, want string }{{"eu-west", opEuw}, {"ap-south", opAps}} {
		if got := answerA(e.dns[0], "cache.gtm.optest", opClient(r.region)); got != r.want {
			t.Errorf("after restart, %s clients got %q, want %s", r.region, got, r.want)
		}
	}
	if !strings.Contains(e.nodes[0].out.String(), "restored last state") {
		t.Errorf("ns1 log lacks 'restored last state':\n%s", tail(e.nodes[0].out.String(), 30))
	}
	// Without agents there is no fresh vantage: the last verdict stands.
	for end := time.Now().Add(time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if got := answerA(e.dns[0], "cache.gtm.optest", opClient("us-east")); got != opEuw {
			t.Fatalf("without agents the restarted node moved us-east to %q; want fail-static %s", got, opEuw)
		}
	}
	st, err := status(e.admin[0])
	if err != nil {
		t.Fatal(err)
	}
	if m := memberOf(t, st, "cache-use"); m.Verdict != "down" {
		t.Errorf("restarted node's verdict on cache-use = %q, want down (restored)", m.Verdict)
	}

	// The agents come back: both nodes see cache-use up and fail back
	// after the hold.
	e.startAgents()
	agentsBack := time.Now()
	for i := range e.nodes {
		e.waitAnswer(i, "us-east", opUse, 20*time.Second)
		t.Logf("%s failed back %s after the agents restarted (hold %s)", e.nodeName(i), time.Since(agentsBack).Round(time.Millisecond), set.failbackHold)
	}
	e.waitFresh(0)

	// Atomic writes leave no temp file behind.
	if left, _ := filepath.Glob(filepath.Join(e.dir, "*.tmp-*")); len(left) > 0 {
		t.Errorf("temp state files left behind: %v", left)
	}
}

// TestCorruptStateFileKeptAside starts a node on unusable state files: each
// is moved aside byte for byte, logged at ERROR by path with what it held,
// and shown by `aagtm status` until `aagtm ack-state`; the node starts,
// serves fresh answers and writes a new file beside the kept one.
func TestCorruptStateFileKeptAside(t *testing.T) {
	set := defaultOpSettings()
	set.nodes, set.agents = 1, false
	e := opDeploy(t, set)
	e.stopNode(0)
	good, err := os.ReadFile(e.state[0])
	if err != nil {
		t.Fatalf("no state file after a graceful stop: %v", err)
	}

	cases := []struct {
		name, content, why string
	}{
		{"garbage", "\x00\x01not json at all {{{", "corrupt"},
		{"empty", "", "corrupt"},
		{"truncated", string(good[:len(good)/2]), "corrupt"},
		{"future version", `{"version": 99, "node": "ns1"}`, "version 99"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if err := os.WriteFile(e.state[0], []byte(tc.content), 0o600); err != nil {
				t.Fatal(err)
			}
			p := e.startNode(0)
			if got := firstAnswer(t, e.dns[0], opClient("us-east")); got != opUse {
				t.Errorf("node on a %s state file answers us-east %q, want the fresh answer %s", tc.name, got, opUse)
			}
			log := p.out.String()
			for _, want := range []string{"[ERROR]", "state file unusable: kept aside", e.state[0], tc.why, "lost="} {
				if !strings.Contains(log, want) {
					t.Errorf("log lacks %q:\n%s", want, tail(log, 20))
				}
			}
			aside, _ := filepath.Glob(e.state[0] + ".corrupt-*")
			if len(aside) != 1 {
				t.Fatalf("moved-aside files = %v, want one", aside)
			}
			if kept, err := os.ReadFile(aside[0]); err != nil || string(kept) != tc.content {
				t.Errorf("moved-aside file %s differs from the unusable one (%v)", aside[0], err)
			}
			out, code := runCmd(t, 10*time.Second, "status", "-c", e.cfgPath)
			if code != 0 || !strings.Contains(out, "WAS UNUSABLE") || !strings.Contains(out, aside[0]) || !strings.Contains(out, "aagtm ack-state") {
				t.Errorf("status on a %s state file (exit %d) does not show it:\n%s", tc.name, code, out)
			}
			// A drain persists at once: the file is good again.
			if out, code := runCmd(t, 10*time.Second, "drain", "cache-aps", "-c", e.cfgPath); code != 0 {
				t.Fatalf("drain failed (%d):\n%s", code, out)
			}
			st, err := readState(e.state[0])
			if err != nil {
				t.Fatalf("state file still unusable after a drain: %v", err)
			}
			if st.Version != 2 || !st.drained("cache-aps") {
				t.Errorf("state after drain: version %d, overrides %+v; want 2 and cache-aps drained", st.Version, st.Overrides)
			}
			if out, code := runCmd(t, 10*time.Second, "undrain", "cache-aps", "-c", e.cfgPath); code != 0 {
				t.Fatalf("undrain failed (%d):\n%s", code, out)
			}
			if out, code := runCmd(t, 10*time.Second, "ack-state", "-c", e.cfgPath); code != 0 {
				t.Fatalf("ack-state failed (%d):\n%s", code, out)
			}
			if out, _ := runCmd(t, 10*time.Second, "status", "-c", e.cfgPath); strings.Contains(out, "WAS UNUSABLE") {
				t.Errorf("status still shows the acknowledged state file:\n%s", out)
			}
			if kept, err := os.ReadFile(aside[0]); err != nil || string(kept) != tc.content {
				t.Errorf("moved-aside file %s changed after saves and ack (%v)", aside[0], err)
			}
			e.stopNode(0)
			os.Remove(aside[0])
		})
	}
}

// TestDrainForceFanOut drives the operator commands against two nodes that
// require an admin token: refused without it, fanned out with it, persisted
// across a node restart, reported per node when one is down, and undone.
func TestDrainForceFanOut(t *testing.T) {
	set := defaultOpSettings()
	set.adminToken = "e2e-admin-token-0123456789"
	e := opDeploy(t, set)
	e.waitFresh(0)
	e.waitFresh(1)

	t.Run("token required", func(t *testing.T) {
		// --admin skips the config, so no token is read from the file.
		out, code := runCmd(t, 10*time.Second, "drain", "cache-use", "--admin", e.admin[0])
		if code != 1 || !strings.Contains(out, "FAILED") || !strings.Contains(out, "Authorization: Bearer") || !strings.Contains(out, "HTTP 401") {
			t.Errorf("drain without a token: exit %d, want 1 and a 401 asking for the bearer token:\n%s", code, out)
		}
		wrong := filepath.Join(t.TempDir(), "wrong-token")
		if err := os.WriteFile(wrong, []byte("not-the-token\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		out, code = runCmd(t, 10*time.Second, "drain", "cache-use", "-c", e.cfgPath, "--token-file", wrong)
		if code != 1 || strings.Count(out, "wrong admin token") != 2 {
			t.Errorf("drain with a wrong --token-file: exit %d, want 1 and 'wrong admin token' from both nodes:\n%s", code, out)
		}
		t.Setenv("AAGTM_ADMIN_TOKEN", "not-the-token-either")
		out, code = runCmd(t, 10*time.Second, "drain", "cache-use", "-c", e.cfgPath)
		if code != 1 || strings.Count(out, "wrong admin token") != 2 {
			t.Errorf("drain with a wrong AAGTM_ADMIN_TOKEN (before the config's file): exit %d, want 1 and 'wrong admin token' from both nodes:\n%s", code, out)
		}
		out, code = runCmd(t, 10*time.Second, "drain", "cache-use", "-c", e.cfgPath, "--token", set.adminToken)
		if code != 2 || !strings.Contains(out, "--token is not accepted") || !strings.Contains(out, "--token-file") {
			t.Errorf("drain --token: exit %d, want usage error 2 pointing at --token-file:\n%s", code, out)
		}
		// Off loopback over plain HTTP the CLI warns before it sends the token.
		out, _ = runCmd(t, 10*time.Second, "drain", "cache-use", "--admin", "192.0.2.99:8053", "--timeout", "200ms")
		if !strings.Contains(out, "warning: sending the admin token to node 192.0.2.99:8053 over plain HTTP") {
			t.Errorf("drain over plain HTTP off loopback did not warn:\n%s", out)
		}
		for i := range e.nodes {
			if got := answerA(e.dns[i], "cache.gtm.optest", opClient("us-east")); got != opUse {
				t.Errorf("%s answers us-east %q after refused drains, want %s", e.nodeName(i), got, opUse)
			}
		}
		if !strings.Contains(e.nodes[0].out.String(), "admin call refused") {
			t.Errorf("ns1 did not log the refused call")
		}
	})

	t.Run("drain fans out", func(t *testing.T) {
		// The right token from AAGTM_ADMIN_TOKEN.
		t.Setenv("AAGTM_ADMIN_TOKEN", set.adminToken)
		out, code := runCmd(t, 10*time.Second, "drain", "cache-use", "-c", e.cfgPath)
		if code != 0 || !regexp.MustCompile(`(?m)^ns1\s+ok$`).MatchString(out) || !regexp.MustCompile(`(?m)^ns2\s+ok$`).MatchString(out) {
			t.Fatalf("drain: exit %d, want 0 and ok from ns1 and ns2:\n%s", code, out)
		}
		for i := range e.nodes {
			// Applied synchronously: no waiting.
			if got := answerA(e.dns[i], "cache.gtm.optest", opClient("us-east")); got != opEuw {
				t.Errorf("%s answers us-east %q right after drain, want the next member %s", e.nodeName(i), got, opEuw)
			}
			if got := answerA(e.dns[i], "cache.gtm.optest", opClient("ap-south")); got != opAps {
				t.Errorf("%s answers ap-south %q, want %s (untouched)", e.nodeName(i), got, opAps)
			}
			st, err := status(e.admin[i])
			if err != nil {
				t.Fatal(err)
			}
			if m := memberOf(t, st, "cache-use"); !m.Drained || m.Verdict != "up" {
				t.Errorf("%s status of cache-use: drained %v verdict %s, want drained and up", e.nodeName(i), m.Drained, m.Verdict)
			}
		}
	})

	t.Run("drain survives restart", func(t *testing.T) {
		e.stopNode(0)
		e.startNode(0)
		if got := firstAnswer(t, e.dns[0], opClient("us-east")); got != opEuw {
			t.Errorf("restarted ns1's first answer to us-east = %q, want %s (still drained)", got, opEuw)
		}
		e.waitFresh(0)
		if got := answerA(e.dns[0], "cache.gtm.optest", opClient("us-east")); got != opEuw {
			t.Errorf("restarted ns1 with fresh reports answers us-east %q, want %s (still drained)", got, opEuw)
		}
	})

	t.Run("undrain restores", func(t *testing.T) {
		// The right token from --token-file.
		right := filepath.Join(t.TempDir(), "token")
		if err := os.WriteFile(right, []byte(set.adminToken+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		out, code := runCmd(t, 10*time.Second, "undrain", "cache-use", "-c", e.cfgPath, "--token-file", right)
		if code != 0 || strings.Count(out, " ok") != 2 {
			t.Fatalf("undrain: exit %d:\n%s", code, out)
		}
		for i := range e.nodes {
			if got := answerA(e.dns[i], "cache.gtm.optest", opClient("us-east")); got != opUse {
				t.Errorf("%s answers us-east %q after undrain, want %s", e.nodeName(i), got, opUse)
			}
		}
	})

	t.Run("one node down", func(t *testing.T) {
		// A drain taken by ns1 alone succeeds; ns2, started later, pulls it
		// from ns1 before it serves: drained from its first answer, with no
		// retry.
		e.stopNode(1)
		out, code := runCmd(t, 15*time.Second, "drain", "cache-use", "-c", e.cfgPath, "--reason", "maintenance")
		if code != 0 || !regexp.MustCompile(`(?m)^ns1\s+ok$`).MatchString(out) || !regexp.MustCompile(`(?m)^ns2\s+FAILED: .*connection refused`).MatchString(out) ||
			!strings.Contains(out, "taken by ns1; ns2 converge") {
			t.Fatalf("drain with ns2 down: exit %d, want 0, ns1 ok, ns2 FAILED and converging:\n%s", code, out)
		}
		if got := answerA(e.dns[0], "cache.gtm.optest", opClient("us-east")); got != opEuw {
			t.Errorf("ns1 answers us-east %q after the drain, want %s", got, opEuw)
		}
		e.startNode(1)
		first := firstAnswer(t, e.dns[1], opClient("us-east"))
		took := e.waitAnswer(1, "us-east", opEuw, 3*time.Second)
		t.Logf("ns2 started after the drain: first answer %s; drained %s after it began serving (no retry)", first, took.Round(time.Millisecond))
		st, err := status(e.admin[1])
		if err != nil {
			t.Fatal(err)
		}
		rec := overrideIn(t, st, "drain", "cache-use")
		if rec.Node != "ns1" || rec.Who != "admin-token" || rec.Reason != "maintenance" || !rec.Expires.IsZero() {
			t.Errorf("ns2's record of the drain = %+v, want taken by ns1 with the admin token for maintenance, no expiry", rec)
		}
		waitFor(t, 5*time.Second, "ns1 to see that ns2 holds the drain", func() bool {
			st, err := status(e.admin[0])
			return err == nil && overrideIn(t, st, "drain", "cache-use").Everywhere
		})
		out, _ = runCmd(t, 10*time.Second, "status", "-c", e.cfgPath)
		if !regexp.MustCompile(`(?m)^drain cache-use\s+ns1\s+admin-token\s+\S+\s+never\s+all\s+maintenance$`).MatchString(out) {
			t.Errorf("aagtm status does not list the drain with who, why, when, expiry and nodes:\n%s", out)
		}
	})

	t.Run("state file lost", func(t *testing.T) {
		// ns1 loses its state file: restarted, it pulls the drain from ns2.
		e.stopNode(0)
		if err := os.Remove(e.state[0]); err != nil {
			t.Fatal(err)
		}
		e.startNode(0)
		if got := firstAnswer(t, e.dns[0], opClient("us-east")); got != opEuw {
			t.Errorf("ns1 restarted without its state file answers us-east %q first, want %s (the drain pulled from ns2)", got, opEuw)
		}
		if log := e.nodes[0].out.String(); !strings.Contains(log, "pulled the override set from the other nodes") || !strings.Contains(log, "answered=1") {
			t.Errorf("ns1 log lacks the pull from ns2:\n%s", tail(log, 30))
		}
		if out, code := runCmd(t, 10*time.Second, "undrain", "cache-use", "-c", e.cfgPath); code != 0 {
			t.Fatalf("undrain: exit %d:\n%s", code, out)
		}
	})

	t.Run("force and clear", func(t *testing.T) {
		out, code := runCmd(t, 10*time.Second, "force", "cache", "cache-aps", "-c", e.cfgPath)
		if code != 0 || strings.Count(out, " ok") != 2 {
			t.Fatalf("force: exit %d:\n%s", code, out)
		}
		for i := range e.nodes {
			for _, r := range opRegions {
				if got := answerA(e.dns[i], "cache.gtm.optest", opClient(r.name)); got != opAps {
					t.Errorf("%s answers %s %q while forced, want %s", e.nodeName(i), r.name, got, opAps)
				}
			}
		}
		st, err := status(e.admin[1])
		if err != nil {
			t.Fatal(err)
		}
		if st.Overrides.Forced["cache"] != "cache-aps" || !memberOf(t, st, "cache-aps").Forced {
			t.Errorf("ns2 status overrides %+v, want cache forced to cache-aps", st.Overrides)
		}

		out, code = runCmd(t, 10*time.Second, "force", "cache", "cache-nope", "-c", e.cfgPath)
		if code != 1 || strings.Count(out, `"cache-nope" is not a member of database cache`) != 2 {
			t.Errorf("force of an unknown member: exit %d, want 1 and the reason from each node:\n%s", code, out)
		}
		out, code = runCmd(t, 10*time.Second, "force", "cache", "-c", e.cfgPath)
		if code != 2 || !strings.Contains(out, "--clear") {
			t.Errorf("force without member or --clear: exit %d, want usage error 2 naming --clear:\n%s", code, out)
		}

		out, code = runCmd(t, 10*time.Second, "force", "cache", "--clear", "-c", e.cfgPath)
		if code != 0 || strings.Count(out, " ok") != 2 {
			t.Fatalf("force --clear: exit %d:\n%s", code, out)
		}
		for i := range e.nodes {
			for _, r := range opRegions {
				if got := answerA(e.dns[i], "cache.gtm.optest", opClient(r.name)); got != r.bind {
					t.Errorf("%s answers %s %q after --clear, want %s", e.nodeName(i), r.name, got, r.bind)
				}
			}
		}
	})
}

// TestStatusCommand checks `aagtm status` as a table and as JSON, with
// every node up, after a failover, and with a node down.
func TestStatusCommand(t *testing.T) {
	e := opDeploy(t, defaultOpSettings())
	e.waitFresh(0)
	e.waitFresh(1)

	type nodeStatus struct {
		Node   string        `json:"node"`
		Error  string        `json:"error"`
		Status *admin.Status `json:"status"`
	}
	statusJSON := func(wantCode int) []nodeStatus {
		t.Helper()
		out, code := runCmd(t, 10*time.Second, "status", "-c", e.cfgPath, "-o", "json")
		if code != wantCode {
			t.Fatalf("status -o json: exit %d, want %d:\n%s", code, wantCode, out)
		}
		var sts []nodeStatus
		if err := json.Unmarshal([]byte(out), &sts); err != nil {
			t.Fatalf("status -o json does not parse: %v\n%s", err, out)
		}
		if len(sts) != 2 || sts[0].Node != "ns1" || sts[1].Node != "ns2" {
			t.Fatalf("status -o json lists %d nodes, want ns1 and ns2:\n%s", len(sts), out)
		}
		return sts
	}
	// section returns the table of one node.
	section := func(out, node string) string {
		i := strings.Index(out, "== node "+node+" ==")
		if i < 0 {
			t.Fatalf("status output has no section for %s:\n%s", node, out)
		}
		s := out[i+1:]
		if j := strings.Index(s, "== node "); j >= 0 {
			s = s[:j]
		}
		return s
	}
	memberRow := func(sec, member string) []string {
		m := regexp.MustCompile(`(?m)^` + member + `\s.*$`).FindString(sec)
		return strings.Fields(m)
	}

	t.Run("table", func(t *testing.T) {
		out, code := runCmd(t, 10*time.Second, "status", "-c", e.cfgPath)
		if code != 0 {
			t.Fatalf("status: exit %d:\n%s", code, out)
		}
		for _, node := range []string{"ns1", "ns2"} {
			sec := section(out, node)
			for _, want := range []string{"MEMBER", "VERDICT", "VANTAGES", "DATABASE", "ANSWER", "REASON", "ready"} {
				if !strings.Contains(sec, want) {
					t.Errorf("%s table lacks %q:\n%s", node, want, sec)
				}
			}
			for _, r := range opRegions {
				// MEMBER DATABASE REGION VERDICT VANTAGES(up/down/abstaining) ...
				row := memberRow(sec, r.member)
				if len(row) < 5 || row[1] != "cache" || row[2] != r.name || row[3] != "up" || row[4] != "3/0/0" {
					t.Errorf("%s member row of %s = %v, want cache %s up 3/0/0", node, r.member, row, r.name)
				}
				if !regexp.MustCompile(`(?m)^cache\s+` + r.name + `\s+` + r.member + `\s`).MatchString(sec) {
					t.Errorf("%s answers table lacks 'cache %s %s':\n%s", node, r.name, r.member, sec)
				}
			}
		}
	})

	t.Run("json", func(t *testing.T) {
		for _, s := range statusJSON(0) {
			if s.Error != "" || s.Status == nil || !s.Status.Ready || len(s.Status.Members) != 3 || len(s.Status.Answers) != 3 {
				t.Errorf("%s: error %q, status %+v; want ready with 3 members and 3 answers", s.Node, s.Error, s.Status)
			}
		}
	})

	t.Run("after failover", func(t *testing.T) {
		e.members["cache-use"].Kill()
		for i := range e.nodes {
			e.waitAnswer(i, "us-east", opEuw, 10*time.Second)
		}
		// Every agent's vantage past fall: 0 up / 3 down.
		waitFor(t, 5*time.Second, "every vantage to see cache-use down", func() bool {
			st, err := status(e.admin[0])
			if err != nil {
				return false
			}
			up, down, _ := memberOf(t, st, "cache-use").VantageCounts()
			return up == 0 && down == 3
		})
		out, code := runCmd(t, 10*time.Second, "status", "-c", e.cfgPath)
		if code != 0 {
			t.Fatalf("status: exit %d:\n%s", code, out)
		}
		sec := section(out, "ns1")
		if row := memberRow(sec, "cache-use"); len(row) < 5 || row[3] != "down:unreachable" || row[4] != "0/3/0" {
			t.Errorf("ns1 row of cache-use after the kill = %v, want down:unreachable 0/3/0:\n%s", row, sec)
		}
		if !regexp.MustCompile(`(?m)^cache\s+us-east\s+cache-euw\s`).MatchString(sec) {
			t.Errorf("ns1 answers table does not move us-east to cache-euw:\n%s", sec)
		}
		if !regexp.MustCompile(`(?m)\sfailover\s+cache\s+us-east\s+cache-use -> cache-euw\s`).MatchString(sec) {
			t.Errorf("ns1 events table lacks the failover:\n%s", sec)
		}
	})

	t.Run("node down", func(t *testing.T) {
		e.stopNode(1)
		out, code := runCmd(t, 15*time.Second, "status", "-c", e.cfgPath)
		if code != 0 {
			t.Fatalf("status with ns2 down: exit %d, want 0 (one node answered):\n%s", code, out)
		}
		if sec := section(out, "ns2"); !strings.Contains(sec, "unreachable:") || !strings.Contains(sec, "connection refused") {
			t.Errorf("ns2 section does not report it unreachable:\n%s", sec)
		}
		if sec := section(out, "ns1"); !strings.Contains(sec, "MEMBER") || len(memberRow(sec, "cache-aps")) < 5 {
			t.Errorf("ns1 section incomplete while ns2 is down:\n%s", sec)
		}
		sts := statusJSON(0)
		if sts[1].Error == "" || sts[1].Status != nil {
			t.Errorf("json: ns2 error %q status %v, want an error and no status", sts[1].Error, sts[1].Status)
		}
		if sts[0].Error != "" || sts[0].Status == nil || len(sts[0].Status.Members) != 3 {
			t.Errorf("json: ns1 error %q, want its full status", sts[0].Error)
		}

		e.stopNode(0)
		out, code = runCmd(t, 15*time.Second, "status", "-c", e.cfgPath)
		if code != 1 || !strings.Contains(out, "no node answered") || strings.Count(out, "unreachable:") != 2 {
			t.Errorf("status with every node down: exit %d, want 1, both unreachable, 'no node answered':\n%s", code, out)
		}
	})
}

// overrideIn returns the override record of kind and target in st's
// status (the zero record when it has none).
func overrideIn(t *testing.T, st *admin.Status, kind, target string) admin.OverrideRecord {
	t.Helper()
	for _, r := range st.Overrides.Records {
		if r.Kind == kind && r.Target == target {
			return r
		}
	}
	return admin.OverrideRecord{}
}
