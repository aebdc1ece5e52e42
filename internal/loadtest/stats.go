package loadtest

import (
	"math/bits"
	"time"
)

// seqTracker counts what arrived of one RTP stream: unique packets, the
// span of sequence numbers seen (so loss counts retransmitted packets as
// delivered), and packets that arrived after a later one.
type seqTracker struct {
	started    bool
	first      uint64 // extended sequence number of the first packet
	highest    uint64
	unique     int64
	outOfOrder int64
	duplicates int64
	window     [windowWords]uint64 // which of the last windowBits seqs arrived
}

const (
	windowWords = 16
	windowBits  = windowWords * 64
)

// add records sequence number seq.
func (t *seqTracker) add(seq uint16) {
	if !t.started {
		t.started = true
		t.first, t.highest = uint64(seq)+1<<16, uint64(seq)+1<<16 // room below for late packets
		t.unique = 1
		t.mark(t.highest)
		return
	}
	ext := t.extend(seq)
	switch {
	case ext > t.highest:
		for s := t.highest + 1; s < ext && s-t.highest <= windowBits; s++ {
			t.unmark(s) // clear bits reused from an older lap of the window
		}
		t.highest = ext
		t.unique++
		t.mark(ext)
	case t.highest-ext >= windowBits:
		// Too late to tell a duplicate; count it as a late arrival.
		t.outOfOrder++
	case t.marked(ext):
		t.duplicates++
	default:
		t.outOfOrder++
		t.unique++
		t.mark(ext)
		if ext < t.first {
			t.first = ext
		}
	}
}

// extend maps seq to the extended sequence number closest to highest.
func (t *seqTracker) extend(seq uint16) uint64 {
	delta := int64(int16(seq - uint16(t.highest)))
	return uint64(int64(t.highest) + delta)
}

func (t *seqTracker) mark(ext uint64)   { t.window[ext/64%windowWords] |= 1 << (ext % 64) }
func (t *seqTracker) unmark(ext uint64) { t.window[ext/64%windowWords] &^= 1 << (ext % 64) }
func (t *seqTracker) marked(ext uint64) bool {
	return t.window[ext/64%windowWords]&(1<<(ext%64)) != 0
}

// expected is how many packets the span of sequence numbers holds.
func (t *seqTracker) expected() int64 {
	if !t.started {
		return 0
	}
	return int64(t.highest-t.first) + 1
}

// lost is how many packets of the span never arrived.
func (t *seqTracker) lost() int64 { return max(t.expected()-t.unique, 0) }

// inFlightSlack allows for a packet arriving before its sender counted it:
// the count is taken after the write returns.
const inFlightSlack = 1024

// packetIndex returns which packet of its track (0 for the first) carries
// seq, given the track's first sequence number and how many packets it had
// counted when this one arrived. Sequence numbers repeat every 65,536
// packets; the newest index that fits is the right one, since a packet
// arrives within moments of being sent.
func packetIndex(firstSeq, seq uint16, counted int64) int64 {
	offset := int64(seq - firstSeq) // uint16 arithmetic wraps
	top := counted + inFlightSlack
	if top < offset {
		return offset
	}
	return offset + (top-offset)/(1<<16)*(1<<16)
}

// histogram records durations in log-linear buckets: 16 per power of two
// of microseconds, so percentiles are within about 6% at any scale and the
// memory is fixed however long the run.
type histogram struct {
	counts [64 * histSub]int64
	n      int64
	max    time.Duration
}

const histSub = 16

func histIndex(d time.Duration) int {
	us := uint64(max(d.Microseconds(), 0))
	if us < histSub {
		return int(us)
	}
	exp := bits.Len64(us) - 5 // us >> exp is in [16, 32)
	return exp*histSub + int(us>>exp)
}

// histLower is the smallest duration of bucket i.
func histLower(i int) time.Duration {
	if i < 2*histSub {
		return time.Duration(i) * time.Microsecond
	}
	exp := i/histSub - 1
	mant := i%histSub + histSub
	return time.Duration(uint64(mant)<<exp) * time.Microsecond
}

func (h *histogram) add(d time.Duration) {
	h.counts[histIndex(d)]++
	h.n++
	h.max = max(h.max, d)
}

func (h *histogram) merge(o *histogram) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.max = max(h.max, o.max)
}

// quantile returns the q-quantile (0..1), as the upper edge of its bucket.
func (h *histogram) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := int64(q*float64(h.n-1)) + 1
	var seen int64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			return min(histLower(i+1), h.max)
		}
	}
	return h.max
}
