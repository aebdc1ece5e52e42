package loadtest

import (
	"context"
	"errors"
	"log/slog"
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
