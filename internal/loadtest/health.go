package loadtest

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// A participant is disconnected when it stops taking part before the run
// ends: the server sent it leave (any reason), its signaling connection
// ended, a peer connection failed or closed, or media stopped arriving.
// A run with disconnected participants fails: it did not measure the load
// it reports.

// mediaStallTimeout is how long a participant that was receiving may go
// without a packet before it counts as disconnected. Every publisher sends
// audio every 20 ms or video every frame for the whole run, so 5 s of
// nothing is no hiccup; pion itself only calls a silent connection failed
// after 30 s, longer than many runs.
const mediaStallTimeout = 5 * time.Second

// failure is why, and when, a participant was disconnected.
type failure struct {
	reason string // short and the same for every participant, to be counted
	at     time.Time
}

// fail records the first reason p stopped taking part. Once the run closes
// p, the connections ending is expected and nothing is recorded.
func (p *participant) fail(reason string) {
	if p.closing.Load() {
		return
	}
	f := &failure{reason: reason, at: time.Now()}
	if p.failure.CompareAndSwap(nil, f) {
		p.run.noteError(fmt.Errorf("%s: disconnected %.1f s into the run: %s",
			p.identity, f.at.Sub(p.run.start).Seconds(), reason))
	}
}

// startWatch checks every second, until ctx ends, that participants who
// were receiving still are. The returned stop waits for the watcher.
func (r *runner) startWatch(ctx context.Context) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case now := <-t.C:
				r.checkStalls(now)
			}
		}
	}()
	return func() { cancel(); wg.Wait() }
}

// checkStalls fails every participant expecting media whose last packet is
// older than mediaStallTimeout at now. One that never received anything is
// judged at the end instead (Report.MediaFailed): it may still be joining.
func (r *runner) checkStalls(now time.Time) {
	for _, p := range r.participants() {
		if p.joinFailed || !r.expectsMedia(p) {
			continue
		}
		last := p.lastMedia.Load()
		if last != 0 && now.Sub(time.Unix(0, last)) > mediaStallTimeout {
			p.fail(fmt.Sprintf("no media for %v", mediaStallTimeout))
		}
	}
}
