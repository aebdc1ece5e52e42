package loadtest

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// startProgress prints a live line every interval until ctx ends or the
// returned stop is called.
func (r *runner) startProgress(ctx context.Context, start time.Time) (stop func()) {
	if r.cfg.Progress == nil || r.cfg.ProgressInterval <= 0 {
		return func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(r.cfg.ProgressInterval)
		defer t.Stop()
		var lastSent, lastRecv int64
		last := start
		for {
			select {
			case <-ctx.Done():
				return
			case now := <-t.C:
				lastSent, lastRecv = r.printProgress(now, start, last, lastSent, lastRecv)
				last = now
			}
		}
	}()
	return func() { cancel(); wg.Wait() }
}

// printProgress prints one line and returns the byte counts it used.
func (r *runner) printProgress(now, start, last time.Time, lastSent, lastRecv int64) (int64, int64) {
	sent := r.sent.Bytes.Load()
	packets, recv, lost := r.tracks.live()
	secs := now.Sub(last).Seconds()
	joined, connected, disconnected := 0, 0, 0
	for _, p := range r.participants() {
		if !p.joinedAt.IsZero() {
			joined++
		}
		switch {
		case p.failure.Load() != nil:
			disconnected++
		case p.connected.Load():
			connected++
		}
	}
	loss := 0.0
	if packets+lost > 0 {
		loss = float64(lost) / float64(packets+lost) * 100
	}
	fmt.Fprintf(r.cfg.Progress, "%5.0fs  joined %d/%d  connected %d  disconnected %d  in %.2f Mbps  out %.2f Mbps  loss %.2f%%\n",
		now.Sub(start).Seconds(), joined, r.cfg.Publishers+r.cfg.Subscribers, connected, disconnected,
		float64(sent-lastSent)*8/secs/1e6, float64(recv-lastRecv)*8/secs/1e6, loss)
	return sent, recv
}
