package loadtest

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quartet-rtc/quartet/internal/client"
)

// drainTime lets packets in flight, and their retransmissions, arrive after
// the publishers stop, so the tail does not count as loss.
const drainTime = 500 * time.Millisecond

// runner is one run's state.
type runner struct {
	cfg    Config
	url    string
	start  time.Time
	tracks trackSet
	sent   client.SendCounter

	mediaStart atomic.Int64 // unix nanos when the first publisher started
	paused     atomic.Int64 // stream_state paused messages received

	mu         sync.Mutex
	parts      []*participant // joined ones
	joinErrors int
	errs       []string // the first few errors, for the report
	keyframes  map[string]chan struct{}
	sentTracks map[string]sentTrack // published tracks, by server sid
}

// sentTrack is one published track: who sends it and how much it sent.
type sentTrack struct {
	publisher string // participant sid
	count     *client.TrackCounter
	// simulcast: count is the low layer's, and receivers see the server's
	// numbering, not the publisher's.
	simulcast bool
}

// Run runs a load test until cfg.Duration has passed or ctx ends, closes
// every participant and reports. An error means the run could not be made;
// a run that failed its checks returns a report whose Check fails.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	url, err := cfg.validate()
	if err != nil {
		return nil, err
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	start := time.Now()
	r := &runner{cfg: cfg, url: url, start: start, keyframes: map[string]chan struct{}{}, sentTracks: map[string]sentTrack{}}
	runCtx, cancel := context.WithTimeout(ctx, cfg.Duration)
	defer cancel()

	stopProgress := r.startProgress(runCtx, start)
	stopWatch := r.startWatch(runCtx)
	joinedAt := r.joinAll(runCtx)
	<-runCtx.Done()
	stoppedAt := time.Now()
	stopWatch()
	r.checkStalls(stoppedAt)
	stopProgress()
	r.waitSenders()
	time.Sleep(drainTime)
	r.closeAll()
	return r.report(start, joinedAt, stoppedAt), nil
}

// joinAll joins the publishers, then the subscribers, at the join rate,
// until all joined or ctx ends. It returns when the last one joined.
func (r *runner) joinAll(ctx context.Context) time.Time {
	n := r.cfg.Publishers + r.cfg.Subscribers
	var interval time.Duration
	if r.cfg.JoinRate > 0 {
		interval = time.Duration(float64(time.Second) / r.cfg.JoinRate)
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64) // joins in flight at once
	next := time.Now()
	for i := range n {
		if interval > 0 {
			if !sleepUntil(ctx, next) {
				break
			}
			next = next.Add(interval)
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		// Publishers are numbered from 0, then subscribers from 0 again.
		p := &participant{run: r, index: i, ordinal: i, publisher: i < r.cfg.Publishers}
		if !p.publisher {
			p.index -= r.cfg.Publishers
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			r.joinOne(ctx, p)
		}()
	}
	wg.Wait()
	return time.Now()
}

func (r *runner) joinOne(ctx context.Context, p *participant) {
	r.recordJoin(ctx, p, p.join(ctx))
}

// recordJoin keeps p, to be closed, and counts its failure. A participant
// that joined but failed to publish is a join failure, not also joined.
func (r *runner) recordJoin(ctx context.Context, p *participant, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if p.c != nil {
		r.parts = append(r.parts, p) // even half-joined: it must be closed
	}
	if err != nil && ctx.Err() == nil {
		p.joinFailed = true
		r.joinErrors++
		r.noteErrorLocked(err)
	}
}

func sleepUntil(ctx context.Context, t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err() == nil
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-timer.C:
		return true
	}
}

func (r *runner) participants() []*participant {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*participant(nil), r.parts...)
}

func (r *runner) waitSenders() {
	for _, p := range r.participants() {
		p.senders.Wait()
	}
}

// closeAll leaves with every participant, many at a time, each waiting
// for the server to take its leave, so none is left parked on the server
// for a resume. After closeBudget the rest drop their connections without
// saying leave: each leave may wait seconds on an unresponsive server, and
// the run must end soon after its duration however many participants it
// has.
func (r *runner) closeAll() {
	parts := r.participants()
	for _, p := range parts {
		p.closing.Store(true) // from here on, connections ending is the plan
	}
	ctx, cancel := context.WithTimeout(context.Background(), closeBudget)
	defer cancel()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	for _, p := range parts {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if ctx.Err() == nil {
				p.c.CloseContext(ctx)
			} else {
				p.c.Abort()
			}
		}()
	}
	wg.Wait()
}

// closeBudget bounds the time spent leaving politely.
const closeBudget = 10 * time.Second

func (r *runner) markMediaStart(t time.Time) {
	r.mediaStart.CompareAndSwap(0, t.UnixNano())
}

// keyframeChan is where keyframe requests for a published track go.
func (r *runner) keyframeChan(trackID string) chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	ch, ok := r.keyframes[trackID]
	if !ok {
		ch = make(chan struct{}, 1)
		r.keyframes[trackID] = ch
	}
	return ch
}

// addSentTrack records a published track, by its server sid, for its
// receivers to count against.
func (r *runner) addSentTrack(sid, publisher string, count *client.TrackCounter, simulcast bool) {
	if sid == "" {
		return // the server did not say: receivers count what they saw
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sentTracks[sid] = sentTrack{publisher: publisher, count: count, simulcast: simulcast}
}

// sentTrack returns the counter of a published track whose packets reach
// receivers with the publisher's sequence numbers, or nil.
func (r *runner) sentTrack(sid string) *client.TrackCounter {
	r.mu.Lock()
	defer r.mu.Unlock()
	t := r.sentTracks[sid]
	if t.simulcast {
		return nil
	}
	return t.count
}

// sentSnapshot is how many packets each published track has sent so far.
func (r *runner) sentSnapshot() map[string]int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]int64, len(r.sentTracks))
	for sid, t := range r.sentTracks {
		out[sid] = t.count.Packets.Load()
	}
	return out
}

// maxErrors bounds the errors kept for the report.
const maxErrors = 10

func (r *runner) noteError(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.noteErrorLocked(err)
}

func (r *runner) noteErrorLocked(err error) {
	r.cfg.Log.Warn("loadtest", "err", err)
	if len(r.errs) < maxErrors {
		r.errs = append(r.errs, err.Error())
	}
}
