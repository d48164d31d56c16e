package ingest

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/aagtm/aagtm/api"
	"github.com/aagtm/aagtm/config"
	"github.com/aagtm/aagtm/internal/testenv"
)

// identityCase is one stream opened with some credentials and one report
// sent on it.
type identityCase struct {
	name     string
	creds    credentials.TransportCredentials
	token    string
	rep      *api.Report
	wantCode codes.Code // codes.OK: an ack
	errHas   string     // in the status or the ack error
}

func runIdentityCases(t *testing.T, addr string, rec *testenv.Recorder, cases []identityCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := len(rec.All())
			ack, err := dialRaw(t, addr, tc.creds, tc.token, tc.rep)
			if got := status.Code(err); got != tc.wantCode {
				t.Fatalf("status %v (%v), want %v", got, err, tc.wantCode)
			}
			if err != nil && !strings.Contains(err.Error(), tc.errHas) {
				t.Errorf("error %q does not contain %q", err, tc.errHas)
			}
			if err == nil && ((tc.errHas == "") != (ack.GetError() == "") || !strings.Contains(ack.GetError(), tc.errHas)) {
				t.Errorf("ack error %q, want %q", ack.GetError(), tc.errHas)
			}
			accepted := err == nil && tc.errHas == ""
			if err == nil && ack.GetAccepted() != accepted {
				t.Errorf("ack accepted = %v, want %v", ack.GetAccepted(), accepted)
			}
			if got := len(rec.All()) - before; (got > 0) != accepted {
				t.Errorf("%d observations reached the sink; accepted = %v", got, accepted)
			}
		})
	}
}

func TestIngestMTLSIdentity(t *testing.T) {
	p := testenv.NewPKI(t, agentU)
	other := testenv.NewCA(t, "another CA")
	otherCert, otherKey := other.Client(t, agentU)
	strangerCert, strangerKey := p.CA.Client(t, "stranger")
	// The URI SAN names the agent, whatever the CN says.
	uriCert, uriKey := p.CA.Client(t, "host-17.example.net", "aagtm-agent://agent-euw")
	// A URI SAN for a stranger wins over a CN naming a real agent.
	trickCert, trickKey := p.CA.Client(t, agentU, "aagtm-agent://stranger")

	cfg := testenv.ReportConfig(testenv.Member("cache-use", use, "redis://127.0.0.1:1"))
	cfg.Security = p.NodeSecurity()
	reg := prometheus.NewRegistry()
	_, rec, addr := startIngest(t, cfg, WithRegisterer(reg))
	agent := clientTLSCreds(t, p.CA.Path, p.AgentCert, p.AgentKey)

	runIdentityCases(t, addr, rec, []identityCase{
		{"valid certificate", agent, "", report(agentU, use, 1, "cache-use"), codes.OK, ""},
		{"report without agent id takes the certificate's", agent, "", report("", use, 2, "cache-use"), codes.OK, ""},
		{"no client certificate", clientTLSCreds(t, p.CA.Path, "", ""), "", report(agentU, use, 3, "cache-use"), codes.Unavailable, ""},
		{"certificate from another CA", clientTLSCreds(t, p.CA.Path, otherCert, otherKey), "", report(agentU, use, 4, "cache-use"), codes.Unavailable, ""},
		{"plaintext", insecure.NewCredentials(), "", report(agentU, use, 5, "cache-use"), codes.Unavailable, ""},
		{"certificate for an unknown agent", clientTLSCreds(t, p.CA.Path, strangerCert, strangerKey), "", report("stranger", use, 6, "cache-use"),
			codes.PermissionDenied, `client certificate names "stranger"`},
		{"URI SAN names the agent", clientTLSCreds(t, p.CA.Path, uriCert, uriKey), "", report(agentE, euw, 7, "cache-use"), codes.OK, ""},
		{"URI SAN wins over the CN", clientTLSCreds(t, p.CA.Path, trickCert, trickKey), "", report(agentU, use, 8, "cache-use"),
			codes.PermissionDenied, `client certificate names "stranger"`},
		{"impersonation: report for another agent than the certificate", agent, "", report(agentE, euw, 9, "cache-use"),
			codes.PermissionDenied, `report names agent "agent-euw" but this stream is authenticated as "agent-use"`},
		{"report for another region", agent, "", report(agentU, euw, 10, "cache-use"),
			codes.OK, `agent "agent-use" is bound to region "us-east", but its report is for region "eu-west"`},
	})
	if got := counter(t, reg, "aagtm_ingest_refused_streams_total", "code", "PermissionDenied"); got != 3 {
		t.Errorf("refused streams (PermissionDenied) = %v, want 3", got)
	}
	if got := counter(t, reg, "aagtm_ingest_reports_total", "result", "impersonation"); got != 1 {
		t.Errorf("impersonation reports = %v, want 1", got)
	}
}

