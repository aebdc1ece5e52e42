package loadtest

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/quartet-rtc/quartet/internal/client"
)

func TestSeqTrackerCountsLossReorderAndRetransmission(t *testing.T) {
	var tr seqTracker
	// 65530..65535, 0..9 across the wrap; 3 lost, 5 late, 7 duplicated,
	// 8 lost then retransmitted.
	for s := uint16(65530); s != 10; s++ {
		switch s {
		case 3, 8:
			continue
		case 5:
			continue
		case 6:
			tr.add(6)
			tr.add(5)
			continue
		}
		tr.add(s)
		if s == 7 {
			tr.add(7)
		}
	}
	tr.add(8)
	if got, want := tr.expected(), int64(16); got != want {
		t.Errorf("expected = %d, want %d", got, want)
	}
	if got := tr.lost(); got != 1 {
		t.Errorf("lost = %d, want 1 (seq 3)", got)
	}
	if tr.outOfOrder != 2 || tr.duplicates != 1 {
		t.Errorf("out of order %d, duplicates %d, want 2 and 1", tr.outOfOrder, tr.duplicates)
	}
}

func TestSeqTrackerLongRunWithGaps(t *testing.T) {
	var tr seqTracker
	sent := 0
	for i := 0; i < 200000; i++ {
		if i%1000 == 999 {
			continue // lost
		}
		tr.add(uint16(1000 + i))
		sent++
	}
	if tr.expected() != 199999 || tr.lost() != 199 || tr.unique != int64(sent) {
		t.Errorf("expected %d lost %d unique %d", tr.expected(), tr.lost(), tr.unique)
	}
	if tr.outOfOrder != 0 || tr.duplicates != 0 {
		t.Errorf("out of order %d duplicates %d", tr.outOfOrder, tr.duplicates)
	}
}

func TestHistogramQuantiles(t *testing.T) {
	var h histogram
	for i := 1; i <= 1000; i++ {
		h.add(time.Duration(i) * time.Millisecond)
	}
	for _, c := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 500 * time.Millisecond}, {0.95, 950 * time.Millisecond}, {0.99, 990 * time.Millisecond}} {
		got := h.quantile(c.q)
		if got < c.want || float64(got) > float64(c.want)*1.07 {
			t.Errorf("q%.2f = %v, want within 7%% above %v", c.q, got, c.want)
		}
	}
	if h.quantile(1) != time.Second {
		t.Errorf("max = %v", h.quantile(1))
	}
	var small histogram
	small.add(3 * time.Microsecond)
	if small.quantile(0.5) != 3*time.Microsecond {
		t.Errorf("small = %v", small.quantile(0.5))
	}
}

// A publisher that joined but failed to publish counts once, as a join
// failure, so that one that never joined still shows as not joined.
func TestReportCountsPublishFailureOnce(t *testing.T) {
	r := &runner{cfg: Config{Publishers: 2, SignalingOnly: true, Log: slog.New(slog.DiscardHandler)},
		keyframes: map[string]chan struct{}{}}
	start := time.Now()
	p := &participant{run: r, publisher: true, c: &client.Client{}, dialStart: start, joinedAt: start}
	r.recordJoin(context.Background(), p, errors.New("publish: refused"))
	rep := r.report(start, start, start)
	if rep.Joined != 0 || rep.JoinFailed != 1 || rep.NotJoined != 1 {
		t.Errorf("joined %d, join failed %d, not joined %d; want 0, 1, 1", rep.Joined, rep.JoinFailed, rep.NotJoined)
	}
}

