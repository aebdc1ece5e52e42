package turn

import "github.com/prometheus/client_golang/prometheus"

// metrics are the TURN counters on /metrics. "transport" is how the client
// reached the server (udp, tcp, tls); "direction" is to_peer or to_client.
type metrics struct {
	allocations    *prometheus.GaugeVec
	relayedBytes   *prometheus.CounterVec
	relayedPackets *prometheus.CounterVec
	authFailures   *prometheus.CounterVec
	deniedPeers    *prometheus.CounterVec
	throttled      *prometheus.CounterVec
	malformed      *prometheus.CounterVec
	quotaRejected  *prometheus.CounterVec
	dropped        *prometheus.CounterVec
	connections    *prometheus.GaugeVec
	connRejected   *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		allocations: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "quartet_turn_allocations",
			Help: "Active TURN allocations."}, []string{"transport"}),
		relayedBytes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "quartet_turn_relayed_bytes_total",
			Help: "Payload bytes relayed between clients and peers."}, []string{"transport", "direction"}),
		relayedPackets: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "quartet_turn_relayed_packets_total",
			Help: "Packets (UDP) or reads (TCP) relayed between clients and peers."}, []string{"transport", "direction"}),
		authFailures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "quartet_turn_auth_failures_total",
			Help: "Requests with unknown, expired or wrong credentials."}, []string{"transport"}),
		deniedPeers: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "quartet_turn_denied_peers_total",
			Help: "Peer addresses refused by the relay policy, at permission time or on the relay socket."},
			[]string{"transport", "stage"}),
		throttled: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "quartet_turn_unauthenticated_dropped_total",
			Help: "Unauthenticated requests dropped unanswered because their source exceeded turn.unauth_rate."},
			[]string{"transport"}),
		malformed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "quartet_turn_malformed_total",
			Help: "Malformed STUN messages dropped."}, []string{"transport"}),
		quotaRejected: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "quartet_turn_quota_rejections_total",
			Help: "Allocations refused by turn.max_allocations_per_user (user) or turn.max_allocations (total)."},
			[]string{"reason"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "quartet_turn_bandwidth_dropped_packets_total",
			Help: "Relayed packets dropped because the allocation exceeded turn.max_bitrate."}, []string{"transport"}),
		connections: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "quartet_turn_connections",
			Help: "Open TCP and TLS client connections."}, []string{"transport"}),
		connRejected: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "quartet_turn_connections_rejected_total",
			Help: "TCP and TLS connections closed at once because turn.max_connections was reached."},
			[]string{"transport"}),
	}
	reg.MustRegister(m.allocations, m.relayedBytes, m.relayedPackets, m.authFailures, m.deniedPeers,
		m.throttled, m.malformed, m.quotaRejected, m.dropped, m.connections, m.connRejected)
	return m
}

// transportMetrics are one transport's counters, resolved once so that the
// relay path does no label lookups.
type transportMetrics struct {
	name                       string
	allocations                prometheus.Gauge
	toPeerBytes, toClientBytes prometheus.Counter
	toPeerPkts, toClientPkts   prometheus.Counter
	authFailures               prometheus.Counter
	deniedPermission           prometheus.Counter
	deniedRelay                prometheus.Counter
	throttled, malformed       prometheus.Counter
	dropped                    prometheus.Counter
	connections                prometheus.Gauge
	connRejected               prometheus.Counter
	quotaUser, quotaTotal      prometheus.Counter
}

func (m *metrics) forTransport(name string) *transportMetrics {
	return &transportMetrics{
		name:             name,
		allocations:      m.allocations.WithLabelValues(name),
		toPeerBytes:      m.relayedBytes.WithLabelValues(name, "to_peer"),
		toClientBytes:    m.relayedBytes.WithLabelValues(name, "to_client"),
		toPeerPkts:       m.relayedPackets.WithLabelValues(name, "to_peer"),
		toClientPkts:     m.relayedPackets.WithLabelValues(name, "to_client"),
		authFailures:     m.authFailures.WithLabelValues(name),
		deniedPermission: m.deniedPeers.WithLabelValues(name, "permission"),
		deniedRelay:      m.deniedPeers.WithLabelValues(name, "relay"),
		throttled:        m.throttled.WithLabelValues(name),
		malformed:        m.malformed.WithLabelValues(name),
		dropped:          m.dropped.WithLabelValues(name),
		connections:      m.connections.WithLabelValues(name),
		connRejected:     m.connRejected.WithLabelValues(name),
		quotaUser:        m.quotaRejected.WithLabelValues("user"),
		quotaTotal:       m.quotaRejected.WithLabelValues("total"),
	}
}
