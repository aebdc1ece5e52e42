// Package bwe estimates the bandwidth toward one subscriber connection from
// transport-wide congestion control feedback (send-side bandwidth
// estimation, GCC-like: draft-ietf-rmcat-gcc-02 as libwebrtc implements
// it).
//
// The SFU stamps a transport-wide sequence number on every packet it sends
// the subscriber and reports it with Sent; the subscriber's TWCC feedback
// says which arrived and when, and goes to Feedback. Two controllers read
// it: a delay-based one (burst groups, a trendline of the one-way delay
// variation, an overuse detector with an adaptive threshold, AIMD of the
// rate capped by what was acknowledged) and a loss-based one. The estimate
// is the lower of the two, within [Min, Max].
//
// Probing: padding marked probe counts toward the acknowledged rate like
// media. While probe packets are being acknowledged, the delay detector
// sees no overuse and loss is low, the estimate rises at once to the rate
// that got through, which is how a sender finds out the path got better
// faster than the 8% a second AIMD allows.
//
// Where it departs from libwebrtc's GCC, each for a failure the simulated
// link in the tests shows: the acknowledged rate is summed per feedback
// packet (a lost RTCP packet must not read as the path slowing down); a
// standing-queue estimate (one-way delay over its 20 s minimum) cuts
// deeper than 0.85 × acked when a bufferbloated queue needs draining, and
// turns moderate loss with a full queue into a cut instead of GCC's hold;
// loss decisions take 50 packets, not 20, so 1% random loss never looks
// like 15%.
//
// Why not pion/interceptor's gcc: it keeps its history in a container/list
// and attribute maps (allocations per packet on the forwarding path), runs
// its own pacer goroutine and reads time.Now, so it can be neither on our
// zero-allocation writer path nor tested in simulated time.
//
// An Estimator is safe for concurrent use: one mutex, held briefly. It has
// no goroutines and no package-level state.
package bwe

import (
	"sync"
	"time"

	"github.com/pion/rtcp"
)

// Config bounds an Estimator, in bits per second. Zero (or negative) fields
// take the defaults.
type Config struct{ Initial, Min, Max int }

// Defaults for Config's zero fields.
const (
	DefaultInitial = 800_000
	DefaultMin     = 50_000
	DefaultMax     = 20_000_000
)

// Stats is a snapshot for metrics and the allocator.
type Stats struct {
	Estimate     int // bps, the final estimate
	AckedBitrate int // bps the receiver acknowledged over its last ~500 ms of arrivals
	SendBitrate  int // bps sent over the last 500 ms, probes included
	ProbeBitrate int // bps of that which was probe padding
	Loss         float64
	DelayState   DelayState
	RTT          time.Duration
}

// Windows and timing.
const (
	sendWindowUS  = 500_000
	rateBucketUS  = 25_000
	rateMinSpanUS = 200_000 // a rate over less than this is too noisy to act on
	lossWindowUS  = 1_000_000
	lossBucketUS  = 100_000
	// No feedback for this long: the stream stopped, and delay history
	// from before says nothing about the path when it resumes.
	streamTimeoutUS = 2_000_000
	defaultRTTUS    = 100_000
	maxRTTSampleUS  = 10_000_000
	probeMaxLoss    = 0.10 // a probe result counts only with less loss than this
)

// Estimator is the bandwidth estimate of one connection.
type Estimator struct {
	mu  sync.Mutex
	cfg Config

	epoch   time.Time // local times are µs since the first call
	started bool

	hist      history
	sendRate  rateWindow // bytes by local send time
	probeRate rateWindow // probe bytes by local send time
	acked     ackedRate
	lossRecv  rateWindow // packets received, by local feedback time
	lossLost  rateWindow // packets lost, by local feedback time

	ref        refUnwrapper
	ia         interArrival
	trend      trendline
	queue      queueTracker
	rc         aimd
	lb         lossBased
	rttUS      int64
	hasRTT     bool
	lastFbUS   int64
	hasFb      bool
	lossRecent float64
	estimate   int
}

