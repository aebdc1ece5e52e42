package sfu

import (
	"strconv"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// peerStats are one subscriber's counters. packets and bytes have one
// writer (the writer goroutine); the others are added to by the up track
// readers and RTCP readers, rarely enough not to contend.
type peerStats struct {
	packets, bytes, dropped, retransmitted, nacks atomic.Uint64
	switches                                      atomic.Uint64 // spatial layer switches
	padding                                       atomic.Uint64 // bytes of probe padding
	// layers counts video packets sent by the spatial layer they came from.
	layers [maxLayers]atomic.Uint64
}

func (s *peerStats) add(o *peerStats) {
	s.switches.Add(o.switches.Load())
	s.padding.Add(o.padding.Load())
	for i := range s.layers {
		s.layers[i].Add(o.layers[i].Load())
	}
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
	switches, padding, layerPackets, pausedDesc                          *prometheus.Desc

	// paused counts video tracks paused for bandwidth, all subscribers.
	paused atomic.Int64
	// estimates are the subscribers' bandwidth estimates, one sample per
	// allocator run.
	estimates prometheus.Histogram
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
		switches:      prometheus.NewDesc("quartet_layer_switches_total", "Simulcast layer switches toward subscribers.", nil, nil),
		padding:       prometheus.NewDesc("quartet_probe_padding_bytes_total", "Padding bytes sent to probe subscribers' bandwidth.", nil, nil),
		layerPackets: prometheus.NewDesc("quartet_forwarded_layer_packets_total",
			"Video packets forwarded to subscribers, by the spatial layer (0 = lowest) they came from.", []string{"layer"}, nil),
		pausedDesc: prometheus.NewDesc("quartet_paused_tracks", "Video tracks paused toward a subscriber because its bandwidth is too low.", nil, nil),
		estimates: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "quartet_subscriber_bandwidth_estimate_bps",
			Help:    "Subscribers' estimated bandwidth, sampled at every allocation (twice a second each).",
			Buckets: prometheus.ExponentialBuckets(50_000, 2, 10)}),
	}
}

func (s *stats) retire(p *peerStats) { s.retired.add(p) }

// Describe implements prometheus.Collector.
func (s *stats) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{s.packets, s.bytes, s.dropped, s.retransmitted, s.nacks, s.tracks,
		s.subscriptions, s.switches, s.padding, s.layerPackets, s.pausedDesc} {
		ch <- d
	}
	s.estimates.Describe(ch)
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
	counter(s.switches, total.switches.Load())
	counter(s.padding, total.padding.Load())
	for i := range total.layers {
		ch <- prometheus.MustNewConstMetric(s.layerPackets, prometheus.CounterValue,
			float64(total.layers[i].Load()), strconv.Itoa(i))
	}
	ch <- prometheus.MustNewConstMetric(s.pausedDesc, prometheus.GaugeValue, float64(s.paused.Load()))
	s.estimates.Collect(ch)
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
