package ingest

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/aagtm/aagtm/internal/promreg"
)

// metrics are the ingest's Prometheus metrics (see README.md). A nil *metrics
// records nothing.
type metrics struct {
	reports      *prometheus.CounterVec
	refused      *prometheus.CounterVec
	streams      prometheus.Gauge
	unknownMembs prometheus.Counter
}

// Report results, the result label of aagtm_ingest_reports_total.
const (
	resultAccepted      = "accepted"
	resultRejected      = "rejected"      // unknown agent or wrong region
	resultRateLimited   = "rate_limited"  // over the per-agent rate
	resultStaleSeq      = "stale_seq"     // seq did not advance within a boot
	resultImpersonation = "impersonation" // names another agent than the stream's; ends the stream
)

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		reports: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "aagtm_ingest_reports_total",
			Help: "Reports received, per agent (\"unknown\" for agents not in the config) and result (accepted, rejected, rate_limited, stale_seq, impersonation).",
		}, []string{"agent", "result"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "aagtm_ingest_refused_streams_total",
			Help: "Report streams refused or ended after the TLS handshake, per gRPC code (Unauthenticated, PermissionDenied, ResourceExhausted) and reason (auth, impersonation, agent_streams, streams, revoked).",
		}, []string{"code", "reason"}),
		streams: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "aagtm_ingest_streams",
			Help: "Report streams currently open.",
		}),
		unknownMembs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "aagtm_ingest_unknown_members_total",
			Help: "Member entries dropped because this node's config does not know the member.",
		}),
	}
	m.reports = promreg.Register(reg, m.reports)
	m.refused = promreg.Register(reg, m.refused)
	m.streams = promreg.Register(reg, m.streams)
	m.unknownMembs = promreg.Register(reg, m.unknownMembs)
	return m
}

func (m *metrics) report(agent, result string) {
	if m != nil {
		m.reports.WithLabelValues(agent, result).Inc()
	}
}

func (m *metrics) refusedStream(code, reason string) {
	if m != nil {
		m.refused.WithLabelValues(code, reason).Inc()
	}
}

func (m *metrics) streamOpen(delta float64) {
	if m != nil {
		m.streams.Add(delta)
	}
}

func (m *metrics) unknownMembers(n int) {
	if m != nil && n > 0 {
		m.unknownMembs.Add(float64(n))
	}
}
