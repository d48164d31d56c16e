package sentinel

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aagtm/aagtm/config"
	"github.com/aagtm/aagtm/internal/testenv"
	"github.com/aagtm/aagtm/policy"
)

// testConfig has two regions; 127.0.0.0/8 (the tests' clients) is
// eu-west, the default region is us-east.
//
//	cache   eu-west → cache-euw 10.2.0.10:12000, us-east → cache-use 10.1.0.10:12001
//	cloud   every region → CNAME redis-1.cloud.example.net.:6379 (no port in its URL)
//	pending in the config, no answer in the snapshot
func testConfig() *config.Config {
	zone := "gtm.example.com."
	return &config.Config{
		Zone: config.Zone{Name: zone},
		Regions: []config.Region{
			{Name: "eu-west", Subnets: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("10.2.0.0/16")}},
			{Name: "us-east", Subnets: []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16")}},
		},
		DefaultRegion: "us-east",
		Probes:        config.Probes{Interval: 250 * time.Millisecond, Fall: 2},
		Databases: []config.Database{
			{Name: "cache", Host: "cache." + zone, Members: []config.Member{
				{Name: "cache-euw", Region: "eu-west", Redis: "redis://10.2.0.10:12000", Port: 12000},
				{Name: "cache-use", Region: "us-east", Redis: "rediss://user:pw@10.1.0.10:12001/0", Port: 12001},
			}},
			{Name: "cloud", Host: "cloud." + zone, Members: []config.Member{
				{Name: "cloud-1", Region: "us-east", CNAME: "redis-1.cloud.example.net.", Redis: "redis://redis-1.cloud.example.net", Port: 6379},
			}},
			{Name: "pending", Host: "pending." + zone},
		},
		Nodes: []config.Node{
			{Name: "ns1", Report: "192.0.2.1:7411", Sentinel: "0.0.0.0:26379"},
			{Name: "ns2", Report: "192.0.2.2:7411", Sentinel: "192.0.2.22:26380"},
			{Name: "ns3", Report: "192.0.2.3:7411"},
		},
	}
}

func aRec(member, addr string) policy.Record {
	return policy.Record{Kind: policy.RecordA, Member: member, Addr: netip.MustParseAddr(addr)}
}

// testSnapshot answers cache per region with euw and use (member names
// of testConfig), cloud with its CNAME.
func testSnapshot(serial uint64, euw, use string) *policy.Snapshot {
	addr := map[string]string{"cache-euw": "10.2.0.10", "cache-use": "10.1.0.10"}
	answer := func(m string) *policy.Answer {
		return &policy.Answer{Records: []policy.Record{aRec(m, addr[m])}, Members: []string{m}}
	}
	cloud := &policy.Answer{Records: []policy.Record{{Kind: policy.RecordCNAME, Member: "cloud-1", Target: "redis-1.cloud.example.net."}}}
	return &policy.Snapshot{
		Serial: serial,
		Hosts: map[string]*policy.HostAnswers{
			"cache.gtm.example.com.": {Database: "cache", ByRegion: map[string]*policy.Answer{"eu-west": answer(euw), "us-east": answer(use)}},
			"cloud.gtm.example.com.": {Database: "cloud", ByRegion: map[string]*policy.Answer{"eu-west": cloud, "us-east": cloud}},
		},
	}
}

// startServer runs a server on a free loopback port, updated with
// testConfig and testSnapshot(1, cache-euw, cache-use).
func startServer(t testing.TB, opts Options) *Server {
	t.Helper()
	if opts.Node == "" {
		opts.Node = "ns1"
	}
	opts.Listen = "127.0.0.1:0"
	s := New(opts, testenv.Logger(t))
	s.Update(testConfig(), testSnapshot(1, "cache-euw", "cache-use"))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	select {
	case <-s.Ready():
	case err := <-done:
		t.Fatalf("Run: %v", err)
	}
	return s
}

// client is a raw connection that reads whole RESP values as bytes.
type client struct {
	t  testing.TB
	nc net.Conn
	rd *bufio.Reader
}

func dial(t testing.TB, s *Server) *client {
	t.Helper()
	nc, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &client{t: t, nc: nc, rd: bufio.NewReader(nc)}
}

// send writes raw bytes.
func (c *client) send(raw string) {
	c.t.Helper()
	if _, err := io.WriteString(c.nc, raw); err != nil {
		c.t.Fatal(err)
	}
}

// do sends a command as a RESP array and returns the raw reply.
func (c *client) do(args ...string) string {
	c.t.Helper()
	c.send(encode(args...))
	return c.read()
}

func encode(args ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	return b.String()
}

// read returns one whole RESP2 or RESP3 value, raw.
func (c *client) read() string {
	c.t.Helper()
	_ = c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	v, err := readValue(c.rd)
	if err != nil {
		c.t.Fatalf("read a reply: %v", err)
	}
	return v
}

func readValue(rd *bufio.Reader) (string, error) {
	line, err := rd.ReadString('\n')
	if err != nil {
		return line, err
	}
	if len(line) < 3 {
		return line, fmt.Errorf("short line %q", line)
	}
	body := line[1 : len(line)-2]
	switch line[0] {
	case '+', '-', ':', '_', ',', '#':
		return line, nil
	case '$', '=':
		n, _ := strconv.Atoi(body)
		if n < 0 {
			return line, nil
		}
		buf := make([]byte, n+2)
		_, err := io.ReadFull(rd, buf)
		return line + string(buf), err
	case '*', '>', '%', '~':
		n, _ := strconv.Atoi(body)
		if line[0] == '%' {
			n *= 2
		}
		out := line
		for range max(n, 0) {
			v, err := readValue(rd)
			out += v
			if err != nil {
				return out, err
			}
		}
		return out, nil
	}
	return line, fmt.Errorf("unknown type %q", line)
}

// bulks is the RESP encoding of a sequence of bulk strings (no header).
func bulks(ss ...string) string {
	var b strings.Builder
	for _, s := range ss {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(s), s)
	}
	return b.String()
}
