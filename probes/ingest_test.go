package probes

import (
	"context"
	"crypto/tls"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/aagtm/aagtm/api"
	"github.com/aagtm/aagtm/config"
	"github.com/aagtm/aagtm/internal/testenv"
)

// pki is a CA with a node certificate and agent certificates, on disk.
type pki struct {
	ca                  *testCA
	nodeCert, nodeKey   string
	agentCert, agentKey string // CN agent-use
}

func newPKI(t *testing.T) *pki {
	p := &pki{ca: newTestCA(t, "aagtm test CA")}
	p.nodeCert, p.nodeKey = p.ca.issue(t, "ns1", true)
	p.agentCert, p.agentKey = p.ca.issue(t, agentU, false)
	return p
}

func (p *pki) nodeSecurity() config.Security {
	return config.Security{TLS: config.TLS{Cert: p.nodeCert, Key: p.nodeKey, CA: p.ca.path}}
}

func (p *pki) agentSecurity() config.Security {
	return config.Security{TLS: config.TLS{Cert: p.agentCert, Key: p.agentKey, CA: p.ca.path}}
}

// withNode returns a copy of cfg whose agents report to addr.
func withNode(cfg *config.Config, addr string) *config.Config {
	c := *cfg
	c.Nodes = []config.Node{{Name: "ns1", Report: addr}}
	return &c
}

