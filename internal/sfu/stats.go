package sfu

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// peerStats are one subscriber's counters. packets and bytes have one
// writer (the writer goroutine); the others are added to by the up track
// readers and RTCP readers, rarely enough not to contend.
type peerStats struct {
	packets, bytes, dropped, retransmitted, nacks atomic.Uint64
}

func (s *peerStats) add(o *peerStats) {
	s.packets.Add(o.packets.Load())
	s.bytes.Add(o.bytes.Load())
	s.dropped.Add(o.dropped.Load())
	s.retransmitted.Add(o.retransmitted.Load())
	s.nacks.Add(o.nacks.Load())
}

// stats exports the media counters to Prometheus, summing live peers and
// the totals of closed ones at scrape time.
type stats struct {
	e       *Engine
	retired peerStats

	packets, bytes, dropped, retransmitted, nacks, tracks, subscriptions *prometheus.Desc
}

func newStats(e *Engine) *stats {
	return &stats{
		e:             e,
		packets:       prometheus.NewDesc("quartet_forwarded_packets_total", "RTP packets forwarded to subscribers.", nil, nil),
		bytes:         prometheus.NewDesc("quartet_forwarded_bytes_total", "RTP bytes forwarded to subscribers.", nil, nil),
		dropped:       prometheus.NewDesc("quartet_dropped_packets_total", "Packets not sent to a subscriber because its queue was full (with the rest of their video frame).", nil, nil),
		retransmitted: prometheus.NewDesc("quartet_retransmitted_packets_total", "Packets resent from the cache after a NACK.", nil, nil),
		nacks:         prometheus.NewDesc("quartet_nacks_received_total", "NACK messages received from subscribers.", nil, nil),
		tracks:        prometheus.NewDesc("quartet_tracks", "Published tracks.", nil, nil),
		subscriptions: prometheus.NewDesc("quartet_subscriptions", "Tracks being forwarded, one per track and subscriber.", nil, nil),
	}
}

func (s *stats) retire(p *peerStats) { s.retired.add(p) }

// Describe implements prometheus.Collector.
func (s *stats) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{s.packets, s.bytes, s.dropped, s.retransmitted, s.nacks, s.tracks, s.subscriptions} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (s *stats) Collect(ch chan<- prometheus.Metric) {
	var total peerStats
	total.add(&s.retired)
	tracks, subs := 0, 0
	for _, r := range s.e.allRouters() {
		tracks += r.trackCount()
		for _, p := range r.allPeers() {
			total.add(&p.stats)
			subs += p.sub.count()
		}
		for _, a := range r.allSinks() {
			total.add(&a.stats)
		}
	}
	counter := func(d *prometheus.Desc, v uint64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v))
	}
	counter(s.packets, total.packets.Load())
	counter(s.bytes, total.bytes.Load())
	counter(s.dropped, total.dropped.Load())
	counter(s.retransmitted, total.retransmitted.Load())
	counter(s.nacks, total.nacks.Load())
	ch <- prometheus.MustNewConstMetric(s.tracks, prometheus.GaugeValue, float64(tracks))
	ch <- prometheus.MustNewConstMetric(s.subscriptions, prometheus.GaugeValue, float64(subs))
}

// Totals returns the engine's counters; tests and benchmarks read them.
func (e *Engine) Totals() (packets, bytes, dropped, retransmitted uint64) {
	var total peerStats
	total.add(&e.stats.retired)
	for _, r := range e.allRouters() {
		for _, p := range r.allPeers() {
			total.add(&p.stats)
		}
		for _, a := range r.allSinks() {
			total.add(&a.stats)
		}
	}
	return total.packets.Load(), total.bytes.Load(), total.dropped.Load(), total.retransmitted.Load()
}

// TrackCount is how many tracks are published across all rooms.
func (e *Engine) TrackCount() int {
	n := 0
	for _, r := range e.allRouters() {
		n += r.trackCount()
	}
	return n
}
