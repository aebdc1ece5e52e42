package bwe

// Standing queue estimate: one-way delay (remote arrival minus local send,
// so with an unknown clock offset) against its minimum over the last 20 s.
// The difference is how much the bottleneck's queue holds now. GCC's
// detector only sees the queue's growth, which is enough to stop it
// growing, not to drain a deep one (a bufferbloated home router, tc's
// default 1000-packet fifo): backing off to 0.85 × acked drains a second
// of queue in about six seconds of freezes. And with a shallow buffer the
// queue is full and flat, the detector says normal, and only the loss
// says anything: knowing the queue is full tells congestion loss from
// random loss.
const (
	owdBuckets  = 10
	owdBucketUS = 2_000_000
	// congestedQueueUS: a standing queue above this with loss means the
	// loss is the bottleneck's queue overflowing.
	congestedQueueUS = 20_000
	// drainTimeUS: on overuse, send so much less than acked that the
	// standing queue would empty in about this long.
	drainTimeUS = 1_000_000
	// minDrainFactor bounds that cut to half of acked.
	minDrainFactor = 0.5
)

type queueTracker struct {
	mins    [owdBuckets]int64
	head    int64 // bucket index (local µs / owdBucketUS)
	started bool
	queueUS int64 // standing queue at the last feedback
}

func (q *queueTracker) reset() { *q = queueTracker{} }

// update takes the smallest one-way delay of one feedback's packets (the
// queue that did not go away during it) at local time now.
func (q *queueTracker) update(nowUS, owdUS int64) {
	idx := floorDiv(nowUS, owdBucketUS)
	if !q.started || idx > q.head+owdBuckets || idx < q.head-owdBuckets {
		q.started = true
		for i := range q.mins {
			q.mins[i] = owdUS
		}
		q.head = idx
	}
	for ; q.head < idx; q.head++ {
		q.mins[floorMod(q.head+1, owdBuckets)] = owdUS
	}
	b := &q.mins[floorMod(idx, owdBuckets)]
	*b = min(*b, owdUS)
	base := q.mins[0]
	for _, m := range q.mins[1:] {
		base = min(base, m)
	}
	q.queueUS = max(owdUS-base, 0)
}

// drainFactor is the share of the acked rate to send on overuse: GCC's
// 0.85, or less when the standing queue is deep.
func (q *queueTracker) drainFactor() float64 {
	f := 1 - float64(q.queueUS)/drainTimeUS
	return min(max(f, minDrainFactor), aimdBeta)
}

func (q *queueTracker) congested() bool { return q.queueUS >= congestedQueueUS }
