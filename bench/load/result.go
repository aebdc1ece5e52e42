package main

import (
	"fmt"
	"runtime"
	"time"

	"github.com/quartet-rtc/quartet/internal/loadtest"
)

// result is one scenario's figures; its JSON form is what --json writes.
// Window figures cover the steady window: from the moment the last
// participant received media (the last join, without media) to the moment
// the publishers stopped.
type result struct {
	Scenario     string   `json:"scenario"`
	Kind         string   `json:"kind"`
	Participants int      `json:"participants"`
	Fanout       int      `json:"fanout,omitempty"`
	LoadtestArgs []string `json:"loadtest_args,omitempty"`
	Status       string   `json:"status"` // "ok", or what failed
	Notes        []string `json:"notes,omitempty"`

	SteadyFrom    time.Time `json:"steady_from"`
	SteadyTo      time.Time `json:"steady_to"`
	SteadySeconds float64   `json:"steady_seconds"`

	// ServerIdleCores is the server's CPU use before the run, while it was
	// sampled as during the run: the sampling's own cost (mostly the
	// /metrics scrapes) plus timers.
	ServerIdleCores     float64 `json:"server_idle_cores"`
	ServerCPUJoining    float64 `json:"server_cpu_seconds_joining"` // from the start to the last join
	ServerCPUSeconds    float64 `json:"server_cpu_seconds"`         // window
	ServerCores         float64 `json:"server_cores"`               // window: CPU seconds per second
	GeneratorCores      float64 `json:"generator_cores"`            // window
	GeneratorCPUSeconds float64 `json:"generator_cpu_seconds"`      // the whole loadtest process (wait4)
	// OtherCores is what the rest of the host used in the window: this
	// program's sampling, and anything else running that disturbs the
	// measurement.
	OtherCores float64 `json:"other_cores"`
	// Saturated: server and generator together used at least 90% of the
	// machine's cores in the window, so they competed for CPU.
	Saturated bool `json:"saturated"`

	ForwardedPackets          float64 `json:"forwarded_packets"` // window, quartet_forwarded_packets_total
	ForwardedPerSecond        float64 `json:"forwarded_per_second"`
	ServerCPUSecondsPer1000   float64 `json:"server_cpu_seconds_per_1000_forwarded"`
	ForwardedPerCPUSecond     float64 `json:"forwarded_per_cpu_second"`
	DroppedPackets            float64 `json:"dropped_packets"`       // window, quartet_dropped_packets_total
	RetransmittedPackets      float64 `json:"retransmitted_packets"` // window
	HostUDPReceiveBufferDrops int64   `json:"host_udp_rcvbuf_drops"` // whole run, /proc/net/snmp
	// SubscriberStreams are the video tracks the receivers got (each with
	// its publisher's audio), and StreamsPerServerCore how many of them one
	// core of server CPU carried in the window: the figure LiveKit
	// publishes (about 200 per core for its simulcast fan-out).
	SubscriberStreams    int     `json:"subscriber_streams"`
	StreamsPerServerCore float64 `json:"streams_per_server_core,omitempty"`

	Memory memoryResult `json:"memory"`

	// The forwarded packets per CPU-second as a fraction of bench/udplimit's
	// at the same fan-out: its batch mode, and its best mode.
	UDPLimitBatchFraction float64 `json:"udplimit_batch_fraction,omitempty"`
	UDPLimitBestFraction  float64 `json:"udplimit_best_fraction,omitempty"`
	UDPLimitBestMode      string  `json:"udplimit_best_mode,omitempty"`

	Report *loadtest.Report `json:"loadtest_report,omitempty"`
}

// memoryResult is the server's memory before the load and at the end of
// the steady window (everyone still connected), and per connection.
type memoryResult struct {
	RSSBefore           float64 `json:"rss_before_bytes"`
	RSSConnected        float64 `json:"rss_connected_bytes"`
	PeakRSS             float64 `json:"peak_rss_bytes"` // VmHWM
	HeapBefore          float64 `json:"heap_inuse_before_bytes"`
	HeapConnected       float64 `json:"heap_inuse_connected_bytes"`
	StackBefore         float64 `json:"stack_inuse_before_bytes"`
	StackConnected      float64 `json:"stack_inuse_connected_bytes"`
	GoroutinesBefore    float64 `json:"goroutines_before"`
	GoroutinesConnected float64 `json:"goroutines_connected"`
	Connections         int     `json:"connections"` // participants joined
	RSSPerConnection    float64 `json:"rss_per_connection_bytes"`
	HeapPerConnection   float64 `json:"heap_per_connection_bytes"`
	StackPerConnection  float64 `json:"stack_per_connection_bytes"`
	GoroutinesPerConn   float64 `json:"goroutines_per_connection"`
}

// minWindow is the shortest steady window worth computing rates over.
const minWindow = time.Second

