package server_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"runtime/pprof"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/quartet-rtc/quartet/internal/client"
	"github.com/quartet-rtc/quartet/internal/config"
	"github.com/quartet-rtc/quartet/internal/room"
)

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkForwardLoopback sends video from one pion publisher through the
// whole server (SRTP, the UDP socket, the SFU) to N pion subscribers, all in
// this process on loopback. One op is one published packet. The CPU figure
// is the whole process's, so it includes the publisher and subscribers; the
// server's goroutines carry the pprof label side=server, so a CPU profile
// (-cpuprofile, then pprof -tagfocus side=server) tells its share.
func BenchmarkForwardLoopback(b *testing.B) {
	for _, n := range []int{1, 10, 25} {
		b.Run(fmt.Sprintf("subscribers=%d", n), func(b *testing.B) {
			benchForward(b, n, 0)
		})
	}
}

// BenchmarkForwardPaced is BenchmarkForwardLoopback at a steady packet rate
// (one published packet per millisecond), where latency is not queueing
// behind a flood: it shows what any write batching delays.
func BenchmarkForwardPaced(b *testing.B) {
	for _, n := range []int{10, 25} {
		b.Run(fmt.Sprintf("subscribers=%d", n), func(b *testing.B) {
			benchForward(b, n, time.Millisecond)
		})
	}
}

// latencyCounter counts packets and records how long each took from the
// publisher's write to the subscriber's read; the send time travels in the
// payload.
type latencyCounter struct {
	epoch    time.Time
	received atomic.Int64
	mu       sync.Mutex
	samples  []time.Duration
}

// stamp writes the time since epoch into a payload, after the VP8 header.
func (l *latencyCounter) stamp(payload []byte) {
	binary.BigEndian.PutUint64(payload[4:], uint64(time.Since(l.epoch)))
}

func (l *latencyCounter) consume(tr *webrtc.TrackRemote) {
	buf := make([]byte, 1500)
	var pkt rtp.Packet
	for {
		n, _, err := tr.Read(buf)
		if err != nil {
			return
		}
		if pkt.Unmarshal(buf[:n]) != nil || len(pkt.Payload) < 12 {
			continue
		}
		sent := time.Duration(binary.BigEndian.Uint64(pkt.Payload[4:]))
		l.received.Add(1)
		l.mu.Lock()
		l.samples = append(l.samples, time.Since(l.epoch)-sent)
		l.mu.Unlock()
	}
}

// reset forgets what was received so far and returns how much it was.
func (l *latencyCounter) reset() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.samples = l.samples[:0]
	return int(l.received.Load())
}

// quantile returns the q-quantile (0..1) of the recorded latencies.
func (l *latencyCounter) quantile(q float64) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.samples) == 0 {
		return 0
	}
	slices.Sort(l.samples)
	return l.samples[int(q*float64(len(l.samples)-1))]
}

// benchForward publishes b.N packets to n subscribers, as fast as they take
// them (every == 0) or one per every.
func benchForward(b *testing.B, n int, every time.Duration) {
	var srv *testServer
	pprof.Do(context.Background(), pprof.Labels("side", "server"), func(context.Context) {
		srv = startServer(b, func(c *config.Config) { c.Room.MaxParticipants = n + 1 }, nil)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	pub, err := client.Dial(ctx, client.Options{URL: srv.WSURL(), Token: srv.Token(b, "bench", "pub")})
	if err != nil {
		b.Fatal(err)
	}
	defer pub.Close()
	lat := &latencyCounter{epoch: time.Now()}
	for i := range n {
		c, err := client.Dial(ctx, client.Options{URL: srv.WSURL(), Token: srv.Token(b, "bench", fmt.Sprint("sub", i)),
			OnTrack: func(tr *webrtc.TrackRemote, _ room.TrackInfo) { go lat.consume(tr) }})
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
	}
	track, err := client.NewSynthTrack(true, "v", "pub")
	if err != nil {
		b.Fatal(err)
	}
	if err := pub.Publish(ctx, map[webrtc.TrackLocal]string{track: room.SourceCamera}); err != nil {
		b.Fatal(err)
	}
	pkt := &rtp.Packet{Header: rtp.Header{Version: 2, Timestamp: 1}, Payload: make([]byte, 1100)}
	received := func() int { return int(lat.received.Load()) }
	// Warm up: keyframes until every subscriber receives.
	for received() < n*10 {
		if ctx.Err() != nil {
			b.Fatal("subscribers never received media")
		}
		pkt.Payload[0], pkt.Payload[1] = 0x10, 0x00
		pkt.SequenceNumber++
		pkt.Timestamp += 3000
		lat.stamp(pkt.Payload)
		_ = track.WriteRTP(pkt)
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond) // the warm-up's tail
	base := lat.reset()
	b.ReportAllocs()
	b.ResetTimer()
	cpu0, start := cpuTime(), time.Now()
	pkt.Payload[1] = 0x01 // delta frames
	for i := range b.N {
		pkt.SequenceNumber++
		if i%10 == 0 {
			pkt.Timestamp += 3000
		}
		if every > 0 {
			time.Sleep(time.Until(start.Add(time.Duration(i) * every)))
		}
		lat.stamp(pkt.Payload)
		_ = track.WriteRTP(pkt)
		// Pace to what the subscribers take, at most 96 packets (~100 KB)
		// ahead, so a burst fits in a default socket buffer.
		if i%32 == 31 {
			paceUntil := time.Now().Add(20 * time.Millisecond) // lost packets never arrive
			for received()-base < (i+1-96)*n && time.Now().Before(paceUntil) {
				time.Sleep(20 * time.Microsecond)
			}
		}
	}
	// Wait for the tail; the clock stops at the last packet that arrived.
	last, lastAt := received(), time.Now()
	for last < base+b.N*n && time.Since(lastAt) < 200*time.Millisecond {
		time.Sleep(100 * time.Microsecond)
		if r := received(); r != last {
			last, lastAt = r, time.Now()
		}
	}
	elapsed, cpu := lastAt.Sub(start), cpuTime()-cpu0
	b.StopTimer()
	got := received() - base
	b.ReportMetric(float64(got)/elapsed.Seconds(), "fwd-pkts/s")
	b.ReportMetric(float64(got)/cpu.Seconds(), "fwd-pkts/cpu-s")
	b.ReportMetric(100*(1-float64(got)/float64(b.N*n)), "loss-%")
	b.ReportMetric(float64(lat.quantile(0.5).Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat.quantile(0.99).Microseconds()), "p99-µs")
	_, _, dropped, _ := srv.Media().Totals()
	b.ReportMetric(float64(dropped), "sfu-drops")
}
