package bwe

import "github.com/pion/rtcp"

// Packet status symbols of transport-wide congestion control feedback
// (draft-holmer-rmcat-transport-wide-cc-extensions-01, section 3.1).
const (
	symNotReceived  = rtcp.TypeTCCPacketNotReceived
	symSmallDelta   = rtcp.TypeTCCPacketReceivedSmallDelta
	symLargeDelta   = rtcp.TypeTCCPacketReceivedLargeDelta
	symNoDeltaRecvd = rtcp.TypeTCCPacketReceivedWithoutDelta
)

// refTimeUnitUS is the unit of the feedback's 24-bit reference time.
const refTimeUnitUS = 64_000

// fbStatus is one packet's fate as a feedback packet reports it.
type fbStatus struct {
	seq        uint16
	received   bool
	hasArrival bool  // false for "received without delta": it came, but when is unknown
	arrivalUS  int64 // remote clock, valid when hasArrival
}

// fbIter walks a TransportLayerCC packet status by status, pairing each
// received status with its receive delta. It reads pion's structs in place
// instead of copying them into a list, so Feedback allocates nothing.
//
// The packet may come from rtcp.Unmarshal or be built in code (chunks are
// always pointers: Unmarshal has a pointer receiver), and it may be
// inconsistent: more statuses
// than chunks cover, fewer deltas than received statuses, nil entries. The
// walk stops at the first thing it cannot make sense of; what it reported
// before that is still right, because a delta only ever depends on the ones
// before it.
type fbIter struct {
	fb        *rtcp.TransportLayerCC
	remaining int    // statuses still to report (PacketStatusCount)
	seq       uint16 // seq of the next status
	chunk     int    // index into PacketChunks
	inChunk   int    // statuses of the current chunk already reported
	delta     int    // index into RecvDeltas
	arrivalUS int64  // running arrival time: reference time plus the deltas so far
}

func newFBIter(fb *rtcp.TransportLayerCC, refUS int64) fbIter {
	return fbIter{
		fb:        fb,
		remaining: int(fb.PacketStatusCount),
		seq:       fb.BaseSequenceNumber,
		arrivalUS: refUS,
	}
}

// chunkInfo returns the number of statuses a chunk holds and the symbol of
// its i-th status. A nil or unknown chunk holds none.
func chunkInfo(c rtcp.PacketStatusChunk, i int) (n int, sym uint16) {
	switch c := c.(type) {
	case *rtcp.RunLengthChunk:
		if c == nil {
			return 0, 0
		}
		return int(c.RunLength), c.PacketStatusSymbol & 3
	case *rtcp.StatusVectorChunk:
		if c == nil {
			return 0, 0
		}
		return vectorInfo(c.SymbolSize, c.SymbolList, i)
	}
	return 0, 0
}

func vectorInfo(size uint16, list []uint16, i int) (int, uint16) {
	if i >= len(list) {
		return len(list), 0
	}
	if size == rtcp.TypeTCCSymbolSizeOneBit {
		// One-bit symbols: 0 not received, 1 received with a small delta,
		// which is the same numbering as the two-bit ones.
		return len(list), list[i] & 1
	}
	return len(list), list[i] & 3
}

// next returns the next status, or false when the packet is exhausted or
// malformed from here on.
func (it *fbIter) next() (fbStatus, bool) {
	for it.remaining > 0 && it.chunk < len(it.fb.PacketChunks) {
		n, sym := chunkInfo(it.fb.PacketChunks[it.chunk], it.inChunk)
		if it.inChunk >= n {
			it.chunk++
			it.inChunk = 0
			continue
		}
		it.inChunk++
		it.remaining--
		st := fbStatus{seq: it.seq}
		it.seq++
		switch sym {
		case symNotReceived:
		case symNoDeltaRecvd:
			st.received = true
		default: // small or large delta
			if it.delta >= len(it.fb.RecvDeltas) || it.fb.RecvDeltas[it.delta] == nil {
				it.remaining = 0
				return fbStatus{}, false
			}
			it.arrivalUS += it.fb.RecvDeltas[it.delta].Delta
			it.delta++
			st.received, st.hasArrival, st.arrivalUS = true, true, it.arrivalUS
		}
		return st, true
	}
	return fbStatus{}, false
}

// refUnwrapper turns the feedback's 24-bit reference time into a
// continuous count, so arrival times stay monotonic across its wrap (every
// 12.4 days) and across feedback that arrives out of order.
type refUnwrapper struct {
	last    int64
	started bool
}

func (u *refUnwrapper) unwrap(ref uint32) int64 {
	ref &= 0xFFFFFF
	if !u.started {
		u.started = true
		u.last = int64(ref)
		return u.last
	}
	d := (int64(ref) - u.last) & 0xFFFFFF
	if d >= 1<<23 {
		d -= 1 << 24
	}
	u.last += d
	return u.last
}
