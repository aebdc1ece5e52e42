package bwe

// historySize is the number of sent packets remembered, a power of two so a
// transport-wide sequence number maps to its slot with a mask. It has to
// cover everything in flight plus the receiver's feedback interval: 4096
// packets is about 2 s at 20 Mbps of 1200-byte packets and far more at the
// rates a subscriber usually gets. A fixed array (64 KiB) instead of a list
// or map is what keeps Sent free of allocations.
const historySize = 4096

// maxFeedbackAge bounds how old a packet may be when its feedback arrives.
// The seq check on each slot already rejects overwritten entries; this
// guards against a slot left untouched since the sequence space last
// wrapped (a sender that skips numbers) and against feedback so late that
// its delays say nothing about the path now.
const maxFeedbackAgeUS = 10_000_000

const (
	flagValid    uint8 = 1 << iota
	flagProbe          // padding sent to probe for bandwidth
	flagReceived       // feedback said it arrived; later reports are duplicates
	flagLost           // feedback said it was lost; a later report may still say it arrived
)

// sentPacket is one history slot: 16 bytes, no pointers, so the ring is
// never scanned by the garbage collector.
type sentPacket struct {
	sendUS int64 // departure, µs since the estimator's epoch (local clock)
	size   int32 // bytes on the wire
	seq    uint16
	flags  uint8
}

type history struct {
	ring       [historySize]sentPacket
	lastSendUS int64
}

func (h *history) add(seq uint16, size int, sendUS int64, probe bool) {
	flags := flagValid
	if probe {
		flags |= flagProbe
	}
	h.ring[seq&(historySize-1)] = sentPacket{sendUS: sendUS, size: int32(min(size, 1<<30)), seq: seq, flags: flags}
	if sendUS > h.lastSendUS {
		h.lastSendUS = sendUS
	}
}

// get returns the slot of seq, or nil when that packet is not (or no longer)
// in the history: a seq the remote made up, or one from long ago.
func (h *history) get(seq uint16) *sentPacket {
	p := &h.ring[seq&(historySize-1)]
	if p.flags&flagValid == 0 || p.seq != seq || h.lastSendUS-p.sendUS > maxFeedbackAgeUS {
		return nil
	}
	return p
}
