package e2e

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// rrlCounts classifies the replies to a burst of UDP queries.
type rrlCounts struct {
	ok   int // a full answer
	tc   int // an empty reply with TC set: the slip
	none int // no reply: dropped
}

// udpBurst sends n queries for name/qtype from a socket bound to src
// (any 127/8 address is local on Linux) without waiting, then collects the
// replies until 700ms after the last send.
type udpBurst struct {
	conn *net.UDPConn
	sent map[uint16]bool
	got  rrlCounts
	err  error
}

func sendBurst(t *testing.T, src, server, name string, qtype uint16, n int) *udpBurst {
	t.Helper()
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP(src)})
	if err != nil {
		t.Fatalf("bind %s: %v", src, err)
	}
	t.Cleanup(func() { conn.Close() })
	to, err := net.ResolveUDPAddr("udp", server)
	if err != nil {
		t.Fatal(err)
	}
	b := &udpBurst{conn: conn, sent: map[uint16]bool{}}
	for i := 0; i < n; i++ {
		m := new(dns.Msg)
		m.SetQuestion(dns.Fqdn(name), qtype)
		m.Id = uint16(i + 1) // distinct IDs: random ones collide now and then
		b.sent[m.Id] = true
		wire, err := m.Pack()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := conn.WriteTo(wire, to); err != nil {
			t.Fatalf("send from %s: %v", src, err)
		}
	}
	return b
}

// collect reads replies until deadline; every query without one counts
// as dropped.
func (b *udpBurst) collect(deadline time.Time) {
	_ = b.conn.SetReadDeadline(deadline)
	buf := make([]byte, 4096)
	for {
		n, _, err := b.conn.ReadFrom(buf)
		if err != nil {
			break
		}
		r := new(dns.Msg)
		if err := r.Unpack(buf[:n]); err != nil || !b.sent[r.Id] {
			b.err = fmt.Errorf("unexpected reply (%v): %v", err, r)
			continue
		}
		delete(b.sent, r.Id)
		switch {
		case r.Truncated && len(r.Answer) == 0 && !r.Authoritative:
			b.got.tc++
		case r.Rcode == dns.RcodeSuccess && len(r.Answer) > 0 && !r.Truncated:
			b.got.ok++
		default:
			b.err = fmt.Errorf("reply neither an answer nor a slip: %v", r)
		}
	}
	b.got.none = len(b.sent)
}

// TestResponseRateLimit checks response rate limiting end to end with
// responses_per_second 5 and slip 2 (dnsserver/README.md): a token bucket
// per (source /24, query name) with a burst of 5; over it, every 2nd reply
// is an empty TC reply and the others are dropped. A burst from 127.0.0.1
// gets 5 answers, then half slips and half drops; 127.0.0.2 shares that
// /24's bucket; 127.0.1.1, another /24, and another name from 127.0.0.1
// are answered in full; TCP is never limited; the bucket refills.
func TestResponseRateLimit(t *testing.T) {
	set := defaultOpSettings()
	set.nodes, set.agents = 1, false
	set.dnsSection = "  rate_limit: {responses_per_second: 5, slip: 2}\n"
	e := opDeploy(t, set) // waits over TCP: no UDP token spent
	server := e.dns[0]

	first := sendBurst(t, "127.0.0.1", server, "cache.gtm.optest", dns.TypeA, 40)
	time.Sleep(50 * time.Millisecond) // the first burst is handled: the bucket is empty
	sameNet := sendBurst(t, "127.0.0.2", server, "cache.gtm.optest", dns.TypeA, 10)
	otherNet := sendBurst(t, "127.0.1.1", server, "cache.gtm.optest", dns.TypeA, 5)
	otherName := sendBurst(t, "127.0.0.1", server, "gtm.optest", dns.TypeSOA, 3)
	deadline := time.Now().Add(700 * time.Millisecond)
	var wg sync.WaitGroup
	for _, b := range []*udpBurst{first, sameNet, otherNet, otherName} {
		wg.Add(1)
		go func(b *udpBurst) { defer wg.Done(); b.collect(deadline) }(b)
	}
	wg.Wait()
	for _, b := range []*udpBurst{first, sameNet, otherNet, otherName} {
		if b.err != nil {
			t.Error(b.err)
		}
	}
	t.Logf("127.0.0.1 x40: %+v; 127.0.0.2 x10: %+v; 127.0.1.1 x5: %+v; 127.0.0.1 SOA x3: %+v", first.got, sameNet.got, otherNet.got, otherName.got)

	// 50 replies share one bucket: 5 pass, then limited replies number
	// 1..45: the even ones slip (22), the odd ones drop (23). Allow one
	// token of refill.
	if ok := first.got.ok + sameNet.got.ok; ok < 5 || ok > 6 {
		t.Errorf("127.0.0.1 and 127.0.0.2 got %d answers together, want the burst of 5 (6 with a refilled token)", ok)
	}
	if first.got.ok < 5 || sameNet.got.ok > 1 {
		t.Errorf("127.0.0.2 (same /24 as the flood) got %d answers after 127.0.0.1's %d, want 0 (at most 1 refilled): it shares the bucket",
			sameNet.got.ok, first.got.ok)
	}
	limited := 50 - first.got.ok - sameNet.got.ok
	tc, drop := first.got.tc+sameNet.got.tc, first.got.none+sameNet.got.none
	if tc != limited/2 || drop != limited-limited/2 {
		t.Errorf("limited replies: %d slipped, %d dropped; want every 2nd of %d slipped (%d) and the rest dropped (%d)",
			tc, drop, limited, limited/2, limited-limited/2)
	}
	if otherNet.got.ok != 5 {
		t.Errorf("127.0.1.1 (another /24) got %+v, want all 5 answered", otherNet.got)
	}
	if otherName.got.ok != 3 {
		t.Errorf("another name from 127.0.0.1 got %+v, want all 3 answered (one bucket per name)", otherName.got)
	}

	// TCP is never limited.
	if r, err := queryTCP(server, "cache.gtm.optest", dns.TypeA); err != nil || r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 {
		t.Errorf("TCP query from the limited client: %v %v, want an answer", r, err)
	}

	// The metrics count exactly what the clients saw.
	m := scrape(t, e.admin[0])
	if got := m[`aagtm_dns_rate_limited_total{action="slip"}`]; got != float64(tc) {
		t.Errorf("aagtm_dns_rate_limited_total{action=slip} = %v, want %d", got, tc)
	}
	if got := m[`aagtm_dns_rate_limited_total{action="drop"}`]; got != float64(drop) {
		t.Errorf("aagtm_dns_rate_limited_total{action=drop} = %v, want %d", got, drop)
	}

	// A second later the bucket is full again.
	time.Sleep(1100 * time.Millisecond)
	again := sendBurst(t, "127.0.0.1", server, "cache.gtm.optest", dns.TypeA, 5)
	again.collect(time.Now().Add(700 * time.Millisecond))
	if again.got.ok != 5 {
		t.Errorf("after 1.1s of quiet 127.0.0.1 got %+v, want 5 answers (refilled)", again.got)
	}
}

// scrape returns the sample values of a node's /metrics by series text.
func scrape(t *testing.T, adminAddr string) map[string]float64 {
	t.Helper()
	resp, err := http.Get("http://" + adminAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			out[line[:i]] = v
		}
	}
	return out
}
