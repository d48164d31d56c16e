package dnsserver

import (
	"math"
	"sort"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/aagtm/aagtm/internal/promreg"
)

// The type label values: common types by name, the rest "other", so the
// label set stays small whatever clients send.
var metricTypes = [...]uint16{
	dns.TypeA, dns.TypeAAAA, dns.TypeCNAME, dns.TypeSOA, dns.TypeNS,
	dns.TypeTXT, dns.TypeANY, dns.TypeMX, dns.TypePTR, dns.TypeSRV,
	dns.TypeHTTPS, dns.TypeSVCB,
}

// The rcode label values; "none" is a query that got no reply (dropped by
// the rate limiter).
var metricRcodes = [...]int{
	dns.RcodeSuccess, dns.RcodeFormatError, dns.RcodeServerFailure,
	dns.RcodeNameError, dns.RcodeNotImplemented, dns.RcodeRefused,
	dns.RcodeBadVers, dns.RcodeBadCookie,
}

const (
	typeOther  = len(metricTypes)
	rcodeOther = len(metricRcodes)
	rcodeNone  = rcodeOther + 1
)

// metrics are the server's Prometheus collectors, created once; the query
// path only increments pre-resolved counters.
type metrics struct {
	queries      [typeOther + 1][rcodeNone + 1]prometheus.Counter
	limited      [3]prometheus.Counter // by verdict: unused, drop, slip
	cookies      [cookieGood + 1]prometheus.Counter
	capped       prometheus.Counter
	malformed    prometheus.Counter
	duration     *durationHistogram
	tcpConns     prometheus.Gauge
	tcpRefusedBy [refusedReasons]prometheus.Counter
	tcpClosedBy  [closedReasons]prometheus.Counter
}

// newMetrics creates and registers the collectors; nil when reg is nil.
// A collector already registered (a second Server on one registry) is
// shared.
func newMetrics(reg prometheus.Registerer) *metrics {
	if reg == nil {
		return nil
	}
	queries := promreg.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "aagtm_dns_queries_total",
		Help: "DNS queries answered, by query type (common types, else other) and response code (none: dropped by rate limiting).",
	}, []string{"type", "rcode"}))
	limited := promreg.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "aagtm_dns_rate_limited_total",
		Help: "UDP responses over the response rate limit, by action: drop (nothing sent) or slip (empty truncated reply sent).",
	}, []string{"action"}))
	malformed := promreg.Register(reg, prometheus.NewCounter(prometheus.CounterOpts{
		Name: "aagtm_dns_malformed_total",
		Help: "DNS requests that could not be parsed: answered FORMERR when the header parsed, dropped otherwise.",
	}))
	duration := promreg.Register(reg, newDurationHistogram(
		"aagtm_dns_request_duration_seconds",
		"Time to answer a DNS query: over UDP from its batch of queries read to the batch's replies written, over TCP from the parsed request to the reply written.",
		[]float64{5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 5e-2},
	))
	cookies := promreg.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "aagtm_dns_cookies_total",
		Help: "DNS queries with a COOKIE option, by state: client_only (first contact), bad (a server cookie not valid here: BADCOOKIE over UDP) or good (a valid server cookie: no rate limit, no amplification cap).",
	}, []string{"state"}))
	capped := promreg.Register(reg, prometheus.NewCounter(prometheus.CounterOpts{
		Name: "aagtm_dns_amplification_capped_total",
		Help: "UDP replies without a valid server cookie that were larger than dns.udp_amplification_limit times the query, sent as an empty truncated reply instead.",
	}))
	tcpConns := promreg.Register(reg, prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "aagtm_dns_tcp_connections",
		Help: "DNS TCP connections open now (at most dns.tcp.max_connections).",
	}))
	tcpRefused := promreg.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "aagtm_dns_tcp_refused_total",
		Help: "DNS TCP connections reset on accept, by the cap they would exceed: max_connections or max_connections_per_source.",
	}, []string{"limit"}))
	tcpClosed := promreg.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "aagtm_dns_tcp_closed_total",
		Help: "DNS TCP connections closed, by reason: read_timeout (no first query in dns.tcp.read_timeout), idle_timeout (no next query in dns.tcp.idle_timeout), max_queries (dns.tcp.max_queries answered), peer (the client closed or failed), shutdown.",
	}, []string{"reason"}))
	m := &metrics{malformed: malformed, duration: duration, capped: capped, tcpConns: tcpConns}
	m.cookies[cookieClientOnly] = cookies.WithLabelValues("client_only")
	m.cookies[cookieBad] = cookies.WithLabelValues("bad")
	m.cookies[cookieGood] = cookies.WithLabelValues("good")
	for i, l := range refusedLabels {
		m.tcpRefusedBy[i] = tcpRefused.WithLabelValues(l)
	}
	for i, l := range closedLabels {
		m.tcpClosedBy[i] = tcpClosed.WithLabelValues(l)
	}
	for i := range m.queries {
		t := "other"
		if i < typeOther {
			t = dns.TypeToString[metricTypes[i]]
		}
		for j := range m.queries[i] {
			rc := "other"
			switch {
			case j < rcodeOther:
				rc = dns.RcodeToString[metricRcodes[j]]
			case j == rcodeNone:
				rc = "none"
			}
			m.queries[i][j] = queries.WithLabelValues(t, rc)
		}
	}
	m.limited[drop] = limited.WithLabelValues("drop")
	m.limited[slip] = limited.WithLabelValues("slip")
	return m
}

