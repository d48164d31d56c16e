package node

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/redis/go-redis/v9"

	"github.com/aagtm/aagtm/config"
	"github.com/aagtm/aagtm/internal/testenv"
)

// sentinelYAML has three regions whose client subnets are loopback
// networks, so a test client picks its region by its source address; the
// default region is the last one. ap-south's member listens on 127.0.0.1
// (the only IP the test CA's server certificates name) with a plain port
// for the probes (its redis URL) and a TLS port for clients (its `port`).
const sentinelYAML = `
zone: {name: gtm.test., ns: [{name: ns1.gtm.test., address: 127.0.0.1}]}
regions:
  us-east: {subnets: [127.0.1.0/24], prefer: [us-east, eu-west, ap-south]}
  eu-west: {subnets: [127.0.2.0/24], prefer: [eu-west, us-east, ap-south]}
  ap-south: {subnets: [127.0.3.0/24], prefer: [ap-south, eu-west, us-east]}
default_region: ap-south
databases:
  cache:
    ttl: 1s
    members:
      - {name: cache-use, region: us-east, addresses: [127.0.0.41], redis: "%s"}
      - {name: cache-euw, region: eu-west, addresses: [127.0.0.42], redis: "%s"}
      - {name: cache-aps, region: ap-south, addresses: [127.0.0.1], redis: "%s", port: %d}
probes: {interval: 100ms, timeout: 80ms, stale_after: 1s, checks: [ping]}
nodes:
  - name: ns1
    report: "127.0.0.1:%d"
    dns: ["127.0.0.1:0"]
    admin: "127.0.0.1:0"
    sentinel: "127.0.0.1:%d"
    sentinel_tls: {cert: %q, key: %q}
security: {insecure: true, sentinel_password_file: %q}
`

const sentinelPassword = "s3ntinel-pw"

// sentinelNode is a running node (the fixture's, with its in-process
// agents) with a TLS, password-protected Sentinel endpoint and three real
// members.
type sentinelNode struct {
	node    *Node
	tls     *tls.Config // trusts the test CA
	members map[string]*testenv.Redis
	tlsPort int // cache-aps's TLS port
}

func startSentinelNode(t *testing.T) *sentinelNode {
	t.Helper()
	ca := testenv.NewCA(t, "aagtm test CA")
	cert, key := ca.Server(t, "127.0.0.1")
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "sentinel.pw")
	if err := os.WriteFile(pwFile, []byte(sentinelPassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := &sentinelNode{members: map[string]*testenv.Redis{}, tlsPort: testenv.FreePort(t, "127.0.0.1")}
	s.members["cache-use"] = testenv.StartRedis(t, testenv.WithBind("127.0.0.41"))
	s.members["cache-euw"] = testenv.StartRedis(t, testenv.WithBind("127.0.0.42"))
	s.members["cache-aps"] = testenv.StartRedis(t, testenv.WithArgs("--tls-port", strconv.Itoa(s.tlsPort),
		"--tls-cert-file", cert, "--tls-key-file", key, "--tls-ca-cert-file", ca.Path, "--tls-auth-clients", "no"))
	yaml := fmt.Sprintf(sentinelYAML, s.members["cache-use"].URL(), s.members["cache-euw"].URL(), s.members["cache-aps"].URL(), s.tlsPort,
		testenv.FreePort(t, "127.0.0.1"), testenv.FreePort(t, "127.0.0.1"), cert, key, pwFile)
	cfg, err := config.Parse([]byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	pem, err := os.ReadFile(ca.Path)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	s.tls = &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}

	f := &fixture{cfg: cfg, members: s.members}
	f.start(t)
	s.node = f.node
	return s
}

// dnsFrom asks the node's DNS for cache.gtm.test's A record from source
// address src (no ECS: the source address picks the region).
func (s *sentinelNode) dnsFrom(t *testing.T, src string) string {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion("cache.gtm.test.", dns.TypeA)
	c := &dns.Client{Timeout: time.Second, Dialer: &net.Dialer{LocalAddr: &net.UDPAddr{IP: net.ParseIP(src)}}}
	r, _, err := c.Exchange(m, s.node.DNSAddrs()[0])
	if err != nil {
		return "error: " + err.Error()
	}
	if len(r.Answer) != 1 {
		return fmt.Sprintf("%d answers", len(r.Answer))
	}
	if a, ok := r.Answer[0].(*dns.A); ok {
		return a.A.String()
	}
	return r.Answer[0].String()
}

// sentinelFrom returns a go-redis Sentinel client of the node's TLS
// endpoint that connects from source address src.
func (s *sentinelNode) sentinelFrom(src, password string) *redis.SentinelClient {
	return redis.NewSentinelClient(s.optionsFrom(src, password))
}

// optionsFrom are go-redis options for the node's TLS Sentinel endpoint,
// dialled from source address src.
func (s *sentinelNode) optionsFrom(src, password string) *redis.Options {
	return &redis.Options{
		Addr: s.node.SentinelAddr(), Password: password, Protocol: 2, TLSConfig: s.tls,
		DialTimeout: time.Second, ReadTimeout: time.Second, DisableIdentity: true,
		Dialer: func(ctx context.Context, network, addr string) (net.Conn, error) {
			d := &tls.Dialer{NetDialer: &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}, Config: s.tls}
			return d.DialContext(ctx, network, addr)
		},
	}
}

