package sentinel

import (
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/aagtm/aagtm/internal/promreg"
)

// metricCommands are the command label values; anything else counts as
// "unknown", so the label set stays small whatever clients send.
var metricCommands = map[string]bool{
	"auth": true, "client": true, "hello": true, "info": true, "ping": true,
	"psubscribe": true, "punsubscribe": true, "quit": true, "role": true,
	"sentinel": true, "subscribe": true, "unsubscribe": true,
}

// metrics are the server's Prometheus collectors; nil fields when the
// server has no registerer.
type metrics struct {
	connections *prometheus.GaugeVec
	accepted    prometheus.Counter
	commands    *prometheus.CounterVec
	published   *prometheus.CounterVec
	protoErrors prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		connections: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "aagtm_sentinel_connections",
			Help: "Open Sentinel-protocol client connections, by state: subscribed (in pub/sub mode) or command.",
		}, []string{"state"}),
		accepted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "aagtm_sentinel_connections_accepted_total",
			Help: "Sentinel-protocol client connections accepted.",
		}),
		commands: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "aagtm_sentinel_commands_total",
			Help: "Sentinel-protocol commands received, by command name (lower case; unknown for any other).",
		}, []string{"command"}),
		published: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "aagtm_sentinel_messages_published_total",
			Help: "Pub/sub messages delivered to Sentinel subscribers, by channel (+switch-master, +sdown, -sdown).",
		}, []string{"channel"}),
		protoErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "aagtm_sentinel_protocol_errors_total",
			Help: "Sentinel-protocol connections closed for malformed or oversized input.",
		}),
	}
	if reg == nil {
		return m
	}
	m.connections = promreg.Register(reg, m.connections)
	m.accepted = promreg.Register(reg, m.accepted)
	m.commands = promreg.Register(reg, m.commands)
	m.published = promreg.Register(reg, m.published)
	m.protoErrors = promreg.Register(reg, m.protoErrors)
	return m
}

// command counts one command.
func (m *metrics) command(name string) {
	name = strings.ToLower(name)
	if !metricCommands[name] {
		name = "unknown"
	}
	m.commands.WithLabelValues(name).Inc()
}
