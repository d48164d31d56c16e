package admin_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aagtm/aagtm/admin"
	"github.com/aagtm/aagtm/config"
	"github.com/aagtm/aagtm/internal/testenv"
)

// refusingAddr returns a loopback address where nothing listens.
func refusingAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestFanOutReportsEveryNode(t *testing.T) {
	_, _, ts := startServer(t, testToken, false)
	up := strings.TrimPrefix(ts.URL, "http://")
	down := refusingAddr(t)
	nodes := []config.Node{
		{Name: "ns1", Admin: up},
		{Name: "ns2", Admin: down},
	}

	got := make([]*admin.Status, len(nodes))
	res := admin.FanOut(context.Background(), nodes, testToken, 2*time.Second,
		func(ctx context.Context, i int, c *admin.Client) error {
			if c.Node() != nodes[i].Name {
				t.Errorf("client %d calls %s, want %s", i, c.Node(), nodes[i].Name)
			}
			st, err := c.Status(ctx)
			got[i] = st
			return err
		})
	if len(res) != 2 {
		t.Fatalf("results = %+v, want 2", res)
	}
	if res[0].Node != "ns1" || res[0].Err != nil || res[0].URL != "http://"+up {
		t.Errorf("ns1 result = %+v, want success at http://%s", res[0], up)
	}
	if res[1].Node != "ns2" || res[1].Err == nil || !strings.Contains(res[1].Err.Error(), "refused") {
		t.Errorf("ns2 result = %+v, want connection refused", res[1])
	}
	if st := got[0]; st == nil || st.Serial != 7 {
		t.Errorf("status from ns1 = %+v", st)
	}

	var buf bytes.Buffer
	if err := admin.RenderResults(&buf, res); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	if !strings.Contains(out, "ns1") || !strings.Contains(out, " ok ") || !strings.Contains(out, "ns2") || !strings.Contains(out, "FAILED") {
		t.Errorf("RenderResults =\n%s", out)
	}
}

func TestFanOutDrainsEveryNode(t *testing.T) {
	b1, _, ts1 := startServer(t, testToken, false)
	b2, _, ts2 := startServer(t, testToken, false)
	nodes := []config.Node{
		{Name: "ns1", Admin: ts1.URL},
		{Name: "ns2", Admin: ts2.URL},
	}
	res := admin.FanOut(context.Background(), nodes, testToken, 0,
		func(ctx context.Context, _ int, c *admin.Client) error {
			return errOf(c.Drain(ctx, "cache-use", admin.Change{}))
		})
	for _, r := range res {
		if r.Err != nil {
			t.Errorf("%s: %v", r.Node, r.Err)
		}
	}
	for i, b := range []*fakeBackend{b1, b2} {
		if calls := b.Calls(); len(calls) != 1 || calls[0] != "drain cache-use" {
			t.Errorf("node %d calls = %v", i+1, calls)
		}
	}
}

func TestFanOutTimeout(t *testing.T) {
	// A listener that accepts but never answers.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	res := admin.FanOut(context.Background(), []config.Node{{Name: "slow", Admin: ln.Addr().String()}},
		"", 200*time.Millisecond,
		func(ctx context.Context, _ int, c *admin.Client) error {
			_, err := c.Status(ctx)
			return err
		})
	if res[0].Err == nil || !strings.Contains(res[0].Err.Error(), "no reply within 200ms") {
		t.Errorf("slow node = %+v, want a timeout", res[0])
	}
}

func TestAdminURL(t *testing.T) {
	tests := []struct {
		node config.Node
		want string
	}{
		{config.Node{Admin: "127.0.0.1:8053", Report: "10.0.0.5:7411"}, "http://127.0.0.1:8053"},
		{config.Node{Admin: "0.0.0.0:8053", Report: "10.0.0.5:7411"}, "http://10.0.0.5:8053"},
		{config.Node{Admin: ":8053", Report: "ns1.internal:7411"}, "http://ns1.internal:8053"},
		{config.Node{Admin: "[::]:8053", Report: "0.0.0.0:7411"}, "http://127.0.0.1:8053"},
		{config.Node{Admin: "[2001:db8::1]:8053"}, "http://[2001:db8::1]:8053"},
		{config.Node{Admin: "https://admin.ns1.example.com/"}, "https://admin.ns1.example.com"},
		{config.Node{Admin: "0.0.0.0:8053", Report: "ns1.internal:7411", AdminTLS: config.AdminTLS{Cert: "c", Key: "k"}}, "https://ns1.internal:8053"},
		{config.Node{Admin: "10.0.0.5:8053", AdminTLS: config.AdminTLS{CA: "ca.pem"}}, "https://10.0.0.5:8053"},
		{config.Node{}, "http://127.0.0.1:8053"},
	}
	for _, tc := range tests {
		if got := admin.AdminURL(tc.node); got != tc.want {
			t.Errorf("AdminURL(%+v) = %q, want %q", tc.node, got, tc.want)
		}
	}
}

