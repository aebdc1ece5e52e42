package main

import (
	"math"
	"strings"
	"testing"
	"time"
)

func TestParseStatusMemory(t *testing.T) {
	t.Parallel()
	text := "Name:\tquartet\nVmPeak:\t 1759789 kB\nVmHWM:\t   40000 kB\nVmRSS:\t   33132 kB\nThreads:\t12\n"
	m, err := parseStatusMemory(text)
	if err != nil {
		t.Fatal(err)
	}
	if m.rss != 33132*1024 || m.peak != 40000*1024 {
		t.Errorf("parseStatusMemory = %+v", m)
	}
	if _, err := parseStatusMemory("Name:\tquartet\nVmRSS:\t1 kB\n"); err == nil {
		t.Error("no error without VmHWM")
	}
	if _, err := parseStatusMemory("VmRSS:\t1 MB\nVmHWM:\t1 kB\n"); err == nil {
		t.Error("no error for an unknown unit")
	}
}

func TestParseMetrics(t *testing.T) {
	t.Parallel()
	text := `# HELP quartet_forwarded_packets_total Packets forwarded.
# TYPE quartet_forwarded_packets_total counter
quartet_forwarded_packets_total 45625
quartet_forwarded_packets_total_extra 1
quartet_turn_allocations{transport="udp"} 7
go_memstats_heap_inuse_bytes 1.138688e+07
go_goroutines 12 1700000000000
`
	got, err := parseMetrics(strings.NewReader(text), []string{mForwarded, mHeapInuse, mGoroutines, "quartet_turn_allocations", mDropped})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{mForwarded: 45625, mHeapInuse: 11386880, mGoroutines: 12}
	if len(got) != len(want) {
		t.Errorf("parseMetrics = %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
	if _, err := parseMetrics(strings.NewReader("go_goroutines twelve\n"), []string{mGoroutines}); err == nil {
		t.Error("no error for a value that is not a number")
	}
}

func TestSeries(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	var s series
	s.add(at(0), 10)
	s.add(at(200), 20)
	s.add(at(400), 20)
	s.add(at(600), 50)
	for _, tc := range []struct {
		ms   int
		want float64
	}{{0, 10}, {100, 15}, {200, 20}, {300, 20}, {500, 35}, {600, 50}} {
		got, err := s.at(at(tc.ms))
		if err != nil || math.Abs(got-tc.want) > 1e-9 {
			t.Errorf("at(%d ms) = %v, %v; want %v", tc.ms, got, err, tc.want)
		}
	}
	if d, err := s.delta(at(100), at(500)); err != nil || math.Abs(d-20) > 1e-9 {
		t.Errorf("delta(100, 500 ms) = %v, %v; want 20", d, err)
	}
	for _, ms := range []int{-1, 601} {
		if _, err := s.at(at(ms)); err == nil {
			t.Errorf("at(%d ms): no error outside the samples", ms)
		}
	}
	if _, err := (series{}).at(t0); err == nil {
		t.Error("empty series: no error")
	}
}

func TestSelectScenarios(t *testing.T) {
	t.Parallel()
	all := scenarios()
	for _, tc := range []struct {
		only string
		want string
	}{
		{"", scenarioNames(all)},
		{"fanout", "fanout-25, fanout-50, fanout-100, fanout-200"},
		{"fanout-100, idle", "fanout-100, idle-2000"},
		{"meeting,meeting-8x8", "meeting-8x8, meeting-16x16-audio"},
	} {
		got, err := selectScenarios(all, tc.only)
		if err != nil || scenarioNames(got) != tc.want {
			t.Errorf("selectScenarios(%q) = %s, %v; want %s", tc.only, scenarioNames(got), err, tc.want)
		}
	}
	if _, err := selectScenarios(all, "fanout,nope"); err == nil {
		t.Error("no error for an unknown scenario")
	}
}

func TestBaseline(t *testing.T) {
	t.Parallel()
	rows := []udpLimitRow{
		{Mode: "perpacket", Fanout: 25, ForwardedPerCPUSecond: 500},
		{Mode: "batch", Fanout: 25, ForwardedPerCPUSecond: 700},
		{Mode: "gso", Fanout: 25, ForwardedPerCPUSecond: 1100},
		{Mode: "batch", Fanout: 50, ForwardedPerCPUSecond: 800},
		{Mode: "gso", Fanout: 50, Unsupported: "no UDP_SEGMENT"},
	}
	batch, best, ok := baseline(rows, 25)
	if !ok || batch.ForwardedPerCPUSecond != 700 || best.Mode != "gso" {
		t.Errorf("fan-out 25: batch %+v, best %+v, %v", batch, best, ok)
	}
	batch, best, ok = baseline(rows, 50)
	if !ok || batch.ForwardedPerCPUSecond != 800 || best.Mode != "batch" {
		t.Errorf("fan-out 50: batch %+v, best %+v, %v", batch, best, ok)
	}
	if _, _, ok := baseline(rows, 100); ok {
		t.Error("fan-out 100: found a baseline that is not there")
	}
}

func TestThousands(t *testing.T) {
	t.Parallel()
	for v, want := range map[float64]string{0: "0", 999.6: "1,000", 1234567: "1,234,567", -45625: "-45,625"} {
		if got := thousands(v); got != want {
			t.Errorf("thousands(%v) = %q, want %q", v, got, want)
		}
	}
}

func TestParseHostBusy(t *testing.T) {
	t.Parallel()
	// user 100, nice 10, system 50, idle 1000, iowait 7, irq 3, softirq 2, steal 5
	got, err := parseHostBusy("cpu  100 10 50 1000 7 3 2 5 0 0", 100)
	if err != nil || got != 1.7 {
		t.Errorf("parseHostBusy = %v, %v; want 1.7", got, err)
	}
	if _, err := parseHostBusy("cpu0 1 2 3", 100); err == nil {
		t.Error("no error for a short line")
	}
}
