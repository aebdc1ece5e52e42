package main

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// TestChildProcess runs this test binary as the forwarder.
	if len(os.Args) > 1 && os.Args[1] == roleFlag {
		os.Exit(forwarderMain(os.Args[1:]))
	}
	goleak.VerifyTestMain(m)
}

// launchInProcess runs the forwarder on a goroutine, speaking the control
// protocol over pipes; its CPU time is the whole test process's.
func launchInProcess(log *slog.Logger) launcher {
	return func(ctx context.Context, mode string, dests []netip.AddrPort) (*controller, error) {
		inR, inW := io.Pipe()
		outR, outW := io.Pipe()
		done := make(chan error, 1)
		go func() {
			err := serveForwarder(mode, dests, inR, outW, log)
			outW.CloseWithError(err)
			inR.Close()
			done <- err
		}()
		return newController(inW, outR, func() error { return <-done })
	}
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), nil))
}

// checkDelivery asserts that every sink got every datagram, intact.
func checkDelivery(t *testing.T, r result) {
	t.Helper()
	if r.SentPackets == 0 {
		t.Fatal("generator sent nothing")
	}
	if r.ReadPackets != r.SentPackets {
		t.Errorf("forwarder read %d datagrams, generator sent %d", r.ReadPackets, r.SentPackets)
	}
	if want := r.SentPackets * uint64(r.Fanout); r.ForwardedPackets != want || r.ReceivedPackets != want {
		t.Errorf("forwarded %d and received %d copies, want %d", r.ForwardedPackets, r.ReceivedPackets, want)
	}
	if len(r.perSink) != r.Fanout {
		t.Fatalf("%d sinks, want %d", len(r.perSink), r.Fanout)
	}
	for i, n := range r.perSink {
		if n != r.SentPackets {
			t.Errorf("sink %d received %d datagrams, want %d", i, n, r.SentPackets)
		}
	}
	if r.corrupt != 0 {
		t.Errorf("%d datagrams arrived with the wrong size or bytes", r.corrupt)
	}
}

func TestForwardModes(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			if mode == modeGSO {
				if err := probeGSO(); err != nil {
					t.Skipf("kernel without UDP GSO: %v", err)
				}
			}
			// 10,000/s in 1 ms ticks: bursts of about ten datagrams, so
			// batch reads and GSO runs of several segments happen.
			rc := runConfig{mode: mode, fanout: 3, payload: 1200, pps: 10000, duration: 200 * time.Millisecond, verify: true}
			r, err := runOne(t.Context(), rc, launchInProcess(testLogger(t)))
			if err != nil {
				t.Fatal(err)
			}
			checkDelivery(t, r)
			if r.GSO != (mode == modeGSO) {
				t.Errorf("gso = %v in mode %s", r.GSO, mode)
			}
		})
	}
}

// TestChildProcess runs the forwarder the way the benchmark does: as a
// child process, re-executing this test binary.
func TestChildProcess(t *testing.T) {
	// A -race child otherwise sleeps a second before exiting.
	t.Setenv("GORACE", strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	rc := runConfig{mode: modeBatch, fanout: 2, payload: 200, pps: 5000, duration: 200 * time.Millisecond, verify: true}
	r, err := runOne(t.Context(), rc, launchProcess(30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	checkDelivery(t, r)
	if r.CPUSeconds <= 0 {
		t.Errorf("forwarder CPU %v s, want its getrusage figure", r.CPUSeconds)
	}
}

func TestGSORunEnd(t *testing.T) {
	tests := []struct {
		name  string
		sizes []int
		ends  []int // end of each run, in order
	}{
		{"one", []int{1200}, []int{1}},
		{"equal", []int{1200, 1200, 1200}, []int{3}},
		{"shorter last", []int{1200, 1200, 700}, []int{3}},
		{"shorter ends the run", []int{1200, 700, 1200, 1200}, []int{2, 4}},
		{"longer starts a run", []int{700, 700, 1200, 1200}, []int{2, 4}},
		{"empty datagrams alone", []int{0, 0, 100}, []int{1, 2, 3}},
		{"64 KiB limit", []int{30000, 30000, 30000}, []int{2, 3}},
		{"segment limit", slices.Repeat([]int{10}, 70), []int{batchSize, 70}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pkts := make([][]byte, len(tt.sizes))
			for i, n := range tt.sizes {
				pkts[i] = make([]byte, n)
			}
			var ends []int
			for start := 0; start < len(pkts); start = ends[len(ends)-1] {
				ends = append(ends, gsoRunEnd(pkts, start))
			}
			if !slices.Equal(ends, tt.ends) {
				t.Errorf("runs end at %v, want %v", ends, tt.ends)
			}
		})
	}
}

// TestGSOShortLastSegment sends one GSO message whose last datagram is
// shorter and checks that the kernel cuts it back into the datagrams.
func TestGSOShortLastSegment(t *testing.T) {
	if err := probeGSO(); err != nil {
		t.Skipf("kernel without UDP GSO: %v", err)
	}
	rx, err := listenLoopback()
	if err != nil {
		t.Fatal(err)
	}
	defer rx.Close()
	tx, err := listenLoopback()
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Close()
	f, err := newForwarder(modeGSO, tx, []netip.AddrPort{rx.LocalAddr().(*net.UDPAddr).AddrPort()}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	sizes := []int{1200, 1200, 700}
	pkts := make([][]byte, len(sizes))
	for i, n := range sizes {
		pkts[i] = make([]byte, n)
		fillPacket(pkts[i], uint64(i))
	}
	wms := newGSOCopier(f.addrs).appendCopies(nil, pkts)
	if len(wms) != 1 {
		t.Fatalf("%d messages for one run to one destination", len(wms))
	}
	if err := f.writeAll(wms); err != nil {
		t.Fatal(err)
	}
	if f.stats.Forwarded != 3 || f.stats.WriteErrors != 0 {
		t.Fatalf("stats %+v, want 3 forwarded", f.stats)
	}
	if err := rx.SetReadDeadline(time.Now().Add(2 * time.Second)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 2000)
	for i, want := range sizes {
		n, err := rx.Read(buf)
		if err != nil {
			t.Fatalf("datagram %d: %v", i, err)
		}
		if !validPacket(buf[:n], want) || buf[7] != byte(i) {
			t.Errorf("datagram %d: %d bytes, not datagram %d of %d bytes", i, n, i, want)
		}
	}
}

func TestParseDests(t *testing.T) {
	if _, err := parseDests("127.0.0.1:5000,127.0.0.1:5001"); err != nil {
		t.Error(err)
	}
	for _, bad := range []string{"", "192.0.2.1:5000", "127.0.0.1"} {
		if _, err := parseDests(bad); err == nil {
			t.Errorf("parseDests(%q) accepted", bad)
		}
	}
}

// TestForwarderStopsOnClose checks that closing the socket ends run with
// no error in every mode.
func TestForwarderStopsOnClose(t *testing.T) {
	for _, mode := range modes {
		conn, err := listenLoopback()
		if err != nil {
			t.Fatal(err)
		}
		f, err := newForwarder(mode, conn, []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:9")}, testLogger(t))
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- f.run() }()
		conn.Close()
		if err := <-done; err != nil {
			t.Errorf("%s: run returned %v after close", mode, err)
		}
	}
}