func TestPacketIndexAcrossWraps(t *testing.T) {
	for _, c := range []struct {
		firstSeq, seq uint16
		counted, want int64
	}{
		{100, 100, 0, 0},         // the first packet, arrived before it was counted
		{100, 110, 11, 10},       // no wrap
		{65530, 4, 11, 10},       // the sequence number wrapped, the index did not
		{7, 7, 65536 + 3, 65536}, // a lap later: the same sequence number as packet 0
		{7, 6, 65536 + 1, 65535}, // the last packet of the first lap, counted late
		{0, 5000, 3*65536 + 4990, 3*65536 + 5000},
	} {
		if got := packetIndex(c.firstSeq, c.seq, c.counted); got != c.want {
			t.Errorf("packetIndex(%d, %d, %d) = %d, want %d", c.firstSeq, c.seq, c.counted, got, c.want)
		}
	}
}

// What a receiver should have had runs to the publisher's last packet, so
// a stream that stopped arriving counts its tail as lost.
func TestTrackReaderCountsWhatWasSent(t *testing.T) {
	sent := client.NewTrackCounter()
	sent.Packets.Store(100)
	r := &trackReader{sent: sent, firstIndex: 10}
	base := uint16(65530) // index 10; indices 10..59 are sent over the wrap
	for i := range 50 {
		if i == 9 {
			continue // index 19 is lost
		}
		r.seq.add(base + uint16(i))
		if i == 0 {
			r.firstExt = r.seq.first
		}
	}
	r.seq.add(base - 1) // index 9 arrives late
	expected, lost := r.expectedAndLost()
	if expected != 91 || lost != 91-50 {
		t.Errorf("expected %d, lost %d; want 91 (indices 9..99), 41", expected, lost)
	}
	r.sent = nil // no publisher count: the span received
	if expected, lost := r.expectedAndLost(); expected != 51 || lost != 1 {
		t.Errorf("without the sent count: expected %d, lost %d; want 51, 1", expected, lost)
	}
}

// A disconnected participant counts once, with its reason, and a track it
// should have received but never did counts as lost from its join on.
func TestReportCountsDisconnectedAndMissingTracks(t *testing.T) {
	r := &runner{cfg: Config{Publishers: 1, Subscribers: 2, Log: slog.New(slog.DiscardHandler)},
		keyframes: map[string]chan struct{}{}, sentTracks: map[string]sentTrack{}}
	start := time.Now()
	r.start = start
	count := client.NewTrackCounter()
	count.Packets.Store(500)
	r.sentTracks["TR_audio"] = sentTrack{publisher: "PA_pub", count: count}
	newPart := func(sid string, publisher bool) *participant {
		c := &client.Client{}
		c.Joined.Participant.SID = sid
		p := &participant{run: r, identity: sid, publisher: publisher, c: c, dialStart: start, joinedAt: start,
			sentAtJoin: map[string]int64{"TR_audio": 100}}
		r.recordJoin(context.Background(), p, nil)
		return p
	}
	newPart("PA_pub", true)
	gone := newPart("PA_gone", false)
	gone.firstMedia.Store(start.UnixNano())
	gone.fail("server sent leave: server_shutdown")
	gone.fail("signaling connection lost") // the first reason counts
	newPart("PA_silent", false)
	rep := r.report(start, start, start)
	if rep.Joined != 3 || rep.Disconnected != 1 || rep.MediaFailed != 1 {
		t.Errorf("joined %d, disconnected %d, without media %d; want 3, 1, 1", rep.Joined, rep.Disconnected, rep.MediaFailed)
	}
	if rep.DisconnectReasons["server sent leave: server_shutdown"] != 1 || len(rep.DisconnectReasons) != 1 {
		t.Errorf("reasons %v", rep.DisconnectReasons)
	}
	// Neither subscriber received the track: 400 packets each since they joined.
	if rep.MissingTracks != 2 || rep.ExpectedPackets != 800 || rep.LostPackets != 800 || rep.Loss != 1 {
		t.Errorf("missing %d tracks, lost %d of %d (%v); want 2, 800 of 800", rep.MissingTracks,
			rep.LostPackets, rep.ExpectedPackets, rep.Loss)
	}
	err := rep.Check()
	if err == nil || !strings.Contains(err.Error(), "1 participants were disconnected during the run (1: server sent leave: server_shutdown)") {
		t.Errorf("check: %v", err)
	}
}
