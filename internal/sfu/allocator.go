package sfu

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quartet-rtc/quartet/internal/bwe"
	"github.com/quartet-rtc/quartet/internal/room"
)

// How often a subscriber's bandwidth is shared out again, and how soon
// after a change (a track added, preferences) it is.
const (
	allocInterval = 500 * time.Millisecond
	allocSoon     = 20 * time.Millisecond
)

// Probing: when the estimate keeps a track below what its subscriber
// wants, padding raises the send rate for probeDuration, at most once per
// probeInterval, to find out whether the path carries more.
const (
	probeDuration = 600 * time.Millisecond
	probeInterval = 2 * time.Second
	// maxProbeWait is the longest wait after probes that found nothing:
	// each one that fails doubles the wait, so a link that is full is not
	// filled over and over; short enough that a link that got better is
	// found within seconds.
	maxProbeWait = 8 * time.Second
	probeTick    = 10 * time.Millisecond
	paddingSize  = 255 // the most RTP padding one packet can carry
)

// audioReserve is what an audio track is assumed to cost before it is
// measured.
const audioReserve = 40_000

// congestionLoss is the loss rate that counts as congestion.
const congestionLoss = 0.05

// unconstrained is the budget while the link has shown no congestion.
const unconstrained = 1 << 40

// rampTime is how long a subscriber's first video is held within the
// initial estimate before an uncongested link gets what it asks for. The
// estimate caps upgrades then, but pauses nothing: a track without
// simulcast above it is sent all the same.
const rampTime = time.Second

// downAlloc is the allocator's state of one down track.
type downAlloc struct {
	prev   allocOption // chosen last (spatial -1: none); allocator only
	short  int         // allocations in a row that wanted it paused; allocator only
	paused atomic.Bool // by bandwidth, as the subscriber was told
	// want is the highest layer the subscriber's preferences ask for (-1:
	// disabled), which decides what the publisher sends (dynacast).
	want atomic.Int32
}

// allocDown is a video subscription with the subscriber's settings for it.
type allocDown struct {
	*subscription
	settings room.TrackSettings
}

// allocator shares one subscriber connection's estimated bandwidth among
// the video tracks it receives; audio is never paused. It runs on a timer
// goroutine, one run at a time.
type allocator struct {
	sub *subscriber
	est *bwe.Estimator

	run       sync.Mutex // one run at a time; close waits for the last
	timer     *time.Timer
	probing   bool
	lastProbe time.Time
	probeWait time.Duration // before the next probe
	probeGoal int           // the estimate the last probe looked for
	probeFrom int           // the estimate when it started
	// constrained: the link has shown congestion, and the estimate limits
	// what is sent.
	constrained bool
	firstVideo  time.Time // when there was first a video option to allocate
	ramping     bool      // within rampTime of it, and not constrained
	lastBudget  int       // of the allocation in progress
	lastPlan    string    // as last logged
	probes      sync.WaitGroup
}

func newAllocator(sub *subscriber, est *bwe.Estimator) *allocator {
	a := &allocator{sub: sub, est: est, probeWait: probeInterval}
	a.timer = time.AfterFunc(allocInterval, a.tick)
	return a
}

// soon makes the next run happen shortly.
func (a *allocator) soon() { a.timer.Reset(allocSoon) }

// stop ends the runs and waits for the one in progress and any probe.
func (a *allocator) stop() {
	a.timer.Stop()
	a.run.Lock()
	a.timer.Stop() // a run in progress rescheduled it
	a.run.Unlock()
	a.probes.Wait()
}

func (a *allocator) tick() {
	a.run.Lock()
	defer a.run.Unlock()
	downs, ok := a.sub.videoDowns()
	if !ok {
		return // closed: no rescheduling
	}
	a.allocate(downs)
	a.timer.Reset(allocInterval)
}