// New returns an Estimator at cfg.Initial.
func New(cfg Config) *Estimator {
	if cfg.Min <= 0 {
		cfg.Min = DefaultMin
	}
	if cfg.Max <= 0 {
		cfg.Max = DefaultMax
	}
	if cfg.Max < cfg.Min {
		cfg.Max = cfg.Min
	}
	if cfg.Initial <= 0 {
		cfg.Initial = DefaultInitial
	}
	cfg.Initial = min(max(cfg.Initial, cfg.Min), cfg.Max)
	e := &Estimator{
		cfg:       cfg,
		sendRate:  newRateWindow(sendWindowUS, rateBucketUS, rateMinSpanUS),
		probeRate: newRateWindow(sendWindowUS, rateBucketUS, rateMinSpanUS),
		lossRecv:  newRateWindow(lossWindowUS, lossBucketUS, 0),
		lossLost:  newRateWindow(lossWindowUS, lossBucketUS, 0),
		trend:     newTrendline(),
		rc:        newAIMD(float64(cfg.Initial), float64(cfg.Min), float64(cfg.Max)),
		lb:        newLossBased(float64(cfg.Initial)),
		rttUS:     defaultRTTUS,
		estimate:  cfg.Initial,
	}
	return e
}

// local converts a local time to the µs clock the history uses. The first
// time seen becomes the epoch.
func (e *Estimator) local(at time.Time) int64 {
	if !e.started {
		e.started = true
		e.epoch = at
	}
	return at.Sub(e.epoch).Microseconds()
}

// Sent records a packet sent with transport-wide sequence number seq: size
// is its bytes on the wire, probe marks padding sent to probe. It is called
// per packet on the writer path, so it takes the lock once, briefly, and
// never allocates.
func (e *Estimator) Sent(seq uint16, size int, at time.Time, probe bool) {
	if size < 0 {
		size = 0
	}
	e.mu.Lock()
	t := e.local(at)
	e.hist.add(seq, size, t, probe)
	e.sendRate.add(t, int64(size))
	if probe {
		e.probeRate.add(t, int64(size))
	} else {
		// Advance the probe window too, so its rate falls to zero
		// when probing stops rather than freezing at its last value.
		e.probeRate.add(t, 0)
	}
	e.mu.Unlock()
}

