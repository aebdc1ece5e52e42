package bwe

// Acknowledged bitrate: bytes the receiver reports by arrival time over the
// last ~500 ms of arrivals. It is summed per feedback packet, each
// covering the arrival span of the packets it reports, rather than in
// buckets of arrival time: a feedback packet lost on the way back (RTCP
// has no retransmission, and browsers never report a packet twice) then
// leaves out its span along with its bytes, instead of leaving a hole in
// the window that reads as the path slowing down and cuts the estimate
// for nothing.
const (
	ackedSamples   = 64
	ackedWindowUS  = 500_000
	ackedMinSpanUS = 200_000   // a rate over less than this is too noisy to act on
	ackedMaxAgeUS  = 2_000_000 // samples from feedback older than this are stale
	ackedMaxSpanUS = 5_000_000 // a longer span is a clock jump, not a measurement
)

type ackedSample struct {
	atUS   int64 // local time of the feedback
	spanUS int64 // arrival time the bytes took
	bytes  int64
}

type ackedRate struct {
	ring [ackedSamples]ackedSample
	next int
	n    int

	// The previous feedback's coverage, to bridge to the next one: when
	// a feedback starts where the last ended, the time between the last
	// arrival of one and the first of the next belongs to the next.
	cont          bool
	nextSeq       uint16
	lastArrivalUS int64
	hasArrival    bool

	// The feedback being summed.
	cur struct {
		startUS, endUS int64
		bytes          int64
		started        bool
	}
}

func (a *ackedRate) reset() { *a = ackedRate{} }

// begin starts a feedback covering count statuses from base.
func (a *ackedRate) begin(base uint16) {
	a.cur.bytes, a.cur.started = 0, false
	if a.cont && a.hasArrival && base == a.nextSeq {
		a.cur.startUS, a.cur.endUS, a.cur.started = a.lastArrivalUS, a.lastArrivalUS, true
	}
}

// add counts one newly acknowledged packet. Without a bridge from the
// previous feedback the first packet only opens the span: its bytes
// crossed the link before its arrival, in time the span does not cover.
func (a *ackedRate) add(arrivalUS int64, size int64) {
	if !a.cur.started {
		a.cur.startUS, a.cur.endUS, a.cur.started = arrivalUS, arrivalUS, true
		return
	}
	a.cur.bytes += size
	a.cur.startUS = min(a.cur.startUS, arrivalUS)
	a.cur.endUS = max(a.cur.endUS, arrivalUS)
}

// end closes the feedback (base and count as in begin) received at local
// time now.
func (a *ackedRate) end(base uint16, count int, nowUS int64) {
	span := a.cur.endUS - a.cur.startUS
	if a.cur.started && span > 0 && span <= ackedMaxSpanUS {
		a.ring[a.next] = ackedSample{atUS: nowUS, spanUS: span, bytes: a.cur.bytes}
		a.next = (a.next + 1) % ackedSamples
		a.n = min(a.n+1, ackedSamples)
	}
	// Only a feedback at or after the expected start moves the bridge on;
	// a late one for older packets stands alone.
	if !a.cont || int16(base-a.nextSeq) >= 0 {
		a.cont = true
		a.nextSeq = base + uint16(count)
		if a.cur.started {
			a.lastArrivalUS, a.hasArrival = a.cur.endUS, true
		}
	}
}

// rate returns bits per second over the newest samples, as of local time
// now, or false without enough recent data.
func (a *ackedRate) rate(nowUS int64) (int, bool) {
	var span, bytes int64
	for i := range a.n {
		s := a.ring[(a.next-1-i+ackedSamples)%ackedSamples]
		if nowUS-s.atUS > ackedMaxAgeUS {
			break
		}
		span += s.spanUS
		bytes += s.bytes
		if span >= ackedWindowUS {
			break
		}
	}
	if span < ackedMinSpanUS {
		return 0, false
	}
	return int(min(float64(bytes)*8e6/float64(span), 1e15)), true
}
