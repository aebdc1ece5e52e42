package server_test

import (
	"context"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quartet-rtc/quartet/internal/config"
)

// lossyConn drops every tenth RTP packet the server sends (not STUN, DTLS
// or RTCP), as a lossy downlink would.
type lossyConn struct {
	net.PacketConn
	rtp, dropped atomic.Int64
}

func isRTP(b []byte) bool {
	if len(b) < 2 || b[0] < 128 || b[0] > 191 {
		return false
	}
	return b[1] < 192 || b[1] > 223 // 192-223: RTCP (RFC 5761)
}

func (c *lossyConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	if isRTP(b) && c.rtp.Add(1)%10 == 0 {
		c.dropped.Add(1)
		return len(b), nil
	}
	return c.PacketConn.WriteTo(b, addr)
}

func TestNACKRecoversInjectedLoss(t *testing.T) {
	t.Parallel()
	var lossy *lossyConn
	srv := startServer(t, nil, func(c net.PacketConn) net.PacketConn {
		lossy = &lossyConn{PacketConn: c}
		return lossy
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	pubCnt, subCnt := newCounter(), newCounter()
	pub := srv.join(t, ctx, "lossy", "publisher", pubCnt, true)
	defer pub.Close()
	sub := srv.join(t, ctx, "lossy", "subscriber", subCnt, true)
	defer sub.Close()
	sendCtx, stopSending := context.WithCancel(ctx)
	wait := publishSynth(t, sendCtx, pub, true, false)
	waitUntil(t, 30*time.Second, "300 video packets at the subscriber", func() bool {
		return subCnt.get(pub.SID(), "video") >= 300
	})
	stopSending()
	wait()
	time.Sleep(500 * time.Millisecond) // let the last retransmissions arrive

	subCnt.mu.Lock()
	seqs := subCnt.seqs[pub.SID()+"/video"]
	got, span := coverage(seqs)
	subCnt.mu.Unlock()
	_, _, _, retransmitted := srv.Media().Totals()
	t.Logf("dropped %d RTP packets on the wire; subscriber has %d of %d sequence numbers; %d retransmitted",
		lossy.dropped.Load(), got, span, retransmitted)
	if lossy.dropped.Load() == 0 {
		t.Fatal("the test dropped nothing: the loss injection is broken")
	}
	if retransmitted == 0 {
		t.Fatal("the server retransmitted nothing")
	}
	// 10% is dropped on the wire; NACK must bring back nearly all of it.
	// The tail may miss a packet whose loss was never detected.
	if missing := span - got; missing > 3 {
		t.Fatalf("%d of %d packets still missing after NACK", missing, span)
	}
}

// coverage returns how many distinct sequence numbers were seen and the
// span from the first to the last, with wrap-around: the circle of 2^16
// numbers minus the largest run of unseen ones.
func coverage(seqs map[uint16]bool) (got, span int) {
	if len(seqs) == 0 {
		return 0, 0
	}
	largestGap, gap := 0, 0
	for i := range 2 << 16 { // twice around, so a gap that wraps is whole
		if seqs[uint16(i)] {
			gap = 0
			continue
		}
		gap++
		largestGap = max(largestGap, gap)
	}
	return len(seqs), 1<<16 - largestGap
}

func TestStalledSubscriberDoesNotSlowOthers(t *testing.T) {
	t.Parallel()
	srv := startServer(t, func(c *config.Config) { c.Media.SubscriberQueue = 64 }, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	pub := srv.join(t, ctx, "stall", "publisher", newCounter(), true)
	defer pub.Close()
	healthy := []*counter{newCounter(), newCounter()}
	for i, cnt := range healthy {
		c := srv.join(t, ctx, "stall", "healthy"+string(rune('a'+i)), cnt, true)
		defer c.Close()
	}
	stalled := srv.join(t, ctx, "stall", "stalled", newCounter(), false) // never reads
	defer stalled.Close()
	gone := srv.join(t, ctx, "stall", "gone", newCounter(), true)
	sendCtx, stopSending := context.WithCancel(ctx)
	wait := publishSynth(t, sendCtx, pub, true, true)
	waitUntil(t, 30*time.Second, "media at the healthy subscribers", func() bool {
		return healthy[0].get(pub.SID(), "video") > 30 && healthy[1].get(pub.SID(), "video") > 30
	})
	gone.Abort() // vanishes without leaving: its address goes dead
	before := []int{healthy[0].get(pub.SID(), "video"), healthy[1].get(pub.SID(), "video")}
	time.Sleep(3 * time.Second)
	stopSending()
	sentVideo, _ := wait()
	time.Sleep(300 * time.Millisecond)
	for i, cnt := range healthy {
		got := cnt.get(pub.SID(), "video") - before[i]
		t.Logf("healthy subscriber %d received %d video packets in the last 3 s (publisher sent %d in all)", i, got, sentVideo)
		// 3 s at 30 fps of ~2 packets per frame is ~180 packets.
		if got < 120 {
			t.Fatalf("healthy subscriber %d got only %d video packets while others stalled", i, got)
		}
	}
}