// allocate works out and applies a plan for downs.
//
// Like LiveKit's allocator, it gives every track what its subscriber wants
// until the link shows congestion (delay overuse or loss): an estimate
// that only grows by probing would otherwise hold a new subscriber below
// a link it has never filled. From the first congestion on, the estimate is
// the budget, and probes look for more; once the estimate covers every
// preference again, the allocator is unconstrained again.
func (a *allocator) allocate(downs []allocDown) {
	if len(downs) == 0 {
		return
	}
	r := a.sub.p.router
	speakers := r.speakers()
	stats := a.est.Stats()
	if stats.DelayState == bwe.DelayOveruse || stats.Loss > congestionLoss {
		a.constrained = true
	}
	budget := unconstrained
	if a.firstVideo.IsZero() && hasOptions(downs) {
		a.firstVideo = time.Now()
	}
	a.ramping = time.Since(a.firstVideo) < rampTime && !a.constrained
	if a.ramping {
		// A new subscriber starts within the initial estimate: sending
		// the top layer at once into a narrow link fills its queue, and
		// the loss that follows keeps the estimate low for seconds.
		budget = stats.Estimate - a.sub.audioRate()
	}
	if a.constrained {
		// What got through is a floor: right after a burst of loss the
		// loss-based estimate undershoots the link it just measured.
		budget = max(stats.Estimate, stats.AckedBitrate*9/10) - a.sub.audioRate()
	}
	a.lastBudget = budget
	tracks := make([]allocTrack, len(downs))
	for i, s := range downs {
		tracks[i] = allocTrack{priority: trackPriority(s.up, speakers), order: s.up.info.SID,
			options: trackOptions(s.up, s.settings), prev: s.alloc.prev}
	}
	p := allocate(budget, tracks)
	for i, s := range downs {
		a.apply(s, tracks[i], a.holdOff(s, tracks[i], p.choice[i]))
	}
	a.sub.p.e.stats.estimates.Observe(float64(stats.Estimate))
	if a.probeGoal > 0 && !a.probing { // the last probe's verdict
		switch {
		case stats.Estimate >= a.probeGoal:
			a.probeWait = probeInterval
		case stats.Estimate*10 >= a.probeFrom*11:
			// Short of the goal, but the link carried more than it was
			// thought to: try again as soon.
		default:
			a.probeWait = min(2*a.probeWait, maxProbeWait)
		}
		a.probeGoal = 0
	}
	a.logPlan(downs, tracks, p, stats, budget)
	switch {
	case !a.constrained:
	case p.short == 0:
		a.constrained = false
	case !a.probing && time.Since(a.lastProbe) > a.probeWait && p.next > 0:
		// Padding for the next upgrade, with its margin, on top of what
		// is sent: if it gets through, the estimate covers the upgrade.
		// At most twice the estimate in all: a bigger step would only
		// fill the queue of a link that has not got better.
		audio := a.sub.audioRate()
		rate := min(p.next*(upgradeMargin+10)/100, max(2*stats.Estimate-p.used-audio, 100_000))
		// Judged by what the upgrade needs, not by the probe's own excess.
		a.probeGoal, a.probeFrom = p.used+audio+p.next*upgradeMargin/100, stats.Estimate
		a.startProbe(downs, rate)
	}
}

// logPlan logs the allocation when a layer choice changed.
func (a *allocator) logPlan(downs []allocDown, tracks []allocTrack, p plan, stats bwe.Stats, budget int) {
	log := a.sub.p.log
	if !log.Enabled(context.Background(), slog.LevelDebug) {
		return
	}
	var b strings.Builder
	for i, s := range downs {
		if c := p.choice[i]; c >= 0 {
			o := tracks[i].options[c]
			fmt.Fprintf(&b, "%s:%d/%d ", s.up.info.SID, o.spatial, o.temporal)
		} else {
			fmt.Fprintf(&b, "%s:off ", s.up.info.SID)
		}
	}
	if text := b.String(); text != a.lastPlan {
		a.lastPlan = text
		log.Debug("allocation", "plan", text, "used", p.used, "estimate", stats.Estimate, "budget", budget, "acked", stats.AckedBitrate,
			"loss", stats.Loss, "delay", stats.DelayState.String(), "constrained", a.constrained, "probe_wait", a.probeWait)
	}
}

// hasOptions reports whether any track flows, so there is something to
// allocate.
func hasOptions(downs []allocDown) bool {
	for _, s := range downs {
		for _, l := range s.up.layers {
			if l.active.Load() {
				return true
			}
		}
	}
	return false
}

// pauseAfter is how many allocations in a row a track's cheapest option
// must not fit before it is paused: the estimate right after a burst of
// loss undershoots for a moment, and a pause costs a keyframe and a
// visible freeze.
const pauseAfter = 2

// holdOff turns a pause the plan asks for into the cheapest option until
// it has been asked for pauseAfter times in a row (at once when the budget
// is under half of that option).
func (a *allocator) holdOff(s allocDown, t allocTrack, choice int) int {
	if choice >= 0 || len(t.options) == 0 || s.alloc.paused.Load() {
		s.alloc.short = 0
		return choice
	}
	if a.ramping { // the initial estimate is a guess: it caps upgrades only
		return 0
	}
	s.alloc.short++
	if s.alloc.short < pauseAfter && a.lastBudget >= t.options[0].rate/2 {
		return 0
	}
	return choice
}

// apply sends track t of s its chosen option, and tells the subscriber
// when the track is paused for bandwidth or resumed.
func (a *allocator) apply(s allocDown, t allocTrack, choice int) {
	switch {
	case len(t.options) == 0: // disabled by the subscriber, or nothing flows
		s.alloc.prev = allocOption{spatial: -1}
		if s.settings.Disabled {
			s.setTarget(-1, -1)
		} else {
			s.setTarget(lowestFlowing(s.up), -1)
		}
		a.setPaused(s, false)
	case choice < 0:
		s.alloc.prev = allocOption{spatial: -1}
		s.setTarget(-1, -1)
		a.setPaused(s, true)
	default:
		o := t.options[choice]
		s.alloc.prev = o
		s.setTarget(o.spatial, o.temporal)
		a.setPaused(s, false)
	}
}

