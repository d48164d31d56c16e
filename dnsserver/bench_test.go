package dnsserver

import (
	"encoding/hex"
	"fmt"
	"maps"
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

// udpBenchCases are the UDP queries of BenchmarkUDPAnswer and
// TestFastAnswerAllocs, on the hostnames names: the shipped defaults
// (metrics, rate limiting, amplification cap) with the common query
// shapes, and an NXDOMAIN, which takes the full path.
func udpBenchCases(tb testing.TB, names []string) (*udpLoop, netip.Addr, []struct {
	name string
	pkts [][]byte
}) {
	cfg, snap, _ := benchZone(len(names))
	s := New(Options{
		Registerer:            prometheus.NewRegistry(),
		RateLimit:             config.RateLimit{ResponsesPerSecond: 1 << 30, Slip: 2},
		UDPAmplificationLimit: config.DefaultDNSUDPAmplificationLimit,
	}, hclog.NewNullLogger())
	s.Update(cfg, snap)
	l, err := newUDPLoop(s, nil)
	if err != nil {
		tb.Fatal(err)
	}
	client := netip.MustParseAddr("10.1.0.1")
	issued := l.cookies.make([]byte("clientck"), client, cookieTime(time.Now()))
	upper := make([]string, len(names))
	for i, n := range names {
		upper[i] = strings.ToUpper(n[:1]) + n[1:]
	}
	packed := func(names []string, opts ...func(*dns.Msg)) [][]byte {
		var out [][]byte
		for _, n := range names {
			b, err := query(n, dns.TypeA, opts...).Pack()
			if err != nil {
				tb.Fatal(err)
			}
			out = append(out, b)
		}
		return out
	}
	return l, client, []struct {
		name string
		pkts [][]byte
	}{
		{"A", packed(names)},
		{"A/EDNS", packed(names, withEDNS(1232))},
		{"A/EDNS+cookie", packed(names, withCookie(hex.EncodeToString(issued[:])))},
		{"A/ECS", packed(names, withECS("10.2.3.0/24"))},
		{"A/mixed-case", packed(upper)},
		{"NXDOMAIN", packed([]string{"nope." + zone})},
	}
}

// BenchmarkUDPAnswer measures a UDP loop's answer to one query (fast path
// or full path, rate limiting, packing, metric counts added per batch) on
// 1,000 hostnames, without sockets. Compare with BenchmarkBaseline.
func BenchmarkUDPAnswer(b *testing.B) {
	_, _, names := benchZone(benchHosts)
	l, client, cases := udpBenchCases(b, names)
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			dst := make([]byte, 0, 4096)
			b.ReportAllocs()
			now := time.Now()
			for i := 0; b.Loop(); i++ {
				if l.answer(dst, c.pkts[i%len(c.pkts)], client, now) == nil {
					b.Fatal("no reply")
				}
				if i%udpBatch == 0 {
					l.s.metrics.flush(&l.tally, time.Microsecond)
				}
			}
		})
	}
}

// TestFastAnswerAllocs: the fast path's answer allocates nothing (the
// garbage collector stays out of the query path), rate limiting and
// metric counts included.
func TestFastAnswerAllocs(t *testing.T) {
	_, _, names := benchZone(benchHosts)
	l, client, cases := udpBenchCases(t, names)
	dst := make([]byte, 0, 4096)
	now := time.Now()
	for _, c := range cases {
		if c.name == "NXDOMAIN" {
			continue // the full path
		}
		t.Run(c.name, func(t *testing.T) {
			i := 0
			allocs := testing.AllocsPerRun(1000, func() {
				l.answer(dst, c.pkts[i%len(c.pkts)], client, now)
				i++
			})
			if allocs != 0 {
				t.Errorf("%v allocations per answer, want 0", allocs)
			}
		})
	}
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

// BenchmarkBuildView measures the view the node swaps in after every
// evaluation, at 1,000 and 10,000 database hostnames (two regions each):
// built from scratch (a new config), and built from the previous view
// (next) when only the reasons changed (the answers' serial did not move)
// and when one host's answer changed. Compare the ns/op of the three in
// one run.
//
//	go test -run '^$' -bench BuildView -benchmem ./dnsserver
func BenchmarkBuildView(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		cfg, snap, names := benchZone(n)
		log := hclog.NewNullLogger()
		prev := buildView(cfg, snap, "ns1", DefaultMaxUDPSize, log)
		b.Run(fmt.Sprintf("hosts=%d/scratch", n), func(b *testing.B) {
			b.ReportAllocs()
			for range b.N {
				buildView(cfg, snap, "ns1", DefaultMaxUDPSize, log)
			}
		})
		b.Run(fmt.Sprintf("hosts=%d/next-reasons-only", n), func(b *testing.B) {
			later := *snap
			b.ReportAllocs()
			for range b.N {
				prev.next(cfg, &later, "ns1", DefaultMaxUDPSize, log)
			}
		})
		b.Run(fmt.Sprintf("hosts=%d/next-one-host-changed", n), func(b *testing.B) {
			changed := *snap
			changed.Serial++
			changed.Hosts = maps.Clone(snap.Hosts)
			ha := *snap.Hosts[names[0]]
			ha.ByRegion = map[string]*policy.Answer{"us-east": ha.ByRegion["eu-west"], "eu-west": ha.ByRegion["eu-west"]}
			changed.Hosts[names[0]] = &ha
			b.ReportAllocs()
			for range b.N {
				prev.next(cfg, &changed, "ns1", DefaultMaxUDPSize, log)
			}
		})
	}
}
