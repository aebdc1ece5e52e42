package bwe

import "math"

// AIMD rate control of the delay-based estimate, after libwebrtc's
// AimdRateControl (draft-ietf-rmcat-gcc-02 section 5.5).
const (
	aimdBeta = 0.85 // overuse: back off to this share of what got through
	// Far from the last congestion point grow 8% a second; near it grow by
	// about a packet per response time, so we probe gently where we know
	// the queue starts.
	multiplicativeGrowth = 1.08
	minMultIncreaseBps   = 1_000
	minAddIncreaseBpsPS  = 4_000 // additive growth, bps per second, at least
	responseExtraUS      = 100_000
	frameIntervalUS      = 33_333 // a 30 fps video frame, for the additive step
	mtuBytes             = 1200
	// Never grow beyond 1.5 × what the receiver acknowledges plus 10 kbps:
	// an estimate far above what the sender actually puts through is a
	// guess nobody checked.
	throughputCapFactor = 1.5
	throughputCapBps    = 10_000
	// Overuse cuts at most once per RTT (clamped to 10–200 ms) unless the
	// acked rate fell below half the estimate.
	minReduceIntervalUS = 10_000
	maxReduceIntervalUS = 200_000
	// Overuse before any acked rate: halve, at most every 200 ms.
	initialReduceIntervalUS = 200_000
)

type rcState uint8

const (
	rcHold rcState = iota
	rcIncrease
	rcDecrease
)

type aimd struct {
	min, max   float64
	current    float64
	state      rcState
	lastChange int64 // local µs of the last change of current
	link       linkCapacity
	throughput float64 // latest acked bitrate seen
}

func newAIMD(initial, lo, hi float64) aimd {
	return aimd{min: lo, max: hi, current: initial, state: rcIncrease, throughput: initial, lastChange: minTime}
}

func (a *aimd) clamp(v float64) float64 { return min(max(v, a.min), a.max) }

// setEstimate forces the estimate, for a probe result or the blind halving
// before any acked rate exists.
func (a *aimd) setEstimate(v float64, nowUS int64) {
	a.current = a.clamp(v)
	a.lastChange = nowUS
}

// timeToReduceFurther: one cut per round trip lets the previous one take
// effect before we judge again; a collapse of the acked rate cannot wait.
func (a *aimd) timeToReduceFurther(nowUS, rttUS int64, acked float64) bool {
	interval := min(max(rttUS, minReduceIntervalUS), maxReduceIntervalUS)
	if a.lastChange == minTime || nowUS-a.lastChange >= interval {
		return true
	}
	return acked < 0.5*a.current
}

// update applies one detector verdict. acked is the acknowledged bitrate,
// ok false while there is none yet; beta is the share of acked to back off
// to on overuse (aimdBeta, less with a deep standing queue).
func (a *aimd) update(s DelayState, acked float64, ok bool, nowUS, rttUS int64, beta float64) {
	if ok {
		a.throughput = acked
	}
	tp := a.throughput
	switch s {
	case DelayNormal:
		if a.state == rcHold {
			a.lastChange = nowUS
			a.state = rcIncrease
		}
	case DelayOveruse:
		a.state = rcDecrease
	case DelayUnderuse:
		// The queue is draining: wait for it to empty before growing.
		a.state = rcHold
	}
	next := a.current
	switch a.state {
	case rcIncrease:
		if tp > a.link.upperBound() {
			// Much more got through than where we last saw congestion:
			// the path changed, forget that point.
			a.link.reset()
		}
		limit := throughputCapFactor*tp + throughputCapBps
		if a.current < limit {
			var inc float64
			if a.link.has {
				inc = a.additiveIncrease(nowUS, rttUS)
			} else {
				inc = a.multiplicativeIncrease(nowUS)
			}
			next = min(a.current+inc, limit)
		}
		a.lastChange = nowUS
	case rcDecrease:
		dec := beta * tp
		if dec > a.current && a.link.has {
			dec = beta * a.link.estimate
		}
		if dec < a.current {
			next = dec
		}
		if tp < a.link.lowerBound() {
			a.link.reset()
		}
		a.link.onOveruse(tp)
		a.state = rcHold
		a.lastChange = nowUS
	}
	a.current = a.clamp(next)
}

func (a *aimd) multiplicativeIncrease(nowUS int64) float64 {
	alpha := multiplicativeGrowth
	if a.lastChange != minTime {
		dt := min(max(nowUS-a.lastChange, 0), 1_000_000)
		alpha = math.Pow(multiplicativeGrowth, float64(dt)/1e6)
	}
	return max(a.current*(alpha-1), minMultIncreaseBps)
}

func (a *aimd) additiveIncrease(nowUS, rttUS int64) float64 {
	if a.lastChange == minTime {
		return 0
	}
	dt := float64(min(max(nowUS-a.lastChange, 0), 1_000_000)) / 1e6
	return dt * a.nearMaxIncreasePerSecond(rttUS)
}

// nearMaxIncreasePerSecond is about one average packet of a 30 fps stream
// at the current rate per response time (RTT + 100 ms).
func (a *aimd) nearMaxIncreasePerSecond(rttUS int64) float64 {
	frameBits := a.current * frameIntervalUS / 1e6
	packets := math.Ceil(frameBits / (mtuBytes * 8))
	avgPacketBits := frameBits / max(packets, 1)
	response := float64(rttUS+responseExtraUS) / 1e6
	return max(minAddIncreaseBpsPS, avgPacketBits/response)
}

// linkCapacity remembers the acked rate at past overuse events (an
// exponential average and its deviation): the capacity where the queue
// started to build. Near it the AIMD grows additively.
type linkCapacity struct {
	estimate  float64 // bps
	deviation float64 // normalised variance, kbps
	has       bool
}

func (l *linkCapacity) reset() { *l = linkCapacity{} }

func (l *linkCapacity) upperBound() float64 {
	if !l.has {
		return math.Inf(1)
	}
	return l.estimate + 3*l.stddev()
}

func (l *linkCapacity) lowerBound() float64 {
	if !l.has {
		return 0
	}
	return max(0, l.estimate-3*l.stddev())
}

func (l *linkCapacity) stddev() float64 {
	return math.Sqrt(l.deviation*max(l.estimate/1000, 1)) * 1000
}

func (l *linkCapacity) onOveruse(acked float64) {
	const alpha = 0.05
	if !l.has {
		l.estimate, l.has = acked, true
	} else {
		l.estimate = (1-alpha)*l.estimate + alpha*acked
	}
	norm := max(l.estimate/1000, 1)
	errKbps := (l.estimate - acked) / 1000
	l.deviation = (1-alpha)*l.deviation + alpha*errKbps*errKbps/norm
	l.deviation = min(max(l.deviation, 0.4), 2.5)
}

// minTime marks a time not yet set.
const minTime = math.MinInt64
