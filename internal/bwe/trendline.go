package bwe

import "math"

// Delay-gradient overuse detection, after libwebrtc's TrendlineEstimator
// (draft-ietf-rmcat-gcc-02 section 5.3 replaced the Kalman filter with this
// least-squares trend in libwebrtc, and so does pion's gcc less faithfully).
// Each group adds its one-way delay variation to an accumulated delay; the
// slope of the smoothed accumulated delay over arrival time is the queue's
// growth rate. A positive slope that stays above an adaptive threshold is
// overuse: the path's queue is filling, so we send faster than it drains.
const (
	trendWindow    = 20   // groups in the regression
	trendSmoothing = 0.9  // exponential smoothing of the accumulated delay
	trendGain      = 4.0  // scales the slope into the threshold's ms units
	trendMinDeltas = 60   // the slope is weighted by up to this many samples
	trendMaxDeltas = 1000 // cap on the sample count

	thresholdInitialMS = 12.5
	thresholdMinMS     = 6.0
	thresholdMaxMS     = 600.0
	thresholdKUp       = 0.0087 // adapt fast upward: a competing TCP flow must not starve us
	thresholdKDown     = 0.039  // and faster back down
	thresholdMaxGapMS  = 15.0   // ignore spikes this far above the threshold
	thresholdMaxStepMS = 100.0  // longest time step one threshold update integrates

	overuseTimeMS = 10.0 // overuse must last this long (send time) to count
)

// DelayState is the delay-based detector's verdict on the path's queue.
type DelayState uint8

// The detector's states. Normal lets the rate grow, Overuse cuts it, and
// Underuse (the queue draining) holds it so the queue can empty.
const (
	DelayNormal DelayState = iota
	DelayOveruse
	DelayUnderuse
)

func (s DelayState) String() string {
	switch s {
	case DelayOveruse:
		return "overuse"
	case DelayUnderuse:
		return "underuse"
	}
	return "normal"
}

type trendPoint struct{ x, y float64 } // arrival ms since the first group, smoothed delay ms

type trendline struct {
	numDeltas      int
	firstArrivalMS float64
	started        bool
	accDelayMS     float64
	smoothedMS     float64
	hist           [trendWindow]trendPoint
	histLen        int
	histNext       int
	prevTrend      float64
	modifiedTrend  float64

	thresholdMS   float64
	lastThreshMS  float64
	threshStarted bool
	overuseMS     float64 // time spent over the threshold; <0 when not
	overuseCount  int
	state         DelayState
}

func newTrendline() trendline {
	return trendline{thresholdMS: thresholdInitialMS, overuseMS: -1}
}

// update takes one group-to-group measurement: how much later the newer
// group arrived than it was sent relative to the older one, in ms.
func (t *trendline) update(arriveDeltaMS, sendDeltaMS, arrivalMS float64) {
	delta := arriveDeltaMS - sendDeltaMS
	t.numDeltas = min(t.numDeltas+1, trendMaxDeltas)
	if !t.started {
		t.started = true
		t.firstArrivalMS = arrivalMS
	}
	t.accDelayMS += delta
	t.smoothedMS = trendSmoothing*t.smoothedMS + (1-trendSmoothing)*t.accDelayMS

	t.hist[t.histNext] = trendPoint{x: arrivalMS - t.firstArrivalMS, y: t.smoothedMS}
	t.histNext = (t.histNext + 1) % trendWindow
	t.histLen = min(t.histLen+1, trendWindow)

	trend := t.prevTrend
	if t.histLen == trendWindow {
		if s, ok := t.slope(); ok {
			trend = s
		}
	}
	t.detect(trend, sendDeltaMS, arrivalMS)
}

// slope is the least-squares slope of the history.
func (t *trendline) slope() (float64, bool) {
	var sx, sy float64
	for i := range t.histLen {
		sx += t.hist[i].x
		sy += t.hist[i].y
	}
	mx, my := sx/float64(t.histLen), sy/float64(t.histLen)
	var num, den float64
	for i := range t.histLen {
		dx := t.hist[i].x - mx
		num += dx * (t.hist[i].y - my)
		den += dx * dx
	}
	if den == 0 || math.IsNaN(num/den) || math.IsInf(num/den, 0) {
		return 0, false
	}
	return num / den, true
}

func (t *trendline) detect(trend, sendDeltaMS, nowMS float64) {
	if t.numDeltas < 2 {
		t.state = DelayNormal
		return
	}
	modified := float64(min(t.numDeltas, trendMinDeltas)) * trend * trendGain
	t.modifiedTrend = modified
	switch {
	case modified > t.thresholdMS:
		if t.overuseMS < 0 {
			// Assume half of this send interval was already over.
			t.overuseMS = sendDeltaMS / 2
		} else {
			t.overuseMS += sendDeltaMS
		}
		t.overuseCount++
		// One high sample is noise; overuse needs it to last and to be
		// getting worse. Otherwise the state stays what it was.
		if t.overuseMS > overuseTimeMS && t.overuseCount > 1 && trend >= t.prevTrend {
			t.overuseMS = 0
			t.overuseCount = 0
			t.state = DelayOveruse
		}
	case modified < -t.thresholdMS:
		t.overuseMS = -1
		t.overuseCount = 0
		t.state = DelayUnderuse
	default:
		t.overuseMS = -1
		t.overuseCount = 0
		t.state = DelayNormal
	}
	t.prevTrend = trend
	t.updateThreshold(modified, nowMS)
}

// updateThreshold moves the threshold toward the trend's magnitude: up
// slowly, so a queue built by a competing loss-based flow (TCP) raises it
// and we are not starved, down faster, so we stay sensitive once it goes.
func (t *trendline) updateThreshold(modified, nowMS float64) {
	if !t.threshStarted {
		t.threshStarted = true
		t.lastThreshMS = nowMS
	}
	abs := math.Abs(modified)
	if abs > t.thresholdMS+thresholdMaxGapMS {
		// A spike (a route change, a burst of cross traffic) must not
		// drag the threshold up.
		t.lastThreshMS = nowMS
		return
	}
	k := thresholdKUp
	if abs < t.thresholdMS {
		k = thresholdKDown
	}
	step := min(max(nowMS-t.lastThreshMS, 0), thresholdMaxStepMS)
	t.thresholdMS += k * (abs - t.thresholdMS) * step
	t.thresholdMS = min(max(t.thresholdMS, thresholdMinMS), thresholdMaxMS)
	t.lastThreshMS = nowMS
}
