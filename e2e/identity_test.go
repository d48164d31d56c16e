package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	grpcstatus "google.golang.org/grpc/status"

	"github.com/aagtm/aagtm/admin"
	"github.com/aagtm/aagtm/api"
	"github.com/aagtm/aagtm/internal/testenv"
)

// rogueStream opens a report stream to addr presenting token.
func rogueStream(t *testing.T, addr, token string) api.ReportService_StreamClient {
	t.Helper()
	st, _, err := testenv.OpenReportStream(t, addr, insecure.NewCredentials(), token)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// downReport says, as agent in region, that every member fails PING.
func downReport(agent, region, boot string, seq uint64) *api.Report {
	r := &api.Report{AgentId: agent, Region: region, BootId: boot, Seq: seq}
	for _, rg := range opRegions {
		r.Members = append(r.Members, &api.MemberReport{Member: rg.member, Checks: []*api.CheckResult{
			{Name: "ping", Ok: false, Outcome: "timeout", Error: "i/o timeout"}}})
	}
	return r
}

func agentStatus(t *testing.T, addr, id string) admin.AgentStatus {
	t.Helper()
	st, err := status(addr)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range st.Agents {
		if a.ID == id {
			return a
		}
	}
	t.Fatalf("status lists no agent %s: %+v", id, st.Agents)
	return admin.AgentStatus{}
}

// TestAgentIdentity runs a node and three agents with one token each
// (agents[].token_file), then plays the attacker of issue 10: a holder of
// us-east's token reporting every member down as every agent. Reports for
// other agents end the stream with PermissionDenied and move no answer.
// Rotating us-east's token and reloading the node (SIGHUP) ends the
// streams opened with the old token; the real agent comes back with the
// token now in its file.
func TestAgentIdentity(t *testing.T) {
	set := defaultOpSettings()
	set.nodes = 1
	set.agentTokens = true
	e := opDeploy(t, set)
	e.waitFresh(0)
	useToken := "e2e-token-us-east"

	t.Run("impersonation refused", func(t *testing.T) {
		for i, victim := range opRegions[1:] {
			st := rogueStream(t, e.report[0], useToken)
			if err := st.Send(downReport(victim.name, victim.name, "rogue", uint64(i+1))); err != nil {
				t.Fatal(err)
			}
			_, err := st.Recv()
			if grpcstatus.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), `authenticated as "us-east"`) {
				t.Errorf("report as %s with us-east's token: %v, want PermissionDenied", victim.name, err)
			}
		}
		// Every region still gets its own member.
		for _, r := range opRegions {
			if got := answerA(e.dns[0], "cache.gtm.optest", opClient(r.name)); got != r.bind {
				t.Errorf("%s clients get %s after the impersonation attempts, want %s", r.name, got, r.bind)
			}
		}
		if a := agentStatus(t, e.admin[0], "eu-west"); !a.Connected || a.BootID == "" {
			t.Errorf("eu-west's status after the attempts: %+v", a)
		}
	})

	t.Run("rotation ends old streams", func(t *testing.T) {
		// A stream opened with the current token, reporting as itself.
		old := rogueStream(t, e.report[0], useToken)
		if err := old.Send(&api.Report{AgentId: "us-east", Region: "us-east", BootId: "second-process", Seq: 1}); err != nil {
			t.Fatal(err)
		}
		if ack, err := old.Recv(); err != nil || !ack.GetAccepted() {
			t.Fatalf("a stream with the valid token: ack %v, error %v", ack, err)
		}
		before := agentStatus(t, e.admin[0], "us-east")

		// The node reloads on SIGHUP (its file watcher may do so first).
		rotated := time.Now()
		writeFile(t, e.dir, "us-east.token", "e2e-token-us-east-rotated\n")
		signalAll(t, syscall.SIGHUP, e.nodes[0])
		ended := make(chan error, 1)
		go func() {
			for {
				if _, err := old.Recv(); err != nil {
					ended <- err
					return
				}
			}
		}()
		select {
		case err := <-ended:
			if grpcstatus.Code(err) != codes.Unauthenticated || !strings.Contains(err.Error(), "no longer valid") {
				t.Errorf("old-token stream ended with %v, want Unauthenticated", err)
			}
			t.Logf("old-token stream ended %s after the rotation", time.Since(rotated).Round(time.Millisecond))
		case <-time.After(5 * time.Second):
			t.Fatal("the old-token stream is still open 5 s after the reload")
		}
		// The real agent reads the rotated file and is back on a new stream.
		waitFor(t, 10*time.Second, "us-east back with the rotated token", func() bool {
			a := agentStatus(t, e.admin[0], "us-east")
			return a.Connected && a.StreamSince.After(before.StreamSince) && a.Accepted > before.Accepted
		})
		if _, err := os.Stat(filepath.Join(e.dir, "us-east.token")); err != nil {
			t.Fatal(err)
		}
		if out := e.nodes[0].out.String(); !strings.Contains(out, "ending report stream: credentials no longer valid") {
			t.Errorf("node log lacks the revocation:\n%s", tail(out, 30))
		}
		e.waitFresh(0)
	})
}
