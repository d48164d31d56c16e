package dnsserver

import (
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/aagtm/aagtm/config"
)

// shippedYAML sets no dns: key, so its DNS settings are the defaults as
// shipped.
const shippedYAML = `
zone: {name: gtm.example.com., ns: [{name: ns1.gtm.example.com., address: 192.0.2.53}]}
regions: {us-east: {subnets: [10.1.0.0/16]}}
default_region: us-east
databases:
  cache: {members: [{name: cache-use, region: us-east, addresses: [10.1.0.10], redis: "redis://127.0.0.1:1"}]}
nodes: [{name: ns1, report: "127.0.0.1:7411"}]
security: {insecure: true}
`

// shippedOptions are the server options a node builds from a config that
// leaves every dns: setting at its default.
func shippedOptions(t testing.TB, reg prometheus.Registerer) Options {
	t.Helper()
	cfg, err := config.Parse([]byte(shippedYAML))
	if err != nil {
		t.Fatal(err)
	}
	d := cfg.DNS
	if d.RateLimit.ResponsesPerSecond == 0 || d.UDPAmplificationLimit == 0 {
		t.Fatalf("shipped defaults turn protection off: %+v", d)
	}
	return Options{
		MaxUDPSize:            d.MaxUDPSize,
		RateLimit:             d.RateLimit,
		UDPAmplificationLimit: d.UDPAmplificationLimit,
		TCP:                   d.TCP,
		Registerer:            reg,
	}
}

// withCookie adds an OPT record (if missing) with a COOKIE option.
func withCookie(hexCookie string) func(*dns.Msg) {
	return func(m *dns.Msg) {
		if m.IsEdns0() == nil {
			m.SetEdns0(1232, false)
		}
		o := m.IsEdns0()
		o.Option = append(o.Option, &dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: hexCookie})
	}
}

// cookieOf returns the COOKIE option of m in hex, "" when there is none.
func cookieOf(m *dns.Msg) string {
	if o := m.IsEdns0(); o != nil {
		for _, e := range o.Option {
			if c, ok := e.(*dns.EDNS0_COOKIE); ok {
				return c.Cookie
			}
		}
	}
	return ""
}