func TestAgentReportsToIngestOverMTLS(t *testing.T) {
	srv := testenv.StartRedis(t)
	p := newPKI(t)
	base := testConfig(member("cache-use", use, srv.URL()))
	base.Probes.Checks = []config.Check{config.CheckPing, config.CheckEcho}

	nodeCfg := *base
	nodeCfg.Security = p.nodeSecurity()
	in, rec, addr, _ := startIngest(t, &nodeCfg, "127.0.0.1:0", WithNodeName("ns1"))

	agentCfg := withNode(base, addr)
	agentCfg.Security = p.agentSecurity()
	var mu sync.Mutex
	var acks []*api.Ack
	a, err := NewAgent(agentCfg, agentU, testLogger(t), WithAckHook(func(node string, ack *api.Ack) {
		mu.Lock()
		acks = append(acks, ack)
		mu.Unlock()
	}))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	runAgent(t, a)
	waitFor(t, 3*time.Second, "3 observations", func() bool { return len(rec.all()) >= 3 })

	obs := rec.all()
	for i, o := range obs {
		if o.Agent != agentU || o.Region != use || o.Member != "cache-use" {
			t.Errorf("observation %d: agent %s region %s member %s", i, o.Agent, o.Region, o.Member)
		}
		if !o.Passed() || len(o.Checks) != 2 || o.Checks[0].Check != "ping" || o.Checks[1].Check != "echo" {
			t.Errorf("observation %d: checks %+v", i, o.Checks)
		}
		if o.RTT <= 0 || o.RTT > 50*time.Millisecond {
			t.Errorf("observation %d: RTT %s", i, o.RTT)
		}
		if o.Time.Before(start) || o.Time.After(time.Now()) {
			t.Errorf("observation %d: time %s not the node's receive time", i, o.Time)
		}
		if i > 0 && o.Seq <= obs[i-1].Seq {
			t.Errorf("observation %d: seq %d not above %d", i, o.Seq, obs[i-1].Seq)
		}
	}
	st := in.Agents()
	if len(st) != 1 || st[0].ID != agentU || st[0].LastSeq < obs[len(obs)-1].Seq ||
		st[0].LastSeen.IsZero() || st[0].Accepted < 3 || st[0].ConfigHash != ConfigHash(base) {
		t.Errorf("agent status %+v", st)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(acks) == 0 {
		t.Fatal("no acks")
	}
	ack := acks[0]
	if ack.GetError() != "" || ack.GetNode() != "ns1" || ack.GetConfigHash() != ConfigHash(base) || ack.GetSeq() != obs[0].Seq {
		t.Errorf("ack %v", ack)
	}
}

// dialRaw opens a report stream with the given transport credentials and
// optional token, sends rep and returns the first ack or the error.
func dialRaw(t *testing.T, addr string, creds credentials.TransportCredentials, token string, rep *api.Report) (*api.Ack, error) {
	t.Helper()
	opts := []grpc.DialOption{grpc.WithTransportCredentials(creds)}
	if token != "" {
		opts = append(opts, grpc.WithPerRPCCredentials(tokenCreds{token: token, requireTLS: false}))
	}
	conn, err := grpc.NewClient(addr, opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	st, err := api.NewReportServiceClient(conn).Stream(ctx)
	if err != nil {
		return nil, err
	}
	if err := st.Send(rep); err != nil {
		// The real error comes with Recv.
		_, rerr := st.Recv()
		return nil, rerr
	}
	return st.Recv()
}

func report(agent, region string, seq uint64, members ...string) *api.Report {
	r := &api.Report{AgentId: agent, Region: region, Seq: seq}
	for _, m := range members {
		r.Members = append(r.Members, &api.MemberReport{Member: m, Checks: []*api.CheckResult{{Name: "ping", Ok: true, Outcome: "pass"}}})
	}
	return r
}

func clientTLSCreds(t *testing.T, caPath, cert, key string) credentials.TransportCredentials {
	t.Helper()
	c := &tls.Config{}
	if caPath != "" {
		pool, err := loadCA(caPath)
		if err != nil {
			t.Fatal(err)
		}
		c.RootCAs = pool
	}
	if cert != "" {
		kp, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			t.Fatal(err)
		}
		c.Certificates = []tls.Certificate{kp}
	}
	return credentials.NewTLS(c)
}

func TestIngestMTLSRefusals(t *testing.T) {
	p := newPKI(t)
	other := newTestCA(t, "another CA")
	otherCert, otherKey := other.issue(t, agentU, false)
	strangerCert, strangerKey := p.ca.issue(t, "stranger", false)

	cfg := testConfig(member("cache-use", use, "redis://127.0.0.1:1"))
	cfg.Security = p.nodeSecurity()
	reg := prometheus.NewRegistry()
	_, rec, addr, _ := startIngest(t, cfg, "127.0.0.1:0", WithRegisterer(reg))

	cases := []struct {
		name     string
		creds    credentials.TransportCredentials
		rep      *api.Report
		wantCode codes.Code // codes.OK: an ack
		errHas   string     // in the status or the ack error
	}{
		{"valid certificate", clientTLSCreds(t, p.ca.path, p.agentCert, p.agentKey), report(agentU, use, 1, "cache-use"), codes.OK, ""},
		{"no client certificate", clientTLSCreds(t, p.ca.path, "", ""), report(agentU, use, 2, "cache-use"), codes.Unavailable, ""},
		{"certificate from another CA", clientTLSCreds(t, p.ca.path, otherCert, otherKey), report(agentU, use, 3, "cache-use"), codes.Unavailable, ""},
		{"plaintext", insecure.NewCredentials(), report(agentU, use, 4, "cache-use"), codes.Unavailable, ""},
		{"certificate for an unknown agent", clientTLSCreds(t, p.ca.path, strangerCert, strangerKey), report("stranger", use, 5, "cache-use"),
			codes.PermissionDenied, `CN "stranger" is not a configured agent`},
		{"report for another agent than the certificate", clientTLSCreds(t, p.ca.path, p.agentCert, p.agentKey), report(agentE, euw, 6, "cache-use"),
			codes.OK, `report names agent "agent-euw" but the client certificate is for "agent-use"`},
		{"report for another region", clientTLSCreds(t, p.ca.path, p.agentCert, p.agentKey), report(agentU, euw, 7, "cache-use"),
			codes.OK, `agent "agent-use" is bound to region "us-east", but its report is for region "eu-west"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := len(rec.all())
			ack, err := dialRaw(t, addr, tc.creds, "", tc.rep)
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
			if got := len(rec.all()) - before; (got > 0) != accepted {
				t.Errorf("%d observations reached the sink; accepted = %v", got, accepted)
			}
		})
	}
	if got := counter(t, reg, "aagtm_ingest_refused_streams_total", "code", "PermissionDenied"); got != 1 {
		t.Errorf("refused streams (PermissionDenied) = %v, want 1", got)
	}
}

func TestIngestTokenAuth(t *testing.T) {
	p := newPKI(t)
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte("s3cret-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(member("cache-use", use, "redis://127.0.0.1:1"))
	// Token auth over server-only TLS: the node has a certificate, agents
	// verify it against the CA and present the token.
	cfg.Security = config.Security{TLS: config.TLS{Cert: p.nodeCert, Key: p.nodeKey}, TokenFile: tokenFile}
	_, rec, addr, _ := startIngest(t, cfg, "127.0.0.1:0")
	creds := clientTLSCreds(t, p.ca.path, "", "")

	cases := []struct {
		name     string
		token    string
		rep      *api.Report
		wantCode codes.Code
		errHas   string
	}{
		{"right token", "s3cret-token", report(agentU, use, 1, "cache-use"), codes.OK, ""},
		{"wrong token", "guess", report(agentU, use, 2, "cache-use"), codes.Unauthenticated, "invalid bearer token"},
		{"no token", "", report(agentU, use, 3, "cache-use"), codes.Unauthenticated, "missing bearer token"},
		{"unknown agent", "s3cret-token", report("ghost", use, 4, "cache-use"), codes.OK, `unknown agent "ghost"`},
		{"another region", "s3cret-token", report(agentE, use, 5, "cache-use"), codes.OK, `bound to region "eu-west"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := len(rec.all())
			ack, err := dialRaw(t, addr, creds, tc.token, tc.rep)
			if got := status.Code(err); got != tc.wantCode {
				t.Fatalf("status %v (%v), want %v", got, err, tc.wantCode)
			}
			if err != nil && !strings.Contains(err.Error(), tc.errHas) {
				t.Errorf("error %q does not contain %q", err, tc.errHas)
			}
			if err == nil && !strings.Contains(ack.GetError(), tc.errHas) {
				t.Errorf("ack error %q, want %q", ack.GetError(), tc.errHas)
			}
			accepted := err == nil && tc.errHas == ""
			if got := len(rec.all()) - before; (got > 0) != accepted {
				t.Errorf("%d observations reached the sink; accepted = %v", got, accepted)
			}
		})
	}

	// An agent with the token file reports through the same node.
	srv := testenv.StartRedis(t)
	agentCfg := withNode(testConfig(member("cache-use", use, srv.URL())), addr)
	agentCfg.Security = config.Security{TLS: config.TLS{CA: p.ca.path}, TokenFile: tokenFile}
	a, err := NewAgent(agentCfg, agentU, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	before := len(rec.all())
	runAgent(t, a)
	waitFor(t, 3*time.Second, "observations from a token agent", func() bool { return len(rec.all()) > before })
}

func TestAgentReportingForAnotherRegionIsRejected(t *testing.T) {
	srv := testenv.StartRedis(t)
	p := newPKI(t)
	nodeCfg := testConfig(member("cache-use", use, srv.URL()))
	nodeCfg.Security = p.nodeSecurity()
	_, rec, addr, _ := startIngest(t, nodeCfg, "127.0.0.1:0")

	// The agent's (stale) config puts it in eu-west; the node's in us-east.
	agentCfg := withNode(testConfig(member("cache-use", use, srv.URL())), addr)
	agentCfg.Agents = []config.Agent{{ID: agentU, Region: euw}}
	agentCfg.Security = p.agentSecurity()
	acks := make(chan *api.Ack, 100)
	a, err := NewAgent(agentCfg, agentU, testLogger(t), WithAckHook(func(_ string, ack *api.Ack) {
		select {
		case acks <- ack:
		default:
		}
	}))
	if err != nil {
		t.Fatal(err)
	}
	runAgent(t, a)
	select {
	case ack := <-acks:
		if !strings.Contains(ack.GetError(), `bound to region "us-east"`) {
			t.Fatalf("ack error %q, want a region rejection", ack.GetError())
		}
		if ack.GetConfigHash() == ConfigHash(agentCfg) {
			t.Errorf("node and agent configs differ but the ack's hash matches the agent's")
		}
	case <-time.After(3 * time.Second):
		t.Fatal("no ack")
	}
	if n := len(rec.all()); n != 0 {
		t.Fatalf("%d observations of a rejected agent reached the sink", n)
	}
}

func TestIngestDropsUnknownMembers(t *testing.T) {
	cfg := testConfig(member("cache-use", use, "redis://127.0.0.1:1"))
	_, rec, addr, _ := startIngest(t, cfg, "127.0.0.1:0")
	ack, err := dialRaw(t, addr, insecure.NewCredentials(), "", report(agentU, use, 9, "cache-use", "cache-new"))
	if err != nil {
		t.Fatal(err)
	}
	if got := ack.GetRejectedMembers(); len(got) != 1 || got[0] != "cache-new" || !strings.Contains(ack.GetError(), "unknown members cache-new") {
		t.Errorf("ack %v: want cache-new rejected", ack)
	}
	if ack.GetSeq() != 9 {
		t.Errorf("ack seq %d, want 9", ack.GetSeq())
	}
	obs := rec.all()
	if len(obs) != 1 || obs[0].Member != "cache-use" || obs[0].Seq != 9 {
		t.Errorf("observations %+v, want only cache-use", obs)
	}
}

func TestIngestRateLimit(t *testing.T) {
	cfg := testConfig(member("cache-use", use, "redis://127.0.0.1:1"))
	reg := prometheus.NewRegistry()
	in, rec, addr, _ := startIngest(t, cfg, "127.0.0.1:0", WithRateLimit(20), WithRegisterer(reg))
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	st, err := api.NewReportServiceClient(conn).Stream(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	const sent = 60
	start := time.Now()
	dropped := 0
	for i := 1; i <= sent; i++ {
		if err := st.Send(report(agentU, use, uint64(i), "cache-use")); err != nil {
			t.Fatal(err)
		}
		ack, err := st.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(ack.GetError(), "rate limit") {
			dropped++
		}
	}
	_ = st.CloseSend()
	elapsed := time.Since(start).Seconds()
	accepted := len(rec.all())
	if max := 20 + int(20*elapsed) + 1; accepted > max {
		t.Errorf("%d of %d reports accepted in %.2fs; the limit allows at most %d", accepted, sent, elapsed, max)
	}
	if accepted+dropped != sent || dropped == 0 {
		t.Errorf("accepted %d + dropped %d != sent %d", accepted, dropped, sent)
	}
	if s := in.Agents(); len(s) != 1 || s[0].Dropped != uint64(dropped) {
		t.Errorf("status %+v, want %d dropped", s, dropped)
	}
	if got := counter(t, reg, "aagtm_ingest_reports_total", "result", "rate_limited"); got != float64(dropped) {
		t.Errorf("aagtm_ingest_reports_total{result=rate_limited} = %v, want %d", got, dropped)
	}
	if got := counter(t, reg, "aagtm_ingest_reports_total", "result", "accepted"); got != float64(accepted) {
		t.Errorf("aagtm_ingest_reports_total{result=accepted} = %v, want %d", got, accepted)
	}
}

// counter returns the value of the series of metric name whose label has
// value (0 when absent).
func counter(t *testing.T, reg *prometheus.Registry, name, label, value string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == label && lp.GetValue() == value {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

func TestAgentReconnectsAfterNodeRestart(t *testing.T) {
	srv := testenv.StartRedis(t)
	cfg := testConfig(member("cache-use", use, srv.URL()))
	_, rec1, addr, stop1 := startIngest(t, cfg, "127.0.0.1:0")

	a, err := NewAgent(withNode(cfg, addr), agentU, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	runAgent(t, a)
	waitFor(t, 3*time.Second, "observations before the restart", func() bool { return len(rec1.all()) >= 2 })

	stop1() // node goes down; the agent keeps probing
	down := len(rec1.all())
	time.Sleep(500 * time.Millisecond)
	if n := len(rec1.all()); n != down {
		t.Fatalf("stopped node still received %d observations", n-down)
	}

	_, rec2, _, _ := startIngest(t, cfg, addr) // same address
	restarted := time.Now()
	waitFor(t, 5*time.Second, "observations after the restart", func() bool { return len(rec2.all()) >= 2 })
	t.Logf("reports resumed %s after the node came back", time.Since(restarted).Round(time.Millisecond))
	// Only the latest report was kept while the node was away: the first
	// one after reconnecting is recent, not a backlog.
	first := rec2.all()[0]
	last1 := rec1.all()[down-1]
	if gap := first.Seq - last1.Seq; gap < 5 {
		t.Errorf("first report after the restart has seq +%d; want a fresh one, not a backlog", gap)
	}
}

func TestIngestSecurityErrors(t *testing.T) {
	cases := []struct {
		name   string
		sec    config.Security
		errHas string
	}{
		{"nothing", config.Security{}, "security.insecure: true"},
		{"token file missing", config.Security{TokenFile: "/nonexistent", Insecure: true}, "security.token_file"},
		{"CA without cert", config.Security{TLS: config.TLS{CA: "/nonexistent"}}, "cert and key"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig()
			cfg.Security = tc.sec
			in := NewIngest(cfg, testLogger(t), nil)
			if _, err := in.ServerOptions(); err == nil || !strings.Contains(err.Error(), tc.errHas) {
				t.Fatalf("ServerOptions error %v, want %q", err, tc.errHas)
			}
		})
	}
	t.Run("reconfigure keeps the transport", func(t *testing.T) {
		p := newPKI(t)
		cfg := testConfig()
		cfg.Security = p.nodeSecurity()
		in := NewIngest(cfg, testLogger(t), nil)
		if _, err := in.ServerOptions(); err != nil {
			t.Fatal(err)
		}
		plain := testConfig()
		if err := in.Reconfigure(plain); err == nil || !strings.Contains(err.Error(), "restart the node") {
			t.Fatalf("Reconfigure from TLS to plaintext: %v", err)
		}
		again := testConfig()
		again.Security = p.nodeSecurity()
		again.Agents = again.Agents[:1]
		if err := in.Reconfigure(again); err != nil {
			t.Fatal(err)
		}
	})
}
