package sfu

import (
	"testing"
	"time"

	"github.com/quartet-rtc/quartet/internal/room"
)

// A sink starts at a keyframe like a subscriber, gets sender reports in
// order with the packets, and hears Ended once, last, when detached.
func TestSinkStartsAtKeyframeAndGetsReports(t *testing.T) {
	t.Parallel()
	f := newSinkFixture(1, 64)
	sink := f.sinks[0]
	tmpl := vp8Template(500)
	for i := 1; i <= 10; i++ { // delta frames: not delivered
		f.send(tmpl, uint16(i))
	}
	for i := 30; i < 35; i++ { // a keyframe (30), then deltas
		f.send(tmpl, uint16(i))
	}
	f.up.layers[0].senderReport(&room.SenderReport{SSRC: 42, NTPTime: 1 << 32, RTPTime: 1000})
	for i := 35; i < 40; i++ {
		f.send(tmpl, uint16(i))
	}
	waitFor(t, func() bool { return sink.packets.Load() == 10 && sink.reports.Load() == 1 }, "sink got packets and a report")
	if got := sink.keyframes.Load(); got != 1 {
		t.Errorf("%d packets start a keyframe, want 1", got)
	}
	if at := sink.reportAt.Load(); at != 5 {
		t.Errorf("the report came after %d packets, want 5 (in order with the media)", at)
	}
	f.attachments[0].Detach()
	f.attachments[0].Detach()
	f.outs[0].wait()
	f.send(tmpl, 60)
	if !sink.ended.Load() || sink.afterEnd.Load() {
		t.Errorf("ended %v; a call after Ended or a second Ended: %v", sink.ended.Load(), sink.afterEnd.Load())
	}
	if got := sink.packets.Load(); got != 10 {
		t.Errorf("%d packets after detach, want 10", got)
	}
	if n := len(f.up.downsList()); n != 0 {
		t.Errorf("%d down tracks left on the up track after detach", n)
	}
}

// A sink adds no allocation per forwarded packet.
func TestSinkFanOutAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts need a build without -race; scripts/test.sh runs this test so")
	}
	f := newSinkFixture(4, 4096)
	defer f.close()
	checkNoAllocations(t, f, "4 sinks")
}

func (u *UpTrack) downsList() []*DownTrack { return *u.downs.Load() }

func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting: %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}