// TestAmplification measures, over real UDP, the size of the reply to
// every kind of query without a valid server cookie, as a multiple of the
// query's size, and checks it against dns.udp_amplification_limit as
// shipped. The same query with a valid server cookie shows what the cap
// takes away. go test -v prints the table.
func TestAmplification(t *testing.T) {
	opts := shippedOptions(t, nil)
	limit := float64(opts.UDPAmplificationLimit)
	snap := manySnapshot()
	// A reason as long as the one that drew a 571-byte reply in issue 11.
	snap.Hosts[ordersHost].ByRegion["us-east"].Reason = strings.Repeat("orders-use is first in the failover order; ", 11)
	_, addr := startServer(t, opts, testConfig(), snap)

	const clientCookie = "0102030405060708"
	first := exchange(t, "udp", addr, query(cacheHost, dns.TypeA, withCookie(clientCookie)))
	good := cookieOf(first)
	if len(good) != 48 {
		t.Fatalf("no server cookie handed out: %q", good)
	}
	bad := good[:32] + "0000000000000000"

	class := func(c uint16) func(*dns.Msg) { return func(m *dns.Msg) { m.Question[0].Qclass = c } }
	twoQuestions := func(m *dns.Msg) { m.Question = append(m.Question, m.Question[0]) }
	noQuestion := func(m *dns.Msg) { m.Question = nil }
	badVers := func(m *dns.Msg) { m.SetEdns0(1232, false); m.IsEdns0().SetVersion(1) }
	notify := func(m *dns.Msg) { m.Opcode = dns.OpcodeNotify }
	edns := withEDNS(1232)

	tests := []struct {
		name   string
		q      *dns.Msg
		capped bool // the reply without a valid cookie is cut to an empty TC reply
	}{
		{"A", query(cacheHost, dns.TypeA), false},
		{"A, EDNS", query(cacheHost, dns.TypeA, edns), false},
		{"A, EDNS, ECS", query(cacheHost, dns.TypeA, withECS("10.2.3.0/24")), false},
		{"A, client cookie only", query(cacheHost, dns.TypeA, withCookie(clientCookie)), false},
		{"AAAA, EDNS", query(cacheHost, dns.TypeAAAA, edns), false},
		{"ANY at a host (A+AAAA), EDNS", query(cacheHost, dns.TypeANY, edns), false},
		{"CNAME, EDNS", query("cloud."+zone, dns.TypeA, edns), false},
		{"all members (100 A)", query(manyHost, dns.TypeA), true},
		{"all members (100 A), EDNS", query(manyHost, dns.TypeA, edns), true},
		{"all members ANY, EDNS", query(manyHost, dns.TypeANY, edns), true},
		{"_why TXT, EDNS", query("_why."+cacheHost, dns.TypeTXT, edns), false},
		{"_why TXT, 473-byte reason, EDNS", query("_why."+ordersHost, dns.TypeTXT, edns), true},
		{"SOA, EDNS", query(zone, dns.TypeSOA, edns), false},
		{"ANY at the apex, EDNS", query(zone, dns.TypeANY, edns), false},
		{"NS (3) with glue (3), EDNS", query(zone, dns.TypeNS, edns), true},
		{"name server A, EDNS", query("ns1."+zone, dns.TypeA, edns), false},
		{"NXDOMAIN, EDNS", query("nope."+zone, dns.TypeA, edns), false},
		{"NODATA, EDNS", query(cacheHost, dns.TypeMX, edns), false},
		{"SERVFAIL, EDNS", query("broken."+zone, dns.TypeA, edns), false},
		{"REFUSED, EDNS", query("example.org.", dns.TypeA, edns), false},
		{"CH TXT id.server", query("id.server.", dns.TypeTXT, class(dns.ClassCHAOS)), false},
		{"FORMERR (QDCOUNT 2), EDNS", query(cacheHost, dns.TypeA, edns, twoQuestions), false},
		{"NOTIMP, EDNS", query(zone, dns.TypeSOA, edns, notify), false},
		{"BADVERS", query(cacheHost, dns.TypeA, badVers), false},
		{"BADCOOKIE", query(cacheHost, dns.TypeA, withCookie(bad)), false},
		{"QDCOUNT 0 cookie query", query(cacheHost, dns.TypeA, noQuestion, withCookie(clientCookie)), false},
	}
	t.Logf("amplification limit %v× (dns.udp_amplification_limit as shipped)", limit)
	t.Logf("%-34s %6s %6s %7s %4s | %s", "reply type (UDP, no valid cookie)", "query", "reply", "factor", "TC", "with a valid server cookie")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			qb, err := tt.q.Pack()
			if err != nil {
				t.Fatal(err)
			}
			rb := rawExchangeBytes(t, addr, nil, qb)
			if rb == nil {
				t.Fatal("no reply")
			}
			r := new(dns.Msg)
			if err := r.Unpack(rb); err != nil {
				t.Fatal(err)
			}
			factor := float64(len(rb)) / float64(len(qb))
			if factor > limit {
				t.Errorf("reply of %d bytes to a %d-byte query: %.2f×, above the %v× limit", len(rb), len(qb), factor, limit)
			}
			emptied := r.Truncated && len(r.Answer)+len(r.Ns) == 0
			if emptied != tt.capped {
				t.Errorf("cut to an empty TC reply: %v, want %v (%d answers)", emptied, tt.capped, len(r.Answer))
			}
			if tt.q.Id == r.Id && tt.capped && cookieOf(tt.q) != "" && cookieOf(r) == "" {
				t.Error("capped reply lost its cookie")
			}
			uncapped := "-"
			if cookieOf(tt.q) == "" && tt.q.Opcode == dns.OpcodeQuery {
				cq := tt.q.Copy()
				withCookie(good)(cq)
				cqb, _ := cq.Pack()
				if crb := rawExchangeBytes(t, addr, nil, cqb); crb != nil {
					cr := new(dns.Msg)
					_ = cr.Unpack(crb)
					uncapped = fmt.Sprintf("%d→%d B, %.2f×, TC %v", len(cqb), len(crb), float64(len(crb))/float64(len(cqb)), cr.Truncated)
				}
			}
			t.Logf("%-34s %5dB %5dB %6.2f× %4v | %s", tt.name, len(qb), len(rb), factor, r.Truncated, uncapped)
		})
	}
}