// Feedback processes one TWCC feedback packet received at local time at.
// Packets it reports that are not in the history (never sent, too old) are
// ignored; so are repeated reports of a packet already reported received,
// so duplicated or reordered feedback cannot inflate the acked rate.
func (e *Estimator) Feedback(fb *rtcp.TransportLayerCC, at time.Time) {
	if fb == nil {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	now := e.local(at)
	if e.hasFb && now-e.lastFbUS > streamTimeoutUS {
		e.ia.reset()
		e.trend = newTrendline()
	}
	e.lastFbUS, e.hasFb = now, true

	refUS := e.ref.unwrap(fb.ReferenceTime) * refTimeUnitUS
	it := newFBIter(fb, refUS)
	var received, lost, recovered int
	var probeAcked bool
	newestSend, hasNewest := int64(0), false
	minOWD, hasOWD := int64(0), false
	resets := e.ia.resets
	e.acked.begin(fb.BaseSequenceNumber)
	for {
		st, ok := it.next()
		if !ok {
			break
		}
		p := e.hist.get(st.seq)
		if p == nil {
			continue
		}
		if !st.received {
			if p.flags&(flagReceived|flagLost) == 0 {
				p.flags |= flagLost
				lost++
			}
			continue
		}
		if p.flags&flagReceived != 0 {
			continue // duplicate report
		}
		if p.flags&flagLost != 0 {
			recovered++
		}
		p.flags |= flagReceived
		received++
		if !hasNewest || p.sendUS > newestSend {
			newestSend, hasNewest = p.sendUS, true
		}
		if !st.hasArrival {
			continue
		}
		e.acked.add(st.arrivalUS, int64(p.size))
		if owd := st.arrivalUS - p.sendUS; !hasOWD || owd < minOWD {
			minOWD, hasOWD = owd, true
		}
		if p.flags&flagProbe != 0 {
			probeAcked = true
		}
		if sd, ad, ts, ok := e.ia.add(p.sendUS, st.arrivalUS, now, int(p.size)); ok {
			e.trend.update(float64(ad)/1000, float64(sd)/1000, float64(ts)/1000)
		}
	}
	e.acked.end(fb.BaseSequenceNumber, int(fb.PacketStatusCount), now)
	if received+lost+recovered == 0 {
		return
	}

	if hasNewest {
		// The newest packet acknowledged gives the shortest sample: it
		// waited least at the receiver for the feedback to go out.
		if s := now - newestSend; s >= 0 && s <= maxRTTSampleUS {
			if e.hasRTT {
				e.rttUS = (7*e.rttUS + s) / 8
			} else {
				e.rttUS, e.hasRTT = s, true
			}
		}
	}

	if e.ia.resets != resets {
		// The remote clock jumped: one-way delays and arrival spans
		// from before are on another scale.
		e.queue.reset()
		e.acked.reset()
	}
	if hasOWD {
		e.queue.update(now, minOWD)
	}
	acked, ackedOK := e.acked.rate(now)
	if !ackedOK {
		acked = 0
	}

	e.lossRecv.add(now, int64(received))
	e.lossLost.add(now, int64(lost-recovered))
	e.lossRecent = e.lossFraction()
	e.lb.report(received, lost, recovered)
	e.lb.update(now, e.rttUS, float64(e.estimate), float64(acked), e.queue.congested(), float64(e.cfg.Min), float64(e.cfg.Max))

	e.updateDelayBased(now, probeAcked, acked, ackedOK)

	e.estimate = int(min(max(min(e.rc.current, e.lb.estimate), float64(e.cfg.Min)), float64(e.cfg.Max)))
}

// updateDelayBased applies the detector's verdict to the AIMD, after
// libwebrtc's DelayBasedBwe::MaybeUpdateEstimate.
func (e *Estimator) updateDelayBased(now int64, probeAcked bool, acked int, ackedOK bool) {
	state := e.trend.state
	beta := e.queue.drainFactor()
	switch {
	case state == DelayOveruse:
		if ackedOK {
			if e.rc.timeToReduceFurther(now, e.rttUS, float64(acked)) {
				e.rc.update(state, float64(acked), true, now, e.rttUS, beta)
			}
		} else if e.rc.lastChange == minTime || now-e.rc.lastChange >= initialReduceIntervalUS {
			// Overuse before we know what gets through: halve blindly.
			e.rc.setEstimate(e.rc.current/2, now)
		}
	case probeAcked && ackedOK && float64(acked) > float64(e.estimate) && e.lossRecent < probeMaxLoss:
		// The path carried this much, probes included, without the
		// queue growing: that is a measurement, not a guess; take it.
		// Compared with the final estimate, not the delay-based one: after
		// a burst of loss the loss-based estimate is the lower, and a
		// probe must be able to lift it.
		if float64(acked) > e.rc.current {
			e.rc.setEstimate(float64(acked), now)
		}
		e.lb.raise(float64(acked))
	default:
		e.rc.update(state, float64(acked), ackedOK, now, e.rttUS, beta)
	}
}

func (e *Estimator) lossFraction() float64 {
	r, _ := e.lossRecv.sum()
	l, _ := e.lossLost.sum()
	if r+l <= 0 {
		return 0
	}
	return min(float64(l)/float64(r+l), 1)
}

// Estimate returns the current estimate in bits per second.
func (e *Estimator) Estimate() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.estimate
}

// Stats returns a snapshot. Rates are over their window up to the newest
// sample (the last packet sent, the last arrival reported), and 0 until a
// window holds enough to say.
func (e *Estimator) Stats() Stats {
	e.mu.Lock()
	defer e.mu.Unlock()
	acked, _ := e.acked.rate(e.lastFbUS)
	send, _ := e.sendRate.rate()
	probe, _ := e.probeRate.rate()
	return Stats{
		Estimate:     e.estimate,
		AckedBitrate: acked,
		SendBitrate:  send,
		ProbeBitrate: probe,
		Loss:         e.lossRecent,
		DelayState:   e.trend.state,
		RTT:          time.Duration(e.rttUS) * time.Microsecond,
	}
}
