package probes

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/aagtm/aagtm/api"
	"github.com/aagtm/aagtm/config"
	"github.com/aagtm/aagtm/policy"
)

// Region and agent names used throughout the tests.
const (
	use    = "us-east"
	euw    = "eu-west"
	agentU = "agent-use"
	agentE = "agent-euw"
)

// testConfig returns a config with two regions, one agent per region, one
// database "cache" with the given members, fast probe settings and
// insecure reports.
func testConfig(members ...config.Member) *config.Config {
	for i := range members {
		members[i].Database = "cache"
	}
	return &config.Config{
		Regions:       []config.Region{{Name: euw}, {Name: use}},
		DefaultRegion: use,
		Databases: []config.Database{{
			Name: "cache", Host: "cache.gtm.example.com.", Mode: config.ModeNearest, Members: members,
		}},
		Probes: config.Probes{
			Interval:          100 * time.Millisecond,
			Timeout:           80 * time.Millisecond,
			Rise:              2,
			Fall:              2,
			Quorum:            config.Quorum{Kind: "majority"},
			StaleAfter:        time.Second,
			Checks:            []config.Check{config.CheckPing},
			KeyspaceKeys:      4,
			KeyTTL:            10 * time.Second,
			HeartbeatPrefix:   "aagtm:hb:",
			HeartbeatInterval: 20 * time.Millisecond,
		},
		Agents:   []config.Agent{{ID: agentE, Region: euw}, {ID: agentU, Region: use}},
		Security: config.Security{Insecure: true},
	}
}

func member(name, region, url string) config.Member {
	return config.Member{Name: name, Region: region, Redis: url}
}

// testLogger logs to t until the test ends (late goroutine logs are
// dropped instead of panicking).
func testLogger(t testing.TB) hclog.Logger {
	w := &tWriter{t: t}
	t.Cleanup(func() {
		w.mu.Lock()
		w.done = true
		w.mu.Unlock()
	})
	return hclog.New(&hclog.LoggerOptions{Name: t.Name(), Output: w, Level: hclog.Debug})
}

type tWriter struct {
	t    testing.TB
	mu   sync.Mutex
	done bool
}

func (w *tWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(string(p[:len(p)-1]))
	}
	return len(p), nil
}

// recorder is a sink that keeps every observation.
type recorder struct {
	mu  sync.Mutex
	obs []policy.Observation
}

func (r *recorder) sink(obs []policy.Observation) {
	r.mu.Lock()
	r.obs = append(r.obs, obs...)
	r.mu.Unlock()
}

func (r *recorder) all() []policy.Observation {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]policy.Observation(nil), r.obs...)
}

// waitFor polls cond every 10ms until it holds or d passes.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// startIngest serves an ingest for cfg on addr ("127.0.0.1:0" for any
// port) until the returned stop is called (or the test ends).
func startIngest(t testing.TB, cfg *config.Config, addr string, opts ...IngestOption) (*Ingest, *recorder, string, func()) {
	t.Helper()
	rec := &recorder{}
	in := NewIngest(cfg, testLogger(t), rec.sink, opts...)
	var lis net.Listener
	var err error
	// A restarted node rebinds its port; retry briefly if the kernel has
	// not released it yet.
	for i := 0; i < 50; i++ {
		if lis, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("listen %s: %v", addr, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- in.Serve(ctx, lis) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Serve: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return in, rec, lis.Addr().String(), stop
}

// runAgent runs a until the returned stop is called (or the test ends).
func runAgent(t testing.TB, a *Agent) func() {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(5 * time.Second):
				t.Errorf("Run did not return within 5s of cancellation")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// reports collects the agent's reports through WithReportHook.
type reports struct {
	mu   sync.Mutex
	reps []*api.Report
}

func (r *reports) hook(rep *api.Report) {
	r.mu.Lock()
	r.reps = append(r.reps, rep)
	r.mu.Unlock()
}

func (r *reports) all() []*api.Report {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*api.Report(nil), r.reps...)
}

// memberOf returns the named member's entry of rep.
func memberOf(rep *api.Report, name string) *api.MemberReport {
	for _, m := range rep.GetMembers() {
		if m.GetMember() == name {
			return m
		}
	}
	return nil
}

// testCA is a throwaway certificate authority.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	path string // CA certificate PEM file
	dir  string
}

var serial = struct {
	sync.Mutex
	n int64
}{n: 1}

func nextSerial() *big.Int {
	serial.Lock()
	defer serial.Unlock()
	serial.n++
	return big.NewInt(serial.n)
}

func newTestCA(t testing.TB, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          nextSerial(),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	ca := &testCA{cert: cert, key: key, dir: t.TempDir()}
	ca.path = filepath.Join(ca.dir, "ca.pem")
	writePEM(t, ca.path, "CERTIFICATE", der)
	return ca
}

// issue signs a certificate for cn: a server certificate for 127.0.0.1
// when server is true, a client certificate otherwise. It returns the
// certificate and key file paths.
func (ca *testCA) issue(t testing.TB, cn string, server bool) (certPath, keyPath string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: nextSerial(),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPath = filepath.Join(ca.dir, cn+".pem")
	keyPath = filepath.Join(ca.dir, cn+"-key.pem")
	writePEM(t, certPath, "CERTIFICATE", der)
	writePEM(t, keyPath, "EC PRIVATE KEY", kder)
	return certPath, keyPath
}

func writePEM(t testing.TB, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}