func TestIngestTokenIdentity(t *testing.T) {
	p := testenv.NewPKI(t, agentU)
	cfg := testenv.ReportConfig(testenv.Member("cache-use", use, "redis://127.0.0.1:1"))
	toks := withTokens(t, cfg, t.TempDir())
	// Token auth over server-only TLS: the node has a certificate, agents
	// verify it against the CA and present their own token.
	cfg.Security = config.Security{TLS: config.TLS{Cert: p.NodeCert, Key: p.NodeKey}}
	in, rec, addr := startIngest(t, cfg)
	creds := clientTLSCreds(t, p.CA.Path, "", "")

	runIdentityCases(t, addr, rec, []identityCase{
		{"own token", creds, toks[agentU], report(agentU, use, 1, "cache-use"), codes.OK, ""},
		{"the other agent's own token", creds, toks[agentE], report(agentE, euw, 1, "cache-use"), codes.OK, ""},
		{"wrong token", creds, "guess", report(agentU, use, 2, "cache-use"), codes.Unauthenticated, "invalid bearer token"},
		{"no token", creds, "", report(agentU, use, 3, "cache-use"), codes.Unauthenticated, "missing bearer token"},
		{"impersonation: agent-use's token, agent-euw's report", creds, toks[agentU], report(agentE, euw, 4, "cache-use"),
			codes.PermissionDenied, `report names agent "agent-euw" but this stream is authenticated as "agent-use" (token)`},
		{"impersonation: unknown agent", creds, toks[agentU], report("ghost", use, 5, "cache-use"),
			codes.PermissionDenied, `report names agent "ghost"`},
		{"another region", creds, toks[agentE], report(agentE, use, 5, "cache-use"), codes.OK, `bound to region "eu-west"`},
	})
	for _, st := range in.Agents() {
		if st.ID == agentU && (st.Refused != 2 || !strings.Contains(st.LastRefusal, `report names agent "ghost"`)) {
			t.Errorf("agent-use status %+v: want its 2 impersonation attempts counted as refused", st)
		}
	}
}

// With tokens and tls.ca, an agent without a token may authenticate by its
// certificate; a token and a certificate naming different agents are
// refused.
func TestIngestTokensWithCertificates(t *testing.T) {
	p := testenv.NewPKI(t, agentU)
	cfg := testenv.ReportConfig(testenv.Member("cache-use", use, "redis://127.0.0.1:1"))
	toks := withTokens(t, cfg, t.TempDir())
	cfg.Agents[1].TokenFile = "" // agent-use uses its certificate
	cfg.Security = p.NodeSecurity()
	_, rec, addr := startIngest(t, cfg)
	cert := clientTLSCreds(t, p.CA.Path, p.AgentCert, p.AgentKey)
	runIdentityCases(t, addr, rec, []identityCase{
		{"certificate, no token", cert, "", report(agentU, use, 1, "cache-use"), codes.OK, ""},
		{"token, no certificate", clientTLSCreds(t, p.CA.Path, "", ""), toks[agentE], report(agentE, euw, 1, "cache-use"), codes.OK, ""},
		{"agent-euw's token with agent-use's certificate", cert, toks[agentE], report(agentE, euw, 2, "cache-use"),
			codes.PermissionDenied, `the bearer token is agent "agent-euw"'s but the client certificate names "agent-use"`},
		{"no token, no certificate", clientTLSCreds(t, p.CA.Path, "", ""), "", report(agentU, use, 2, "cache-use"),
			codes.Unauthenticated, "missing bearer token"},
	})
}