// TestRateLimitShippedBurst sends a burst of 10,000 UDP queries for one
// name from one client to a server with the shipped settings: about one
// second's worth (responses_per_second) is answered, the rest is limited,
// half of it slipped as TC. A client with a valid server cookie is not
// limited.
func TestRateLimitShippedBurst(t *testing.T) {
	reg := prometheus.NewRegistry()
	opts := shippedOptions(t, reg)
	rate := opts.RateLimit.ResponsesPerSecond
	_, addr := startServer(t, opts, testConfig(), testSnapshot(1))

	burst := func(t *testing.T, n int, opt func(*dns.Msg)) (replies, tc int, elapsed time.Duration) {
		raddr, _ := net.ResolveUDPAddr("udp", addr)
		conn, err := net.DialUDP("udp", nil, raddr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_ = conn.SetReadBuffer(4 << 20)
		var got, trunc atomic.Int64
		done := make(chan struct{})
		go func() {
			defer close(done)
			buf := make([]byte, 4096)
			for {
				_ = conn.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
				k, err := conn.Read(buf)
				if err != nil {
					return
				}
				var m dns.Msg
				if m.Unpack(buf[:k]) == nil {
					got.Add(1)
					if m.Truncated && len(m.Answer) == 0 {
						trunc.Add(1)
					}
				}
			}
		}()
		q := query(cacheHost, dns.TypeA)
		if opt != nil {
			opt(q)
		}
		start := time.Now()
		for i := range n {
			q.Id = uint16(i)
			b, _ := q.Pack()
			if _, err := conn.Write(b); err != nil {
				t.Fatal(err)
			}
			if i%50 == 49 {
				time.Sleep(time.Millisecond) // stay within the socket buffers
			}
		}
		<-done
		return int(got.Load()), int(trunc.Load()), time.Since(start)
	}
	metric := func(name string, labels ...string) int { return int(metricValue(t, reg, name, labels...)) }

	const n = 10000
	replies, tc, elapsed := burst(t, n, nil)
	handled, answered := 0, metric("aagtm_dns_queries_total", "type", "A", "rcode", "NOERROR")
	for _, rc := range []string{"NOERROR", "none"} {
		handled += metric("aagtm_dns_queries_total", "type", "A", "rcode", rc)
	}
	slipped := metric("aagtm_dns_rate_limited_total", "action", "slip")
	dropped := metric("aagtm_dns_rate_limited_total", "action", "drop")
	answered -= slipped // slips are NOERROR replies too
	t.Logf("burst of %d in %v: server handled %d, answered %d, slipped %d (TC), dropped %d; client got %d replies, %d TC; rate %d/s",
		n, elapsed.Round(time.Millisecond), handled, answered, slipped, dropped, replies, tc, rate)
	if handled < n/2 {
		t.Fatalf("the server saw %d of %d queries: the test measured nothing", handled, n)
	}
	if maxAnswered := rate + int(float64(rate)*elapsed.Seconds()) + 1; answered > maxAnswered || answered < rate {
		t.Errorf("%d answered, want %d (one second's burst) to %d (plus the refill over %v)", answered, rate, maxAnswered, elapsed)
	}
	if slipped-dropped > 1 || dropped-slipped > 1 {
		t.Errorf("%d slipped and %d dropped, want every second limited reply slipped", slipped, dropped)
	}
	if tc == 0 || tc > slipped {
		t.Errorf("client saw %d TC replies, server slipped %d", tc, slipped)
	}

	// The same client with a valid server cookie is not limited.
	first := exchange(t, "udp", addr, query(ordersHost, dns.TypeA, withCookie("0102030405060708")))
	good := cookieOf(first)
	const m = 2000
	before := metric("aagtm_dns_rate_limited_total", "action", "slip") + metric("aagtm_dns_rate_limited_total", "action", "drop")
	replies, tc, _ = burst(t, m, withCookie(good))
	after := metric("aagtm_dns_rate_limited_total", "action", "slip") + metric("aagtm_dns_rate_limited_total", "action", "drop")
	t.Logf("burst of %d with a valid server cookie: %d replies, %d TC, %d limited", m, replies, tc, after-before)
	if after != before || tc != 0 {
		t.Errorf("cookie client limited: %d limited, %d TC", after-before, tc)
	}
	if goodCount := metric("aagtm_dns_cookies_total", "state", "good"); goodCount < m/2 {
		t.Errorf("aagtm_dns_cookies_total{state=good} = %d, want about %d", goodCount, m)
	}
}

// TestTCPConnectionCaps makes 5,000 TCP connection attempts from 100
// loopback sources (50 each, one source after the other) against the
// shipped caps and holds them open: the server holds
// max_connections_per_source of each source until it holds
// max_connections, resets the rest at once, and keeps answering UDP
// throughout; once the clients go, TCP serves again. The read timeout is
// raised so that no admitted connection times out during the storm.
func TestTCPConnectionCaps(t *testing.T) {
	reg := prometheus.NewRegistry()
	opts := shippedOptions(t, reg)
	opts.TCP.ReadTimeout = time.Minute
	s, addr := startServer(t, opts, testConfig(), testSnapshot(1))
	caps := opts.TCP
	const sources, perSource = 100, 50
	const attempts = sources * perSource

	// Sample what the server holds while the storm lasts.
	var maxOpen, maxPerSource atomic.Int64
	stopSampling := make(chan struct{})
	var sampler sync.WaitGroup
	sampler.Go(func() {
		for {
			s.conns.mu.Lock()
			open := int64(s.conns.open)
			top := 0
			for _, k := range s.conns.bySource {
				top = max(top, k)
			}
			s.conns.mu.Unlock()
			maxOpen.Store(max(maxOpen.Load(), open))
			maxPerSource.Store(max(maxPerSource.Load(), int64(top)))
			select {
			case <-stopSampling:
				return
			case <-time.After(time.Millisecond):
			}
		}
	})
	// UDP keeps being answered.
	var udpSent, udpAnswered atomic.Int64
	stopUDP := make(chan struct{})
	var udp sync.WaitGroup
	udp.Go(func() {
		c := &dns.Client{Net: "udp", Timeout: time.Second}
		for {
			select {
			case <-stopUDP:
				return
			case <-time.After(10 * time.Millisecond):
			}
			udpSent.Add(1)
			if r, _, err := c.Exchange(query(ordersHost, dns.TypeA), addr); err == nil && len(r.Answer) == 1 {
				udpAnswered.Add(1)
			}
		}
	})

	var (
		mu       sync.Mutex
		conns    []net.Conn
		dialErrs int
	)
	jobs := make(chan int)
	var dialers sync.WaitGroup
	for range 50 {
		dialers.Go(func() {
			for i := range jobs {
				src := &net.TCPAddr{IP: net.IPv4(127, 0, 2, byte(1+i/perSource))}
				d := net.Dialer{LocalAddr: src, Timeout: 5 * time.Second}
				c, err := d.Dial("tcp", addr)
				mu.Lock()
				if err != nil {
					dialErrs++
				} else {
					conns = append(conns, c)
				}
				mu.Unlock()
			}
		})
	}
	start := time.Now()
	for i := range attempts {
		jobs <- i
	}
	close(jobs)
	dialers.Wait()
	dialTime := time.Since(start)

	// Refused connections are reset at once (some before Dial returned:
	// dial errors); admitted ones stay open.
	var stillOpen atomic.Int64
	var readers sync.WaitGroup
	readBy := time.Now().Add(2 * time.Second) // far enough for 5,000 readers on a loaded machine
	for _, c := range conns {
		readers.Go(func() {
			_ = c.SetReadDeadline(readBy)
			_, err := c.Read(make([]byte, 1))
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				stillOpen.Add(1)
			}
		})
	}
	readers.Wait()
	open := int(stillOpen.Load())
	reset := len(conns) - open + dialErrs
	// A new TCP client is turned away while the cap is full...
	refusedBefore := metricValue(t, reg, "aagtm_dns_tcp_refused_total", "limit", "max_connections")
	for _, c := range conns {
		_ = c.Close()
	}
	close(stopUDP)
	udp.Wait()

	// ...and served once the connections are gone. Connections still in
	// the kernel's accept queue when the clients closed them are accepted
	// and counted later: wait until every attempt is accounted for (or
	// the deadline), not only until none is open.
	var refusedTotal, refusedSource, closed float64
	deadline := time.Now().Add(10 * time.Second)
	for {
		refusedTotal = metricValue(t, reg, "aagtm_dns_tcp_refused_total", "limit", "max_connections")
		refusedSource = metricValue(t, reg, "aagtm_dns_tcp_refused_total", "limit", "max_connections_per_source")
		closed = 0
		for _, r := range closedLabels {
			closed += metricValue(t, reg, "aagtm_dns_tcp_closed_total", "reason", r)
		}
		done := int(refusedTotal+refusedSource+closed) == attempts && metricValue(t, reg, "aagtm_dns_tcp_connections") == 0
		if done || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	close(stopSampling)
	sampler.Wait()
	t.Logf("%d attempts from %d sources in %v: %d dial errors; server held at most %d (cap %d), at most %d per source (cap %d); refused %v over max_connections, %v over max_connections_per_source; client saw %d open, %d reset; UDP answered %d of %d during the storm",
		attempts, sources, dialTime.Round(time.Millisecond), dialErrs, maxOpen.Load(), caps.MaxConnections, maxPerSource.Load(), caps.MaxConnectionsPerSource,
		refusedTotal, refusedSource, open, reset, udpAnswered.Load(), udpSent.Load())
	if maxOpen.Load() != int64(caps.MaxConnections) {
		t.Errorf("server held at most %d connections, want the cap, %d", maxOpen.Load(), caps.MaxConnections)
	}
	if maxPerSource.Load() != int64(caps.MaxConnectionsPerSource) {
		t.Errorf("server held at most %d connections of one source, want the cap, %d", maxPerSource.Load(), caps.MaxConnectionsPerSource)
	}
	// Sources come one after the other (roughly: 50 dialers run at once),
	// so the first ones fill their per-source cap, then the global cap
	// turns everyone away.
	if refusedSource == 0 || refusedBefore == 0 || refusedSource+refusedBefore != attempts-float64(caps.MaxConnections) {
		t.Errorf("refused %v over max_connections_per_source and %v over max_connections, want both and %d in all",
			refusedSource, refusedBefore, attempts-caps.MaxConnections)
	}
	if open != caps.MaxConnections || reset != attempts-caps.MaxConnections {
		t.Errorf("clients saw %d open and %d reset, want %d and %d", open, reset, caps.MaxConnections, attempts-caps.MaxConnections)
	}
	if got := int(refusedTotal + refusedSource + closed); got != attempts {
		t.Errorf("server accounted for %d connections (refused + closed), clients made %d", got, attempts)
	}
	if r := exchange(t, "tcp", addr, query(cacheHost, dns.TypeA)); len(r.Answer) != 1 {
		t.Errorf("TCP after the storm: %v", r)
	}
	if udpSent.Load() == 0 || udpAnswered.Load() != udpSent.Load() {
		t.Errorf("UDP answered %d of %d during the storm", udpAnswered.Load(), udpSent.Load())
	}
}

// TestTCPTimeouts: a connection that sends no query is closed after the
// read timeout, one that stops sending after the idle timeout, one that
// keeps sending after max_queries replies; each counted by reason.
func TestTCPTimeouts(t *testing.T) {
	reg := prometheus.NewRegistry()
	opts := shippedOptions(t, reg)
	opts.TCP.ReadTimeout = 200 * time.Millisecond
	opts.TCP.IdleTimeout = 300 * time.Millisecond
	opts.TCP.MaxQueries = 3
	_, addr := startServer(t, opts, testConfig(), testSnapshot(1))

	send := func(t *testing.T, c net.Conn, n int) {
		for i := range n {
			q := query(cacheHost, dns.TypeA)
			q.Id = uint16(i + 1)
			b, _ := q.Pack()
			if _, err := c.Write(append([]byte{byte(len(b) >> 8), byte(len(b))}, b...)); err != nil {
				t.Fatal(err)
			}
		}
	}
	// replies reads replies until the server closes the connection.
	replies := func(t *testing.T, c net.Conn) int {
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		n := 0
		for {
			var l [2]byte
			if _, err := io.ReadFull(c, l[:]); err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					t.Fatal("the server did not close the connection")
				}
				return n
			}
			if _, err := io.ReadFull(c, make([]byte, int(l[0])<<8|int(l[1]))); err != nil {
				return n
			}
			n++
		}
	}
	tests := []struct {
		name    string
		queries int
		replies int
		reason  string
	}{
		{"no query: read timeout", 0, 0, "read_timeout"},
		{"one query, then silence: idle timeout", 1, 1, "idle_timeout"},
		{"max_queries queries: closed after the last reply", 3, 3, "max_queries"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := metricValue(t, reg, "aagtm_dns_tcp_closed_total", "reason", tt.reason)
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			send(t, c, tt.queries)
			if got := replies(t, c); got != tt.replies {
				t.Errorf("%d replies before the server closed, want %d", got, tt.replies)
			}
			deadline := time.Now().Add(2 * time.Second)
			for metricValue(t, reg, "aagtm_dns_tcp_closed_total", "reason", tt.reason) == before && time.Now().Before(deadline) {
				time.Sleep(5 * time.Millisecond)
			}
			if after := metricValue(t, reg, "aagtm_dns_tcp_closed_total", "reason", tt.reason); after != before+1 {
				t.Errorf("aagtm_dns_tcp_closed_total{reason=%s} went from %v to %v, want +1", tt.reason, before, after)
			}
		})
	}
}

// TestTCPSource: the per-source cap counts an IPv4 address, or an IPv6 /64.
func TestTCPSource(t *testing.T) {
	tests := []struct{ addr, want string }{
		{"192.0.2.1", "192.0.2.1"},
		{"::ffff:192.0.2.1", "192.0.2.1"},
		{"2001:db8:1:2:3:4:5:6", "2001:db8:1:2::"},
		{"2001:db8:1:2:ffff::1", "2001:db8:1:2::"},
	}
	for _, tt := range tests {
		got := sourceOf(&net.TCPAddr{IP: net.ParseIP(tt.addr), Port: 53})
		if got.String() != tt.want {
			t.Errorf("%s: source %s, want %s", tt.addr, got, tt.want)
		}
	}
}