func (a *allocator) setPaused(s allocDown, paused bool) {
	if s.alloc.paused.Swap(paused) == paused {
		return
	}
	stats := a.sub.p.e.stats
	if paused && s.closed.Load() {
		// Removed since the plan was made: removeLocked already counted
		// it out (it marks the subscription closed first), so undo.
		if s.alloc.paused.Swap(false) {
			return
		}
	}
	if paused {
		stats.paused.Add(1)
		a.sub.p.events.StreamState(s.up.info.SID, room.StreamPaused, room.ReasonBandwidth)
		return
	}
	stats.paused.Add(-1)
	a.sub.p.events.StreamState(s.up.info.SID, room.StreamActive, "")
}

// startProbe sends rate bits per second of padding for probeDuration on
// the video tracks being sent, at their frame boundaries.
func (a *allocator) startProbe(downs []allocDown, rate int) {
	// Padding goes on the video tracks, those paused included: their
	// numbering is the server's.
	sending := make([]*subscription, 0, len(downs))
	for _, s := range downs {
		sending = append(sending, s.subscription)
	}
	if len(sending) == 0 {
		return
	}
	a.probing, a.lastProbe = true, time.Now()
	a.probes.Add(1)
	go func() {
		defer a.probes.Done()
		a.probe(sending, rate)
		a.run.Lock()
		a.probing = false
		a.run.Unlock()
	}()
}

func (a *allocator) probe(sending []*subscription, rate int) {
	t := time.NewTicker(probeTick)
	defer t.Stop()
	// Bytes owed accumulate exactly; whole packets are sent.
	perTick := float64(rate) / 8 * probeTick.Seconds()
	owedBytes, owed, sent := 0.0, 0, 0
	for end := time.Now().Add(probeDuration); time.Now().Before(end); <-t.C {
		if st := a.est.Stats(); st.DelayState == bwe.DelayOveruse || st.Loss > congestionLoss {
			break // the link is full: stop before it loses media
		}
		owedBytes += perTick
		owed += int(owedBytes / paddingSize)
		owedBytes -= float64(int(owedBytes/paddingSize) * paddingSize)
		for _, s := range sending {
			if owed == 0 || s.closed.Load() {
				continue
			}
			n := s.sendPadding(owed, paddingSize)
			owed -= n
			sent += n
		}
		owed = min(owed, maxPaddingBurst) // behind a long frame: don't burst
	}
	a.sub.p.stats.padding.Add(uint64(sent * paddingSize))
}

// trackPriority ranks a video track: screen shares first, then the
// cameras of active speakers, then the rest.
func trackPriority(up *UpTrack, speakers map[string]bool) int {
	switch {
	case up.info.Source == room.SourceScreen:
		return priorityScreen
	case speakers[up.info.ParticipantSID]:
		return prioritySpeaker
	}
	return priorityOther
}

// trackOptions lists the ways to send up that settings allow, cheapest
// first: each flowing spatial layer up to the preferred one, and under the
// lowest, its VP8 temporal layers.
func trackOptions(up *UpTrack, settings room.TrackSettings) []allocOption {
	if settings.Disabled {
		return nil
	}
	top := preferredLayer(up.info.Layers, settings)
	var opts []allocOption
	for s := 0; s <= top && s < len(up.layers); s++ {
		if !up.layers[s].active.Load() {
			continue
		}
		full := up.rate(s, -1)
		if len(opts) == 0 && up.vp8 { // temporal layers help only below the lowest spatial one
			for t := 0; t < maxTemporal-1; t++ {
				if r := up.rate(s, t); r > 0 && r < full*9/10 {
					opts = append(opts, allocOption{spatial: s, temporal: t, rate: r})
				}
			}
		}
		if len(opts) == 0 || full > opts[len(opts)-1].rate {
			opts = append(opts, allocOption{spatial: s, temporal: -1, rate: full})
		}
	}
	return opts
}

// preferredLayer is the highest spatial layer the subscriber wants: no
// better than its quality cap, and the smallest that covers its rendered
// size when the layers' sizes are known.
func preferredLayer(layers []room.Layer, settings room.TrackSettings) int {
	if len(layers) == 0 {
		return 0
	}
	top := len(layers) - 1
	if settings.MaxQuality != "" {
		rank := room.QualityRank(settings.MaxQuality)
		for top > 0 && room.QualityRank(layers[top].Quality) > rank {
			top--
		}
	}
	if settings.Width <= 0 && settings.Height <= 0 {
		return top
	}
	for i := 0; i < top; i++ {
		l := layers[i]
		if l.Width == 0 || l.Height == 0 {
			return top // sizes unknown: the cap decides
		}
		// 10% short still looks sharp, and saves a layer's worth of bits.
		if l.Width*10 >= settings.Width*9 && l.Height*10 >= settings.Height*9 {
			return i
		}
	}
	return top
}

// lowestFlowing is the lowest layer of up that flows, or 0.
func lowestFlowing(up *UpTrack) int {
	for i, l := range up.layers {
		if l.active.Load() {
			return i
		}
	}
	return 0
}
