package ingest

import (
	"context"
	"crypto/tls"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/aagtm/aagtm/api"
	"github.com/aagtm/aagtm/config"
	"github.com/aagtm/aagtm/internal/testenv"
)

// Region and agent names used throughout the tests.
const (
	use    = testenv.RegionUse
	euw    = testenv.RegionEuw
	agentU = testenv.AgentUse
	agentE = testenv.AgentEuw
)

// withTokens gives every agent of cfg a token file in dir holding
// "token-of-<id>" and returns the tokens by agent id.
func withTokens(t *testing.T, cfg *config.Config, dir string) map[string]string {
	t.Helper()
	toks := map[string]string{}
	for i, a := range cfg.Agents {
		toks[a.ID] = "token-of-" + a.ID
		f := filepath.Join(dir, a.ID+".token")
		if err := os.WriteFile(f, []byte(toks[a.ID]+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg.Agents[i].TokenFile = f
	}
	return toks
}

// startIngest serves an ingest for cfg on 127.0.0.1 (any port) until the
// test ends, with a recorder as its sink.
func startIngest(t testing.TB, cfg *config.Config, opts ...Option) (*Ingest, *testenv.Recorder, string) {
	t.Helper()
	rec := &testenv.Recorder{}
	in := New(cfg, testenv.Logger(t), rec.Sink, opts...)
	return in, rec, serve(t, in)
}

// serve serves in on 127.0.0.1 (any port) until the test ends and returns
// the address.
func serve(t testing.TB, in *Ingest) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- in.Serve(ctx, lis) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return lis.Addr().String()
}

func clientTLSCreds(t *testing.T, caPath, cert, key string) credentials.TransportCredentials {
	t.Helper()
	c := &tls.Config{}
	if caPath != "" {
		pool, err := config.LoadCA(caPath)
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

// client is one report stream opened by a test.
type client struct {
	conn *grpc.ClientConn
	st   api.ReportService_StreamClient
}

// dialStream opens a report stream with the given transport credentials
// and optional token; it is closed when the test ends.
func dialStream(t *testing.T, addr string, creds credentials.TransportCredentials, token string) *client {
	t.Helper()
	c, err := tryStream(t, addr, creds, token)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// tryStream is dialStream returning the error of opening the stream.
func tryStream(t *testing.T, addr string, creds credentials.TransportCredentials, token string) (*client, error) {
	t.Helper()
	st, conn, err := testenv.OpenReportStream(t, addr, creds, token)
	if err != nil {
		return nil, err
	}
	return &client{conn: conn, st: st}, nil
}

// send sends rep and returns its ack, or the error that ended the stream.
func (c *client) send(rep *api.Report) (*api.Ack, error) {
	if err := c.st.Send(rep); err != nil {
		// The real error comes with Recv.
		_, rerr := c.st.Recv()
		return nil, rerr
	}
	return c.st.Recv()
}

// dialRaw opens a report stream, sends rep and returns the first ack or
// the error.
func dialRaw(t *testing.T, addr string, creds credentials.TransportCredentials, token string, rep *api.Report) (*api.Ack, error) {
	t.Helper()
	c, err := tryStream(t, addr, creds, token)
	if err != nil {
		return nil, err
	}
	return c.send(rep)
}

// report returns a report of agent in region, boot "boot-1", with a
// passing ping for each member.
func report(agent, region string, seq uint64, members ...string) *api.Report {
	r := &api.Report{AgentId: agent, Region: region, Seq: seq, BootId: "boot-1"}
	for _, m := range members {
		r.Members = append(r.Members, &api.MemberReport{Member: m, Checks: []*api.CheckResult{{Name: "ping", Ok: true, Outcome: "pass"}}})
	}
	return r
}

// counter returns the sum of the series of metric name whose label has
// value (0 when absent).
func counter(t *testing.T, reg *prometheus.Registry, name, label, value string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == label && lp.GetValue() == value {
					sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
				}
			}
		}
	}
	return sum
}
