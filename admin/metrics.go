package admin

import (
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/aagtm/aagtm/internal/promreg"
	"github.com/aagtm/aagtm/policy"
)

// Gauges are read from the latest snapshot when scraped, so a member that a
// reload removed disappears at once and a scrape never sees half an update.
var (
	descMemberUp = prometheus.NewDesc("aagtm_policy_member_up",
		"1 when the member's quorum verdict is up, 0 when down.",
		[]string{"database", "member"}, nil)
	descMemberLag = prometheus.NewDesc("aagtm_policy_member_lag_seconds",
		"Last measured replication lag of the member behind each source region (heartbeat method).",
		[]string{"member", "source_region"}, nil)
	descMemberLagging = prometheus.NewDesc("aagtm_policy_member_lagging",
		"1 when the member's replication lag exceeds its database's lag_tolerance.",
		[]string{"member"}, nil)
	descStaleMembers = prometheus.NewDesc("aagtm_policy_stale_members",
		"Members of which the agent has sent no pass or failure for probes.stale_after (not_measured rounds do not count; its votes on them are not counted).",
		[]string{"agent"}, nil)
	descFailStatic = prometheus.NewDesc("aagtm_policy_fail_static_members",
		"Members whose verdict no vantage can decide now (none fresh and voting, or fewer than a numeric quorum): their last verdict is kept.",
		nil, nil)
	descDrained = prometheus.NewDesc("aagtm_policy_drained",
		"1 when an operator drained the member.",
		[]string{"member"}, nil)
	descSerial = prometheus.NewDesc("aagtm_policy_snapshot_serial",
		"Serial of the current answer snapshot; it increases whenever answers change.",
		nil, nil)
	descGenerated = prometheus.NewDesc("aagtm_policy_snapshot_timestamp_seconds",
		"Unix time the current snapshot was evaluated; it stops advancing when the engine stalls.",
		nil, nil)
)

// PolicyMetrics exports the policy engine's decisions as Prometheus
// metrics. The node calls Observe with every new snapshot; gauges are
// computed from the latest one at scrape time, counters and histograms
// count the snapshots' events and new probe RTTs. Safe for concurrent use.
//
// Probe RTTs and staleness are per agent, not per (member, agent): with
// 10,000 members and three agents that would be 30,000 histograms (over
// 400,000 series) and 30,000 gauges, most of a node's memory and of every
// scrape. Each member's last RTT and freshness per vantage are in the
// status API (rtt_seconds, fresh).
type PolicyMetrics struct {
	snap atomic.Pointer[policy.Snapshot]

	answerChanges *prometheus.CounterVec
	failovers     *prometheus.CounterVec
	detection     prometheus.Histogram
	rpo           prometheus.Histogram
	probeRTT      *prometheus.HistogramVec

	mu   sync.Mutex // guards last, rttSeq, rttFor and databases
	last *policy.Snapshot
	// rttSeq is, per (member, agent), the last seq whose RTT was observed.
	rttSeq map[[2]string]uint64
	// rttFor caches each agent's histogram.
	rttFor map[string]prometheus.Observer
	// databases are those whose failover counters exist (at 0 until the
	// first event): a series born at 1 has no increase() to alert on.
	databases map[string]bool
}

// failoverKinds are the event kinds aagtm_policy_failovers_total counts.
var failoverKinds = []policy.EventKind{policy.Failover, policy.Failback, policy.AllDown, policy.AllDownEnd}

// NewPolicyMetrics creates the policy metrics and registers them with reg.
// When reg already holds policy metrics, those are returned instead (one
// node per registry is the intended use). Any other registration conflict
// panics, like MustRegister: it is a programming error.
func NewPolicyMetrics(reg prometheus.Registerer) *PolicyMetrics {
	m := &PolicyMetrics{
		answerChanges: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "aagtm_policy_answer_changes_total",
			Help: "Changes of the first answered member, per database and client region (failovers, failbacks and operator changes).",
		}, []string{"database", "region"}),
		failovers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "aagtm_policy_failovers_total",
			Help: "Failovers and failbacks, per database and kind (failover, failback, all_down, all_down_end); one per affected client region.",
		}, []string{"database", "kind"}),
		detection: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "aagtm_policy_failover_detection_seconds",
			Help:    "Time from the first failed probe that led to a member's down verdict until the failover was decided.",
			Buckets: []float64{0.1, 0.25, 0.5, 1, 1.5, 2, 3, 5, 10, 30, 60},
		}),
		rpo: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "aagtm_policy_rpo_estimate_seconds",
			Help:    "Estimated data-loss window of each failover: the last replication lag seen of the new member behind the old member's region.",
			Buckets: []float64{0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30},
		}),
		probeRTT: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "aagtm_probe_rtt_seconds",
			Help:    "Round-trip time of the fastest check of each member, per probe agent (over all its members), as reported to this node.",
			Buckets: []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1},
		}, []string{"agent"}),
		rttSeq:    map[[2]string]uint64{},
		rttFor:    map[string]prometheus.Observer{},
		databases: map[string]bool{},
	}
	return promreg.Register(reg, m)
}

