package server_test

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/quartet-rtc/quartet/internal/client"
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
// is the whole process's, so it includes the publisher and subscribers.
func BenchmarkForwardLoopback(b *testing.B) {
	for _, n := range []int{1, 10, 25} {
		b.Run(fmt.Sprintf("subscribers=%d", n), func(b *testing.B) {
			benchForward(b, n)
		})
	}
}

func benchForward(b *testing.B, n int) {
	srv := startServer(b, nil, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	pub, err := client.Dial(ctx, client.Options{URL: srv.WSURL(), Token: srv.Token(b, "bench", "pub")})
	if err != nil {
		b.Fatal(err)
	}
	defer pub.Close()
	counters := make([]*counter, n)
	for i := range n {
		counters[i] = newCounter()
		cnt := counters[i]
		c, err := client.Dial(ctx, client.Options{URL: srv.WSURL(), Token: srv.Token(b, "bench", fmt.Sprint("sub", i)),
			OnTrack: func(tr *webrtc.TrackRemote, info room.TrackInfo) { go cnt.consume(tr, info) }})
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
	received := func() int {
		total := 0
		for _, c := range counters {
			total += c.get(pub.SID(), "video")
		}
		return total
	}
	// Warm up: keyframes until every subscriber receives.
	for received() < n*10 {
		if ctx.Err() != nil {
			b.Fatal("subscribers never received media")
		}
		pkt.Payload[0], pkt.Payload[1] = 0x10, 0x00
		pkt.SequenceNumber++
		pkt.Timestamp += 3000
		_ = track.WriteRTP(pkt)
		time.Sleep(5 * time.Millisecond)
	}
	base := received()
	b.ReportAllocs()
	b.ResetTimer()
	cpu0, start := cpuTime(), time.Now()
	pkt.Payload[1] = 0x01 // delta frames
	for i := range b.N {
		pkt.SequenceNumber++
		if i%10 == 0 {
			pkt.Timestamp += 3000
		}
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
	_, _, dropped, _ := srv.Media().Totals()
	b.ReportMetric(float64(dropped), "sfu-drops")
}
