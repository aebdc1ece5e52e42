package main

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"time"

	"github.com/quartet-rtc/quartet/bench/internal/host"
)

// sampleInterval is how often the server and the generator are sampled.
// Each sample scrapes /metrics once, which costs the server well under a
// millisecond of CPU: about 0.1-0.5% of one core at this rate.
const sampleInterval = 200 * time.Millisecond

// sample is one look at the server (and the load generator while it runs).
type sample struct {
	at        time.Time
	serverCPU float64 // seconds
	mem       memory
	genCPU    float64 // seconds; valid when genOK
	genOK     bool
	hostBusy  float64 // seconds, all cores, every process
	metricsAt time.Time
	metrics   map[string]float64 // nil when the scrape failed
}

// sampler takes samples of one server process and, optionally, one load
// generator process.
type sampler struct {
	serverPID  int
	genPID     int // 0: none
	ticks      float64
	client     *http.Client
	metricsURL string
}

// take reads the server's CPU time and memory, the generator's CPU time,
// then the server's metrics. The metrics carry their own timestamp because
// the scrape takes a little while.
func (s *sampler) take(ctx context.Context) (sample, error) {
	smp := sample{at: time.Now()}
	var err error
	if smp.serverCPU, err = host.ProcCPU(s.serverPID, s.ticks); err != nil {
		return smp, fmt.Errorf("server CPU: %w", err)
	}
	if smp.mem, err = procMemory(s.serverPID); err != nil {
		return smp, fmt.Errorf("server memory: %w", err)
	}
	if smp.hostBusy, err = hostBusy(s.ticks); err != nil {
		return smp, err
	}
	if s.genPID != 0 {
		// The generator's /proc entry goes once it has been waited for.
		smp.genCPU, err = host.ProcCPU(s.genPID, s.ticks)
		smp.genOK = err == nil
	}
	smp.metricsAt = time.Now()
	smp.metrics, _ = scrape(ctx, s.client, s.metricsURL)
	return smp, nil
}

// run samples every sampleInterval until ctx ends and returns the samples.
func (s *sampler) run(ctx context.Context) []sample {
	var out []sample
	tick := time.NewTicker(sampleInterval)
	defer tick.Stop()
	for {
		if smp, err := s.take(ctx); err == nil {
			out = append(out, smp)
		}
		select {
		case <-ctx.Done():
			return out
		case <-tick.C:
		}
	}
}

// series is a quantity over time, times ascending.
type series struct {
	t []time.Time
	v []float64
}

func (s *series) add(t time.Time, v float64) {
	s.t = append(s.t, t)
	s.v = append(s.v, v)
}

// at is the value at t, linearly interpolated between the samples around
// it. Times outside the samples are an error: extrapolating a counter
// would invent work.
func (s series) at(t time.Time) (float64, error) {
	n := len(s.t)
	if n == 0 {
		return 0, fmt.Errorf("no samples")
	}
	if t.Before(s.t[0]) || t.After(s.t[n-1]) {
		return 0, fmt.Errorf("%s is outside the samples (%s to %s)",
			t.Format(time.StampMilli), s.t[0].Format(time.StampMilli), s.t[n-1].Format(time.StampMilli))
	}
	i := sort.Search(n, func(i int) bool { return !s.t[i].Before(t) }) // first sample at or after t
	if s.t[i].Equal(t) || i == 0 {
		return s.v[i], nil
	}
	t0, t1 := s.t[i-1], s.t[i]
	f := float64(t.Sub(t0)) / float64(t1.Sub(t0))
	return s.v[i-1] + f*(s.v[i]-s.v[i-1]), nil
}

// delta is the change over [from, to].
func (s series) delta(from, to time.Time) (float64, error) {
	a, err := s.at(from)
	if err != nil {
		return 0, err
	}
	b, err := s.at(to)
	if err != nil {
		return 0, err
	}
	return b - a, nil
}

// The series below each pick one quantity out of the samples.
func serverCPUSeries(samples []sample) series {
	var s series
	for _, smp := range samples {
		s.add(smp.at, smp.serverCPU)
	}
	return s
}

func rssSeries(samples []sample) series {
	var s series
	for _, smp := range samples {
		s.add(smp.at, smp.mem.rss)
	}
	return s
}

func genCPUSeries(samples []sample) series {
	var s series
	for _, smp := range samples {
		if smp.genOK {
			s.add(smp.at, smp.genCPU)
		}
	}
	return s
}

func hostBusySeries(samples []sample) series {
	var s series
	for _, smp := range samples {
		s.add(smp.at, smp.hostBusy)
	}
	return s
}

func metricSeries(samples []sample, name string) series {
	var s series
	for _, smp := range samples {
		if v, ok := smp.metrics[name]; ok {
			s.add(smp.metricsAt, v)
		}
	}
	return s
}

func peakRSS(samples []sample) float64 {
	var peak float64
	for _, smp := range samples {
		peak = max(peak, smp.mem.peak)
	}
	return peak
}
