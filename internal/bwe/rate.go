package bwe

// maxBuckets bounds every rateWindow so the windows live inside the
// Estimator without allocation.
const maxBuckets = 40

// rateWindow sums a quantity (bytes, packets) over a sliding time window
// kept as fixed buckets. Adding is O(1) amortised and never allocates,
// which matters because Sent adds to one on every packet.
//
// The clock is the local one in µs (send times, feedback times). Samples a
// little older than the window are dropped; a sample far outside it either
// way means the caller's clock jumped (time.Time without a monotonic
// reading, a caller mixing clocks), and the window starts over rather than
// stay stuck on a time that will not come back.
type rateWindow struct {
	bucketUS int64
	n        int64 // buckets in the window
	minSpan  int64 // µs of data needed before rate reports anything
	buckets  [maxBuckets]int64
	head     int64 // bucket index (t / bucketUS) of the newest bucket
	firstUS  int64 // first sample since the window (re)started
	lastUS   int64 // newest sample
	lastV    int64 // and its value
	total    int64
	started  bool
}

// jumpUS is how far outside the window a sample must fall to count as a
// clock jump.
const jumpUS = 5_000_000

func newRateWindow(windowUS, bucketUS, minSpanUS int64) rateWindow {
	n := min(windowUS/bucketUS, maxBuckets)
	return rateWindow{bucketUS: bucketUS, n: n, minSpan: minSpanUS}
}

func (w *rateWindow) reset() {
	w.buckets = [maxBuckets]int64{}
	w.total = 0
	w.started = false
}

func (w *rateWindow) add(tUS, v int64) {
	idx := floorDiv(tUS, w.bucketUS)
	if w.started && (idx > w.head+w.n+jumpUS/w.bucketUS || idx < w.head-w.n-jumpUS/w.bucketUS) {
		w.reset()
	}
	if !w.started {
		w.started = true
		w.head = idx
		w.firstUS = tUS
		w.lastUS = tUS
		w.lastV = 0
	}
	if idx > w.head {
		for i := w.head + 1; i <= idx && i <= w.head+w.n; i++ {
			b := &w.buckets[floorMod(i, w.n)]
			w.total -= *b
			*b = 0
		}
		w.head = idx
	}
	if idx <= w.head-w.n {
		return // older than the window
	}
	w.buckets[floorMod(idx, w.n)] += v
	w.total += v
	if tUS >= w.lastUS {
		w.lastUS, w.lastV = tUS, v
	}
	if tUS < w.firstUS {
		w.firstUS = tUS
	}
}

// sum returns the total over the window and the µs it spans: from the start
// of the oldest bucket still in it (or the first sample, if later) to the
// newest sample.
func (w *rateWindow) sum() (total, spanUS int64) {
	if !w.started {
		return 0, 0
	}
	start := max((w.head-w.n+1)*w.bucketUS, w.firstUS)
	return max(w.total, 0), w.lastUS - start
}

// rate returns bits per second when the window holds bytes, or false until
// it has seen minSpan of data. The newest sample is left out: it marks the
// end of the span, and its bytes crossed the link before that moment, as
// every other packet's did before its own. Counting it too overstates a
// 10-packet-a-second flow by a fifth over 500 ms.
func (w *rateWindow) rate() (int, bool) {
	total, span := w.sum()
	if span < w.minSpan || span <= 0 {
		return 0, false
	}
	return int(min(float64(max(total-w.lastV, 0))*8e6/float64(span), 1e15)), true
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

func floorMod(a, b int64) int64 {
	m := a % b
	if m < 0 {
		m += b
	}
	return m
}