func TestNewClientRejectsBadAddress(t *testing.T) {
	for _, addr := range []string{"", "ftp://x:1", "http://"} {
		if _, err := admin.NewClient("ns1", addr, ""); err == nil {
			t.Errorf("NewClient(%q) accepted", addr)
		}
	}
}

func TestTokenInClear(t *testing.T) {
	for _, tc := range []struct {
		url  string
		want bool
	}{
		{"http://127.0.0.1:8053", false},
		{"http://127.0.0.2:8053", false},
		{"http://[::1]:8053", false},
		{"http://localhost:8053", false},
		{"https://10.0.0.5:8053", false},
		{"https://ns1.example.net:8053", false},
		{"http://10.0.0.5:8053", true},
		{"http://ns1.internal:8053", true},
		{"http://localhost.evil.example:8053", true},
	} {
		if got := admin.TokenInClear(tc.url); got != tc.want {
			t.Errorf("TokenInClear(%s) = %v, want %v", tc.url, got, tc.want)
		}
	}
}

// TestFanOutOverTLS calls an HTTPS admin API: verified with the node's
// admin_tls.ca it works, with the system roots or over plain HTTP it does
// not; the token travels with the drain only, never with the status GET.
func TestFanOutOverTLS(t *testing.T) {
	ca := testenv.NewCA(t, "admin-ca")
	certFile, keyFile := ca.Server(t, "ns1")
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	b := newFakeBackend(t)
	s := admin.NewServer(b, "ns1", testToken, false, nil, testLogger(t))
	var mu sync.Mutex
	authByMethod := map[string]string{}
	ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		authByMethod[r.Method] = r.Header.Get("Authorization")
		mu.Unlock()
		s.Handler().ServeHTTP(w, r)
	}))
	ts.TLS = &tls.Config{Certificates: []tls.Certificate{pair}}
	ts.StartTLS()
	t.Cleanup(ts.Close)
	addr := strings.TrimPrefix(ts.URL, "https://")

	for _, tc := range []struct {
		name    string
		node    config.Node
		wantErr string
	}{
		{"verified with admin_tls.ca", config.Node{Name: "ns1", Admin: addr, AdminTLS: config.AdminTLS{Cert: certFile, Key: keyFile, CA: ca.Path}}, ""},
		{"system roots do not know the CA", config.Node{Name: "ns1", Admin: addr, AdminTLS: config.AdminTLS{Cert: certFile, Key: keyFile}}, "certificate"},
		{"plain HTTP to the HTTPS listener", config.Node{Name: "ns1", Admin: addr}, "HTTPS"},
		{"CA file without PEM", config.Node{Name: "ns1", Admin: addr, AdminTLS: config.AdminTLS{CA: keyFile}}, "nodes[ns1].admin_tls.ca: " + keyFile + " holds no PEM certificate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := admin.FanOut(context.Background(), []config.Node{tc.node}, testToken, 0,
				func(ctx context.Context, _ int, c *admin.Client) error {
					if _, err := c.Status(ctx); err != nil {
						return err
					}
					return errOf(c.Drain(ctx, "cache-use", admin.Change{}))
				})
			err := res[0].Err
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("FanOut error = %v, want %q", err, tc.wantErr)
			}
		})
	}
	mu.Lock()
	defer mu.Unlock()
	if authByMethod["GET"] != "" || authByMethod["POST"] != "Bearer "+testToken {
		t.Errorf("Authorization by method = %q: want the token with POST only", authByMethod)
	}
}