// compute turns a run's samples and report into the scenario's figures.
// Figures that cannot be computed stay zero and say why in Notes.
func compute(sc scenario, run runOutput) result {
	rep := run.report
	r := result{Scenario: sc.name, Kind: sc.kind, Participants: sc.participants, Fanout: sc.fanout,
		LoadtestArgs: sc.args, Report: rep, GeneratorCPUSeconds: run.genCPU,
		HostUDPReceiveBufferDrops: run.rcvbufDrops}
	r.Status = status(rep, run.exitErr)
	if run.serverExit != nil {
		r.Notes = append(r.Notes, fmt.Sprintf("server exit after SIGTERM: %v", run.serverExit))
	}
	from, to := rep.AllMediaAt, rep.StoppedAt
	r.SteadyFrom, r.SteadyTo = from, to
	if to.Sub(from) < minWindow {
		r.Notes = append(r.Notes, fmt.Sprintf("no steady window: less than %v between the last participant's "+
			"first media (or join) and the end of the run", minWindow))
	} else {
		r.SteadySeconds = to.Sub(from).Seconds()
		r.window(run.samples, from, to)
	}
	r.memory(run, to)
	r.ServerIdleCores = run.idleCores
	if joining, err := serverCPUSeries(run.samples).delta(rep.StartedAt, rep.JoinedAt); err == nil {
		r.ServerCPUJoining = joining
	}
	return r
}

// status is "ok" or the loadtest's reasons for failing.
func status(rep *loadtest.Report, exitErr error) string {
	if err := rep.Check(); err != nil {
		return "failed: " + err.Error()
	}
	if exitErr != nil {
		return "failed: loadtest: " + exitErr.Error()
	}
	return "ok"
}

// window fills in the CPU and forwarding figures over [from, to].
func (r *result) window(samples []sample, from, to time.Time) {
	secs := to.Sub(from).Seconds()
	note := func(what string, err error) {
		r.Notes = append(r.Notes, fmt.Sprintf("%s: %v", what, err))
	}
	var err error
	if r.ServerCPUSeconds, err = serverCPUSeries(samples).delta(from, to); err != nil {
		note("server CPU", err)
	}
	r.ServerCores = r.ServerCPUSeconds / secs
	if gen, err := genCPUSeries(samples).delta(from, to); err != nil {
		note("generator CPU", err)
	} else {
		r.GeneratorCores = gen / secs
	}
	if busy, err := hostBusySeries(samples).delta(from, to); err == nil {
		r.OtherCores = max(0, busy/secs-r.ServerCores-r.GeneratorCores)
	}
	r.Saturated = r.ServerCores+r.GeneratorCores >= 0.9*float64(runtime.NumCPU())
	if r.ForwardedPackets, err = metricSeries(samples, mForwarded).delta(from, to); err != nil {
		note("forwarded packets", err)
	}
	r.DroppedPackets, _ = metricSeries(samples, mDropped).delta(from, to)
	r.RetransmittedPackets, _ = metricSeries(samples, mRetransmitted).delta(from, to)
	r.ForwardedPerSecond = r.ForwardedPackets / secs
	if r.ForwardedPackets > 0 && r.ServerCPUSeconds > 0 {
		r.ServerCPUSecondsPer1000 = r.ServerCPUSeconds / r.ForwardedPackets * 1000
		r.ForwardedPerCPUSecond = r.ForwardedPackets / r.ServerCPUSeconds
	}
	if r.Report != nil {
		r.SubscriberStreams = r.Report.ReceivedVideoTracks
		if r.ServerCores > 0 {
			r.StreamsPerServerCore = float64(r.SubscriberStreams) / r.ServerCores
		}
	}
}

// memory fills in the server's memory before the run and at the end of
// the steady window, when every participant was still connected.
func (r *result) memory(run runOutput, at time.Time) {
	m := &r.Memory
	b := run.before
	m.RSSBefore = b.mem.rss
	m.HeapBefore, m.StackBefore, m.GoroutinesBefore = b.metrics[mHeapInuse], b.metrics[mStackInuse], b.metrics[mGoroutines]
	m.PeakRSS = peakRSS(run.samples)
	m.Connections = run.report.Joined
	var errs []error
	get := func(s series) float64 {
		v, err := s.at(at)
		if err != nil {
			errs = append(errs, err)
		}
		return v
	}
	m.RSSConnected = get(rssSeries(run.samples))
	m.HeapConnected = get(metricSeries(run.samples, mHeapInuse))
	m.StackConnected = get(metricSeries(run.samples, mStackInuse))
	m.GoroutinesConnected = get(metricSeries(run.samples, mGoroutines))
	if len(errs) > 0 {
		r.Notes = append(r.Notes, fmt.Sprintf("memory when connected: %v", errs[0]))
		return
	}
	if n := float64(m.Connections); n > 0 {
		m.RSSPerConnection = (m.RSSConnected - m.RSSBefore) / n
		m.HeapPerConnection = (m.HeapConnected - m.HeapBefore) / n
		m.StackPerConnection = (m.StackConnected - m.StackBefore) / n
		m.GoroutinesPerConn = (m.GoroutinesConnected - m.GoroutinesBefore) / n
	}
}
