package bwe

import "math"

// Loss-based control, after libwebrtc's classic SendSideBandwidthEstimation
// (draft-ietf-rmcat-gcc-02 section 6). The delay-based estimate cannot see
// a shallow-buffered or policed path, where packets are dropped before any
// queue builds, nor random loss (wireless); this one can.
const (
	lossHigh = 0.10 // above: cut by half the loss
	lossLow  = 0.02 // below: let the rate grow
	// Decide once at least this many packets were reported, or after a
	// second with a few. libwebrtc decides on 20, but then 1% random loss
	// shows as 15% once every thousand decisions, four times a second:
	// a cut every few minutes for nothing. Over 50 it is one in 10^5.
	lossMinPackets      = 50
	lossMinPacketsSlow  = 10
	lossSlowIntervalUS  = 1_000_000
	lossDecreaseBaseUS  = 300_000 // cut at most every 300 ms + RTT, so a cut is seen before the next
	lossGrowth          = 1.08    // per second, like the delay-based side
	lossGrowthExtraBpsS = 1_000
	// congestedLossBeta: with congestion loss, send this share of what got
	// through, so the full queue drains.
	congestedLossBeta = 0.95
)

type lossBased struct {
	estimate     float64
	received     int
	lost         int
	lastUpdate   int64 // local µs; math.MinInt64 before the first
	lastDecrease int64
	lastFraction float64
}

func newLossBased(initial float64) lossBased {
	return lossBased{estimate: initial, lastUpdate: math.MinInt64, lastDecrease: math.MinInt64}
}

// report adds the outcome of packets in one feedback. A packet first
// reported lost and then received (reordering) moves from lost to received.
func (l *lossBased) report(received, lost, recovered int) {
	l.received += received
	l.lost += lost
	if recovered > 0 {
		l.lost = max(l.lost-recovered, 0)
	}
}

// update decides on the packets reported since the last decision. current
// is the final estimate now: cuts and holds are relative to what we send,
// not to a loss-based figure that may have grown far above it unused.
// congested says the bottleneck's queue is standing full, so loss is its
// overflow: then even moderate loss cuts, to just under what got through
// (acked, 0 if unknown), where classic GCC would hold at a rate that keeps
// losing up to 10% for as long as it likes.
func (l *lossBased) update(nowUS, rttUS int64, current, acked float64, congested bool, lo, hi float64) {
	n := l.received + l.lost
	elapsed := int64(math.MaxInt64)
	if l.lastUpdate != math.MinInt64 {
		elapsed = nowUS - l.lastUpdate
	}
	if n < lossMinPackets && (n < lossMinPacketsSlow || elapsed < lossSlowIntervalUS) {
		return
	}
	frac := float64(l.lost) / float64(n)
	l.lastFraction = frac
	l.received, l.lost = 0, 0
	switch {
	case frac < lossLow:
		dt := 1.0
		if elapsed != math.MaxInt64 {
			dt = float64(min(max(elapsed, 0), 1_000_000)) / 1e6
		}
		l.estimate = l.estimate*math.Pow(lossGrowth, dt) + lossGrowthExtraBpsS*dt
	case frac <= lossHigh && !congested:
		l.estimate = min(l.estimate, current)
	default:
		l.estimate = min(l.estimate, current)
		if l.lastDecrease == math.MinInt64 || nowUS-l.lastDecrease >= lossDecreaseBaseUS+rttUS {
			if frac > lossHigh {
				l.estimate *= 1 - 0.5*frac
			}
			if congested && acked > 0 {
				l.estimate = min(l.estimate, congestedLossBeta*acked)
			}
			l.lastDecrease = nowUS
		}
	}
	l.estimate = min(max(l.estimate, lo), hi)
	l.lastUpdate = nowUS
}

// raise lifts the estimate to a rate the path just proved it carries (a
// probe), so earlier loss does not hold back a path that got better.
func (l *lossBased) raise(v float64) { l.estimate = max(l.estimate, v) }