// Observe records a new snapshot: gauges follow it, and its events and the
// RTTs of observations newer than the last snapshot's are counted. Observing
// the same snapshot twice counts it once; nil is ignored.
func (m *PolicyMetrics) Observe(snap *policy.Snapshot) {
	if snap == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if snap == m.last {
		return
	}
	m.last = snap
	m.snap.Store(snap)
	for _, ms := range snap.Members {
		if ms != nil && !m.databases[ms.Database] {
			m.databases[ms.Database] = true
			for _, k := range failoverKinds {
				m.failovers.WithLabelValues(ms.Database, string(k))
			}
		}
	}
	for _, e := range snap.Events {
		m.answerChanges.WithLabelValues(e.Database, e.Region).Inc()
		switch {
		case e.Kind.IsFailover():
			m.failovers.WithLabelValues(e.Database, string(e.Kind)).Inc()
			if e.Detection > 0 {
				m.detection.Observe(e.Detection.Seconds())
			}
			if e.RPOKnown {
				m.rpo.Observe(e.RPOEstimate.Seconds())
			}
		case e.Kind == policy.Failback || e.Kind == policy.AllDownEnd:
			m.failovers.WithLabelValues(e.Database, string(e.Kind)).Inc()
		}
	}
	// rttSeq is updated in place (rebuilding it would allocate a map of
	// every vantage per snapshot); entries of members or agents gone from
	// the snapshot are dropped when there are any.
	vantages := 0
	for name, ms := range snap.Members {
		if ms == nil {
			continue
		}
		for _, v := range ms.Vantages {
			vantages++
			key := [2]string{name, v.Agent}
			last, had := m.rttSeq[key]
			if had && v.LastSeq == last {
				continue
			}
			m.rttSeq[key] = v.LastSeq
			if v.RTT > 0 && v.LastSeq > 0 && (!had || v.LastSeq > last) {
				m.agentRTT(v.Agent).Observe(v.RTT.Seconds())
			}
		}
	}
	if len(m.rttSeq) > vantages {
		for key := range m.rttSeq {
			if !hasVantage(snap, key[0], key[1]) {
				delete(m.rttSeq, key)
			}
		}
	}
}

// agentRTT returns the RTT histogram of agent. The caller holds mu.
func (m *PolicyMetrics) agentRTT(agent string) prometheus.Observer {
	o, ok := m.rttFor[agent]
	if !ok {
		o = m.probeRTT.WithLabelValues(agent)
		m.rttFor[agent] = o
	}
	return o
}

// hasVantage reports whether snap has a vantage of agent on member.
func hasVantage(snap *policy.Snapshot, member, agent string) bool {
	ms := snap.Members[member]
	if ms == nil {
		return false
	}
	for _, v := range ms.Vantages {
		if v.Agent == agent {
			return true
		}
	}
	return false
}

// Describe implements prometheus.Collector.
func (m *PolicyMetrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descMemberUp, descMemberLag, descMemberLagging, descStaleMembers, descFailStatic, descDrained, descSerial, descGenerated} {
		ch <- d
	}
	m.answerChanges.Describe(ch)
	m.failovers.Describe(ch)
	m.detection.Describe(ch)
	m.rpo.Describe(ch)
	m.probeRTT.Describe(ch)
}

// Collect implements prometheus.Collector.
func (m *PolicyMetrics) Collect(ch chan<- prometheus.Metric) {
	m.answerChanges.Collect(ch)
	m.failovers.Collect(ch)
	m.detection.Collect(ch)
	m.rpo.Collect(ch)
	m.probeRTT.Collect(ch)
	snap := m.snap.Load()
	if snap == nil {
		return
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	gauge(descSerial, float64(snap.Serial))
	if !snap.Generated.IsZero() {
		gauge(descGenerated, float64(snap.Generated.UnixNano())/1e9)
	}
	failStatic := 0
	stale := map[string]int{}
	for name, ms := range snap.Members {
		if ms == nil {
			continue
		}
		if ms.FailStatic {
			failStatic++
		}
		gauge(descMemberUp, boolFloat(ms.Verdict != policy.Down), ms.Database, name)
		gauge(descMemberLagging, boolFloat(ms.Lagging), name)
		gauge(descDrained, boolFloat(ms.Drained), name)
		for src, lag := range ms.LagBySource {
			gauge(descMemberLag, lag.Seconds(), name, src)
		}
		for _, v := range ms.Vantages {
			if !v.Fresh {
				stale[v.Agent]++
			} else if _, ok := stale[v.Agent]; !ok {
				stale[v.Agent] = 0
			}
		}
	}
	for agent, n := range stale {
		gauge(descStaleMembers, float64(n), agent)
	}
	gauge(descFailStatic, float64(failStatic))
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// NewStateMetrics registers the node's state-file metrics with reg and
// returns the save-failure counter the node increments; corrupt reports
// whether an unusable state file found at start is still unacknowledged.
func NewStateMetrics(reg prometheus.Registerer, corrupt func() bool) prometheus.Counter {
	saveFailures := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "aagtm_node_state_save_failures_total",
		Help: "Failed writes of the node's state file (drains and forces refused meanwhile; see last_save_error in /v1/status).",
	})
	corruptGauge := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "aagtm_node_state_corrupt",
		Help: "1 while an unusable state file found at start is not acknowledged (aagtm ack-state).",
	}, func() float64 {
		if corrupt() {
			return 1
		}
		return 0
	})
	reg.MustRegister(saveFailures, corruptGauge)
	return saveFailures
}

// NewReadyMetric registers aagtm_node_ready with reg: 1 exactly when ready
// reports true, which the admin server makes the answer of /readyz.
func NewReadyMetric(reg prometheus.Registerer, ready func() bool) {
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "aagtm_node_ready",
		Help: "1 while the node's /readyz answers 200 (every listener serving, not shutting down), else 0.",
	}, func() float64 { return boolFloat(ready()) }))
}
