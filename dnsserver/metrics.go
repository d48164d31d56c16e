package dnsserver

import (
	"errors"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
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
	dns.RcodeBadVers,
}

const (
	typeOther  = len(metricTypes)
	rcodeOther = len(metricRcodes)
	rcodeNone  = rcodeOther + 1
)

// metrics are the server's Prometheus collectors, created once; the query
// path only increments pre-resolved counters.
type metrics struct {
	queries   [typeOther + 1][rcodeNone + 1]prometheus.Counter
	limited   [3]prometheus.Counter // by verdict: unused, drop, slip
	malformed prometheus.Counter
	duration  prometheus.Histogram
}

// newMetrics creates and registers the collectors; nil when reg is nil.
// A collector already registered (a second Server on one registry) is
// shared.
func newMetrics(reg prometheus.Registerer, log hclog.Logger) *metrics {
	if reg == nil {
		return nil
	}
	queries := register(reg, log, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "aagtm_dns_queries_total",
		Help: "DNS queries answered, by query type (common types, else other) and response code (none: dropped by rate limiting).",
	}, []string{"type", "rcode"}))
	limited := register(reg, log, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "aagtm_dns_rate_limited_total",
		Help: "UDP responses over the response rate limit, by action: drop (nothing sent) or slip (empty truncated reply sent).",
	}, []string{"action"}))
	malformed := register(reg, log, prometheus.NewCounter(prometheus.CounterOpts{
		Name: "aagtm_dns_malformed_total",
		Help: "DNS requests that could not be parsed: answered FORMERR when the header parsed, dropped otherwise.",
	}))
	duration := register(reg, log, prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "aagtm_dns_request_duration_seconds",
		Help:    "Time to answer a DNS query, from the parsed request to the reply written.",
		Buckets: []float64{5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 5e-2},
	}))
	m := &metrics{malformed: malformed, duration: duration}
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

// register registers c, or returns the collector already registered in
// its place. Any other error is logged and c is used unregistered.
func register[C prometheus.Collector](reg prometheus.Registerer, log hclog.Logger, c C) C {
	err := reg.Register(c)
	if err == nil {
		return c
	}
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing
		}
	}
	log.Error("metric not registered", "error", err)
	return c
}

// observe records one handled query.
func (m *metrics) observe(req, resp *dns.Msg, v verdict, start time.Time) {
	if m == nil {
		return
	}
	ti := typeOther
	if len(req.Question) == 1 {
		ti = typeIndex(req.Question[0].Qtype)
	}
	ri := rcodeNone
	if resp != nil {
		ri = rcodeIndex(resp.Rcode)
	}
	m.queries[ti][ri].Inc()
	if v != pass {
		m.limited[v].Inc()
	}
	m.duration.Observe(time.Since(start).Seconds())
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
