package dnsserver

import (
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/aagtm/aagtm/config"
	"github.com/aagtm/aagtm/policy"
)

// benchHosts is the number of database hostnames in the benchmarks.
const benchHosts = 1000

// benchZone returns a config and snapshot of n databases in nearest mode
// over two regions, one A record per region, and the hostnames.
func benchZone(n int) (*config.Config, *policy.Snapshot, []string) {
	cfg := testConfig()
	cfg.Databases = nil
	snap := &policy.Snapshot{Serial: 1, Hosts: map[string]*policy.HostAnswers{}}
	var names []string
	for i := range n {
		name := fmt.Sprintf("db%04d", i)
		host := name + "." + zone
		names = append(names, host)
		cfg.Databases = append(cfg.Databases, config.Database{Name: name, Host: host, Mode: config.ModeNearest, TTL: 5 * time.Second})
		ans := func(region string, net int) *policy.Answer {
			return &policy.Answer{
				Records:         []policy.Record{aRec(name+"-"+region, fmt.Sprintf("10.%d.%d.%d", net, i/250, i%250+1))},
				TTL:             5 * time.Second,
				Reason:          name + "-" + region + " is the nearest eligible member",
				RegionDependent: true,
			}
		}
		snap.Hosts[host] = &policy.HostAnswers{Database: name, Host: host, ByRegion: map[string]*policy.Answer{"us-east": ans("us-east", 1), "eu-west": ans("eu-west", 2)}}
	}
	return cfg, snap, names
}

// fakeWriter is a dns.ResponseWriter that packs and discards: the only
// fake in this package, for benchmarks, where a socket would measure the
// kernel instead of the handler.
type fakeWriter struct {
	remote net.Addr
	n      int
}

func (w *fakeWriter) LocalAddr() net.Addr  { return &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 53} }
func (w *fakeWriter) RemoteAddr() net.Addr { return w.remote }
func (w *fakeWriter) WriteMsg(m *dns.Msg) error {
	b, err := m.Pack()
	w.n += len(b)
	return err
}
func (w *fakeWriter) Write(b []byte) (int, error) { w.n += len(b); return len(b), nil }
func (w *fakeWriter) Close() error                { return nil }
func (w *fakeWriter) TsigStatus() error           { return nil }
func (w *fakeWriter) TsigTimersOnly(bool)         {}
func (w *fakeWriter) Hijack()                     {}

// benchQueries returns one unpacked request per name, as dns.Server hands
// them to the handler.
func benchQueries(names []string, opts ...func(*dns.Msg)) []*dns.Msg {
	out := make([]*dns.Msg, len(names))
	for i, n := range names {
		out[i] = query(n, dns.TypeA, opts...)
	}
	return out
}

func runHandler(b *testing.B, h dns.Handler, reqs []*dns.Msg, client string) {
	w := &fakeWriter{remote: &net.UDPAddr{IP: net.ParseIP(client), Port: 5353}}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		h.ServeDNS(w, reqs[i%len(reqs)])
	}
	if w.n == 0 {
		b.Fatal("nothing written")
	}
}

// BenchmarkServeDNS measures the handler (answer, rate limiting, packing,
// metrics) on 1,000 hostnames, without sockets. Compare with
// BenchmarkBaseline.
func BenchmarkServeDNS(b *testing.B) {
	cfg, snap, names := benchZone(benchHosts)
	upper := make([]string, len(names))
	for i, n := range names {
		upper[i] = strings.ToUpper(n[:1]) + n[1:]
	}
	newServer := func(opts Options) *Server {
		s := New(opts, hclog.NewNullLogger())
		s.Update(cfg, snap)
		return s
	}
	plain := newServer(Options{})
	full := newServer(Options{
		Registerer: prometheus.NewRegistry(),
		RateLimit:  config.RateLimit{ResponsesPerSecond: 1 << 30, Slip: 2},
	})
	shipped := newServer(Options{
		Registerer:            prometheus.NewRegistry(),
		RateLimit:             config.RateLimit{ResponsesPerSecond: 1 << 30, Slip: 2},
		UDPAmplificationLimit: config.DefaultDNSUDPAmplificationLimit,
	})
	client := netip.MustParseAddr("10.1.0.1")
	issued := shipped.cookies.Load().make([]byte("clientck"), client, cookieTime(time.Now()))
	b.Run("A", func(b *testing.B) { runHandler(b, plain, benchQueries(names), "10.1.0.1") })
	b.Run("A/metrics+ratelimit", func(b *testing.B) { runHandler(b, full, benchQueries(names), "10.1.0.1") })
	b.Run("A/metrics+ratelimit+amplification", func(b *testing.B) { runHandler(b, shipped, benchQueries(names), "10.1.0.1") })
	b.Run("A/EDNS+cookie", func(b *testing.B) {
		runHandler(b, shipped, benchQueries(names, withCookie(hex.EncodeToString(issued[:]))), "10.1.0.1")
	})
	b.Run("A/EDNS", func(b *testing.B) { runHandler(b, plain, benchQueries(names, withEDNS(1232)), "10.1.0.1") })
	b.Run("A/ECS", func(b *testing.B) { runHandler(b, plain, benchQueries(names, withECS("10.2.3.0/24")), "10.1.0.1") })
	b.Run("A/mixed-case", func(b *testing.B) { runHandler(b, plain, benchQueries(upper), "10.1.0.1") })
	b.Run("NXDOMAIN", func(b *testing.B) {
		runHandler(b, plain, benchQueries([]string{"nope." + zone}), "10.1.0.1")
	})
}

// BenchmarkBaseline is the bare minimum a miekg/dns handler does: a static
// map lookup, SetReply, WriteMsg. The ratio ServeDNS/Baseline is the cost
// of the GTM's logic.
func BenchmarkBaseline(b *testing.B) {
	_, _, names := benchZone(benchHosts)
	h := newBaseline(names)
	b.Run("A", func(b *testing.B) { runHandler(b, h, benchQueries(names), "10.1.0.1") })
}

// baseline answers A for a static map of names, NXDOMAIN otherwise.
type baseline map[string][]dns.RR

func newBaseline(names []string) baseline {
	h := baseline{}
	for i, n := range names {
		h[n] = []dns.RR{&dns.A{
			Hdr: dns.RR_Header{Name: n, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 5},
			A:   netip.MustParseAddr(fmt.Sprintf("10.1.%d.%d", i/250, i%250+1)).AsSlice(),
		}}
	}
	return h
}

func (h baseline) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(r)
	m.Authoritative = true
	if rrs, ok := h[strings.ToLower(r.Question[0].Name)]; ok && r.Question[0].Qtype == dns.TypeA {
		m.Answer = rrs
	} else if !ok {
		m.Rcode = dns.RcodeNameError
	}
	_ = w.WriteMsg(m)
}

// BenchmarkBuildView measures building the view the node swaps in after
// every answer change, at 1,000 and 10,000 database hostnames (two
// regions each); the node's evaluation includes it.
//
//	go test -run '^$' -bench BuildView -benchmem ./dnsserver
func BenchmarkBuildView(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("hosts=%d", n), func(b *testing.B) {
			cfg, snap, _ := benchZone(n)
			log := hclog.NewNullLogger()
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				buildView(cfg, snap, "ns1", DefaultMaxUDPSize, log)
			}
		})
	}
}