// tally counts handled queries before they are added to the metrics:
// a UDP loop keeps its own and adds it once per batch, so the query path
// writes no shared counter.
type tally struct {
	queries [typeOther + 1][rcodeNone + 1]uint64
	limited [3]uint64
	cookies [cookieGood + 1]uint64
	capped  uint64
	n       uint64
}

// add counts one query of type index ti answered with rcode index ri
// (rcodeNone: not answered).
func (t *tally) add(ti, ri int, out outcome, v verdict) {
	t.n++
	t.queries[ti][ri]++
	t.cookies[out.cookie]++ // cookieNone counts nothing: never flushed
	if out.capped {
		t.capped++
	}
	t.limited[v]++ // pass counts nothing: never flushed
}

// addMsg counts the query req answered with resp (nil: not answered).
func (t *tally) addMsg(req, resp *dns.Msg, out outcome, v verdict) {
	ti := typeOther
	if len(req.Question) == 1 {
		ti = typeIndex(req.Question[0].Qtype)
	}
	ri := rcodeNone
	if resp != nil {
		ri = rcodeIndex(resp.Rcode)
	}
	t.add(ti, ri, out, v)
}

// flush adds t to the metrics, each query taking d, and zeroes t.
func (m *metrics) flush(t *tally, d time.Duration) {
	if m == nil || t.n == 0 {
		*t = tally{}
		return
	}
	for ti := range t.queries {
		for ri, n := range t.queries[ti] {
			if n > 0 {
				m.queries[ti][ri].Add(float64(n))
			}
		}
	}
	for c := cookieClientOnly; c <= cookieGood; c++ {
		if n := t.cookies[c]; n > 0 {
			m.cookies[c].Add(float64(n))
		}
	}
	for _, v := range [...]verdict{drop, slip} {
		if n := t.limited[v]; n > 0 {
			m.limited[v].Add(float64(n))
		}
	}
	if t.capped > 0 {
		m.capped.Add(float64(t.capped))
	}
	m.duration.observe(d.Seconds(), t.n)
	*t = tally{}
}

// observe records one query handled outside a UDP loop (over TCP).
func (m *metrics) observe(req, resp *dns.Msg, out outcome, v verdict, start time.Time) {
	if m == nil {
		return
	}
	var t tally
	t.addMsg(req, resp, out, v)
	m.flush(&t, time.Since(start))
}

// durationHistogram is a Prometheus histogram that takes many
// observations of one value at once (a batch's queries), with one atomic
// add per bucket instead of one per query.
type durationHistogram struct {
	desc   *prometheus.Desc
	upper  []float64       // bucket upper bounds, ascending
	counts []atomic.Uint64 // per bucket, not cumulative; the last is +Inf
	sum    atomic.Uint64   // float64 bits
}

func newDurationHistogram(name, help string, upper []float64) *durationHistogram {
	return &durationHistogram{
		desc:   prometheus.NewDesc(name, help, nil, nil),
		upper:  upper,
		counts: make([]atomic.Uint64, len(upper)+1),
	}
}

// observe records n observations of seconds.
func (h *durationHistogram) observe(seconds float64, n uint64) {
	h.counts[sort.SearchFloat64s(h.upper, seconds)].Add(n)
	for {
		old := h.sum.Load()
		if h.sum.CompareAndSwap(old, math.Float64bits(math.Float64frombits(old)+seconds*float64(n))) {
			return
		}
	}
}

// Describe implements prometheus.Collector.
func (h *durationHistogram) Describe(ch chan<- *prometheus.Desc) { ch <- h.desc }

// Collect implements prometheus.Collector.
func (h *durationHistogram) Collect(ch chan<- prometheus.Metric) {
	buckets := make(map[float64]uint64, len(h.upper))
	var count uint64
	for i, u := range h.upper {
		count += h.counts[i].Load()
		buckets[u] = count
	}
	count += h.counts[len(h.upper)].Load()
	ch <- prometheus.MustNewConstHistogram(h.desc, count, math.Float64frombits(h.sum.Load()), buckets)
}

// tcpOpen adds delta to the open TCP connections.
func (m *metrics) tcpOpen(delta float64) {
	if m != nil {
		m.tcpConns.Add(delta)
	}
}

// tcpRefused counts a connection reset for exceeding a cap.
func (m *metrics) tcpRefused(reason int) {
	if m != nil {
		m.tcpRefusedBy[reason].Inc()
	}
}

// tcpClosed counts a closed connection by reason.
func (m *metrics) tcpClosed(reason int) {
	if m != nil {
		m.tcpClosedBy[reason].Inc()
	}
}

// invalid counts a request miekg/dns could not parse.
func (m *metrics) invalid() {
	if m != nil {
		m.malformed.Inc()
	}
}

func typeIndex(t uint16) int {
	for i, mt := range metricTypes {
		if mt == t {
			return i
		}
	}
	return typeOther
}

func rcodeIndex(rc int) int {
	for i, mr := range metricRcodes {
		if mr == rc {
			return i
		}
	}
	return rcodeOther
}