// Rotating an agent's token and reloading ends the stream that used the
// old token; removing an agent ends its stream; the new token works.
func TestIngestReconfigureRevokesCredentials(t *testing.T) {
	dir := t.TempDir()
	cfg := testenv.ReportConfig(testenv.Member("cache-use", use, "redis://127.0.0.1:1"))
	// A production-like interval: the bound below is one interval, and
	// a loaded test machine may take a few 100ms to schedule the client.
	cfg.Probes.Interval = time.Second
	toks := withTokens(t, cfg, dir)
	reg := prometheus.NewRegistry()
	in, _, addr := startIngest(t, cfg, WithRegisterer(reg))

	use1 := dialStream(t, addr, insecure.NewCredentials(), toks[agentU])
	euw1 := dialStream(t, addr, insecure.NewCredentials(), toks[agentE])
	for _, c := range []struct {
		c   *client
		rep *api.Report
	}{{use1, report(agentU, use, 1, "cache-use")}, {euw1, report(agentE, euw, 1, "cache-use")}} {
		if ack, err := c.c.send(c.rep); err != nil || !ack.GetAccepted() {
			t.Fatalf("before the reload: ack %v, error %v", ack, err)
		}
	}

	// Rotate agent-use's token.
	if err := os.WriteFile(cfg.Agents[1].TokenFile, []byte("rotated-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := in.Reconfigure(cfg); err != nil {
		t.Fatal(err)
	}
	_, err := use1.st.Recv()
	if status.Code(err) != codes.Unauthenticated || !strings.Contains(err.Error(), "no longer valid") {
		t.Fatalf("old stream after the rotation: %v, want Unauthenticated", err)
	}
	if d := time.Since(start); d > cfg.Probes.Interval {
		t.Errorf("the old stream ended %s after the reload, more than one interval", d)
	}
	// agent-euw's stream is untouched.
	if ack, err := euw1.send(report(agentE, euw, 2, "cache-use")); err != nil || !ack.GetAccepted() {
		t.Fatalf("agent-euw after agent-use's rotation: ack %v, error %v", ack, err)
	}
	if _, err := dialRaw(t, addr, insecure.NewCredentials(), toks[agentU], report(agentU, use, 2, "cache-use")); status.Code(err) != codes.Unauthenticated {
		t.Errorf("old token after the rotation: %v, want Unauthenticated", err)
	}
	if ack, err := dialRaw(t, addr, insecure.NewCredentials(), "rotated-token", report(agentU, use, 3, "cache-use")); err != nil || !ack.GetAccepted() {
		t.Errorf("new token: ack %v, error %v", ack, err)
	}

	// Remove agent-euw from the config.
	smaller := testenv.ReportConfig(testenv.Member("cache-use", use, "redis://127.0.0.1:1"))
	smaller.Agents = []config.Agent{cfg.Agents[1]}
	if err := in.Reconfigure(smaller); err != nil {
		t.Fatal(err)
	}
	if _, err := euw1.st.Recv(); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("removed agent's stream: %v, want it ended", err)
	}
	if got := counter(t, reg, "aagtm_ingest_refused_streams_total", "reason", "revoked"); got != 2 {
		t.Errorf("revoked streams = %v, want 2", got)
	}
}

// A certificate that no longer verifies against the reloaded CA ends its
// stream.
func TestIngestReconfigureRevokesCertificates(t *testing.T) {
	p := testenv.NewPKI(t, agentU)
	cfg := testenv.ReportConfig(testenv.Member("cache-use", use, "redis://127.0.0.1:1"))
	cfg.Security = p.NodeSecurity()
	in, _, addr := startIngest(t, cfg)
	c := dialStream(t, addr, clientTLSCreds(t, p.CA.Path, p.AgentCert, p.AgentKey), "")
	if ack, err := c.send(report(agentU, use, 1, "cache-use")); err != nil || !ack.GetAccepted() {
		t.Fatalf("ack %v, error %v", ack, err)
	}
	// A new CA signs the node's new certificate; the agent's old one no
	// longer verifies.
	next := testenv.NewCA(t, "next CA")
	cert, key := next.Server(t, "ns1")
	cfg2 := testenv.ReportConfig(testenv.Member("cache-use", use, "redis://127.0.0.1:1"))
	cfg2.Security = config.Security{TLS: config.TLS{Cert: cert, Key: key, CA: next.Path}}
	if err := in.Reconfigure(cfg2); err != nil {
		t.Fatal(err)
	}
	if _, err := c.st.Recv(); status.Code(err) != codes.Unauthenticated || !strings.Contains(err.Error(), "no longer verifies") {
		t.Fatalf("stream after the CA change: %v, want Unauthenticated", err)
	}
}