// TestSentinelAgreesWithDNSPerRegion: for a client of every region of a
// three-region config, the default region and an unmatched source, the
// Sentinel endpoint (over TLS, with its password) answers the member DNS
// answers the same source address, with the member's port setting.
func TestSentinelAgreesWithDNSPerRegion(t *testing.T) {
	s := startSentinelNode(t)
	urlPort := func(m string) string { return strconv.Itoa(s.members[m].Port()) }
	tests := []struct {
		name, src, wantIP, wantPort string
	}{
		{"us-east", "127.0.1.5", "127.0.0.41", urlPort("cache-use")},
		{"eu-west", "127.0.2.5", "127.0.0.42", urlPort("cache-euw")},
		{"ap-south (the default region)", "127.0.3.5", "127.0.0.1", strconv.Itoa(s.tlsPort)},
		{"unmatched source", "127.0.0.1", "127.0.0.1", strconv.Itoa(s.tlsPort)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			testenv.WaitFor(t, 10*time.Second, "DNS to answer "+tt.wantIP+" to "+tt.src, func() bool {
				return s.dnsFrom(t, tt.src) == tt.wantIP
			})
			c := s.sentinelFrom(tt.src, sentinelPassword)
			defer c.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			got, err := c.GetMasterAddrByName(ctx, "cache").Result()
			if err != nil {
				t.Fatal(err)
			}
			if dnsIP := s.dnsFrom(t, tt.src); len(got) != 2 || got[0] != dnsIP || got[0] != tt.wantIP || got[1] != tt.wantPort {
				t.Errorf("Sentinel answers %v, DNS %s; want %s %s", got, dnsIP, tt.wantIP, tt.wantPort)
			}
		})
	}
}

// TestSentinelTLSAndPassword drives the TLS endpoint with real clients: a
// go-redis FailoverClient with TLSConfig and the password writes to the
// master it discovers (over that member's TLS port); AUTH and HELLO ...
// AUTH with a wrong password get Redis's own errors (compared with a real
// redis-server with requirepass) and the right one is accepted.
func TestSentinelTLSAndPassword(t *testing.T) {
	s := startSentinelNode(t)
	testenv.WaitFor(t, 10*time.Second, "an answer for the default region", func() bool {
		return s.dnsFrom(t, "127.0.0.1") == "127.0.0.1"
	})

	t.Run("FailoverClient", func(t *testing.T) {
		rdb := redis.NewFailoverClient(&redis.FailoverOptions{
			MasterName: "cache", SentinelAddrs: []string{s.node.SentinelAddr()}, SentinelPassword: sentinelPassword,
			TLSConfig: s.tls, DialTimeout: time.Second, ReadTimeout: time.Second, MaxRetries: 2, DisableIdentity: true,
		})
		defer rdb.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := rdb.Set(ctx, "aagtm:test:tls", "ok", 0).Err(); err != nil {
			t.Fatalf("SET through the FailoverClient: %v", err)
		}
		if got := s.members["cache-aps"].MustDo("GET", "aagtm:test:tls"); got != "ok" {
			t.Errorf("cache-aps holds %v, want the client's write", got)
		}
		wrong := redis.NewFailoverClient(&redis.FailoverOptions{
			MasterName: "cache", SentinelAddrs: []string{s.node.SentinelAddr()}, SentinelPassword: "nope",
			TLSConfig: s.tls, DialTimeout: time.Second, ReadTimeout: time.Second, MaxRetries: -1, DisableIdentity: true,
		})
		defer wrong.Close()
		if err := wrong.Ping(ctx).Err(); err == nil {
			t.Error("a FailoverClient with a wrong Sentinel password found a master")
		}
	})

	real := testenv.StartRedis(t, testenv.WithPassword(sentinelPassword))
	tests := []struct {
		name     string
		args     []any
		accepted bool
	}{
		{"command before AUTH", []any{"PING"}, false},
		{"AUTH wrong", []any{"AUTH", "nope"}, false},
		{"AUTH default wrong", []any{"AUTH", "default", "nope"}, false},
		{"AUTH other user", []any{"AUTH", "bob", sentinelPassword}, false},
		{"HELLO AUTH wrong", []any{"HELLO", "3", "AUTH", "default", "nope"}, false},
		{"AUTH right", []any{"AUTH", sentinelPassword}, true},
		{"AUTH default right", []any{"AUTH", "default", sentinelPassword}, true},
		{"HELLO AUTH right", []any{"HELLO", "3", "AUTH", "default", sentinelPassword}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			want := rawReplyErr(ctx, redis.NewClient(&redis.Options{Addr: real.Addr(), Protocol: 2, DisableIdentity: true}), tt.args)
			got := rawReplyErr(ctx, redis.NewClient(s.optionsFrom("127.0.0.1", "")), tt.args)
			if got != want {
				t.Errorf("Sentinel over TLS: %q, redis-server: %q", got, want)
			}
			if accepted := got == ""; accepted != tt.accepted {
				t.Errorf("accepted = %v (%q), want %v", accepted, got, tt.accepted)
			}
			t.Logf("%v → %q", tt.args, got)
		})
	}
}

// rawReplyErr sends args on a fresh connection of c (no password given at
// connect), then closes c, and returns the reply's error text, "" when
// the command succeeded.
func rawReplyErr(ctx context.Context, c *redis.Client, args []any) string {
	defer c.Close()
	if err := c.Do(ctx, args...).Err(); err != nil {
		return err.Error()
	}
	return ""
}
