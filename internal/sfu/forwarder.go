package sfu

import (
	"time"

	"github.com/quartet-rtc/quartet/internal/sfu/vp8"
)

// histSize is how many sent packets a down track remembers to answer
// NACKs: about 3 s of a 1.7 Mbit/s layer. A power of two.
const histSize = 512

// maxRanges is how many sequence-number offset changes a down track
// remembers, for packets that arrive out of order after a drop.
const maxRanges = 16

// rewrite is how one forwarded packet appears to its destination.
type rewrite struct {
	ts  uint32
	seq uint16
	pic uint16 // VP8 picture id, when vp8 is set
	tl0 uint8  // VP8 TL0PICIDX, when vp8 is set
	vp8 bool   // the VP8 payload descriptor must be rewritten with pic and tl0
	// layer is the spatial layer the packet came from; -1 for audio and
	// padding.
	layer int8
	// gen is the forwarder's generation when the packet was numbered: a
	// packet still queued from before a fresh restart is not sent.
	gen uint8
}

// sentPacket is what a down track remembers of a packet it sent, to map a
// subscriber's NACK back to the packet cache of the right layer.
type sentPacket struct {
	ts     uint32
	outSeq uint16
	inSeq  uint16
	pic    uint16
	tl0    uint8
	layer  int8 // -1: nothing (or padding) was sent with outSeq
}

// seqRange says that packets from sequence number from on (up to the next
// range) get offset off.
type seqRange struct{ from, off uint16 }

// action is what forward does with a packet the forwarder looked at.
type action int

const (
	actIgnore   action = iota // not for this down track (another layer, paused, duplicate)
	actSend                   // send it, rewritten
	actDrop                   // dropped on purpose (a temporal layer not sent): hidden from the subscriber
	actKeyframe               // the target layer is waited for: ask its publisher for a keyframe
)

// forwarder is a down track's layer selection and rewrite state. Its
// destination sees one continuous stream whatever layer it gets:
// sequence numbers contiguous across switches and intentional drops (a
// gap is real loss, which the destination may NACK), timestamps
// continuous, and for VP8 picture ids and TL0PICIDX continuous. It is
// guarded by DownTrack.mu.
type forwarder struct {
	vp8       bool // VP8: rewrite picture ids, filter temporal layers
	clockRate uint32

	started    bool  // something was sent: later starts continue its numbering
	gen        uint8 // counts fresh restarts
	cur, tgt   int   // spatial layer sent and wanted; -1 none / paused
	curT, tgtT int   // VP8 temporal layer sent and wanted

	seqOff  uint16
	ranges  [maxRanges]seqRange // oldest first; the last holds seqOff
	nRanges int
	lastIn  uint16 // the newest sequence number of layer cur looked at
	lastOut uint16

	tsOff     uint32
	lastOutTS uint32
	lastTSAt  time.Time // when lastOutTS was first sent

	picOff, lastOutPic uint16
	tl0Off             uint8
	lastOutTL0         uint8
	lastDropPic        uint16
	dropPicValid       bool

	atFrameEnd bool   // the newest packet sent ended a frame: padding may follow
	switches   uint64 // spatial layer switches, for the metric

	hist [histSize]sentPacket
}

func newForwarder(vp8 bool, clockRate uint32, target int) forwarder {
	f := forwarder{vp8: vp8, clockRate: clockRate, cur: -1, tgt: target, curT: maxTemporal - 1, tgtT: maxTemporal - 1}
	for i := range f.hist {
		f.hist[i].layer = -1
	}
	return f
}

// admit decides what to do with a packet of layer and how it is rewritten.
func (f *forwarder) admit(p *packet, layer int, now func() time.Time) (rewrite, action) {
	if f.tgt < 0 {
		return rewrite{}, actIgnore
	}
	if layer != f.cur {
		if layer != f.tgt {
			return rewrite{}, actIgnore
		}
		if !p.keyframe {
			return rewrite{}, actKeyframe
		}
		f.switchTo(p, layer, now())
	}
	in := p.hdr.SequenceNumber
	diff := int16(in - f.lastIn)
	if diff == 0 {
		return rewrite{}, actIgnore // a duplicate
	}
	newest := diff > 0
	var off uint16
	if newest {
		f.lastIn = in
		// A publisher's padding (its own bandwidth probe) carries nothing
		// for the subscriber, and a temporal layer above the one sent is
		// not wanted.
		if len(p.hdr.Payload) == 0 || f.temporalDrop(p) {
			f.dropped(in, p)
			return rewrite{}, actDrop
		}
		off = f.seqOff
	} else {
		var ok bool
		if off, ok = f.offsetFor(in); !ok || f.temporalDropLate(p) {
			return rewrite{}, actIgnore
		}
	}
	rw := rewrite{seq: in + off, ts: p.hdr.Timestamp + f.tsOff, layer: int8(layer), gen: f.gen}
	if f.vp8 && p.hasVP8 {
		rw.pic = p.vp8.PictureID + f.picOff
		rw.tl0 = p.vp8.TL0PICIDX + f.tl0Off
		rw.vp8 = descriptorChanges(&p.vp8, rw.pic, rw.tl0)
	}
	if newest {
		f.sent(rw, f.vp8 && p.hasVP8, p.hdr.Marker, now)
	}
	f.hist[rw.seq%histSize] = sentPacket{ts: rw.ts, outSeq: rw.seq, inSeq: in, pic: rw.pic, tl0: rw.tl0, layer: int8(layer)}
	return rw, actSend
}

// sent records the newest packet sent; hasVP8 says its VP8 ids are in rw.
func (f *forwarder) sent(rw rewrite, hasVP8, marker bool, now func() time.Time) {
	f.lastOut = rw.seq
	if rw.ts != f.lastOutTS || f.lastTSAt.IsZero() {
		f.lastOutTS, f.lastTSAt = rw.ts, now()
	}
	if hasVP8 {
		f.lastOutPic, f.lastOutTL0 = rw.pic, rw.tl0
	}
	f.atFrameEnd = marker
}

// switchTo starts sending layer at its keyframe p, continuing the numbering
// of what was sent before.
func (f *forwarder) switchTo(p *packet, layer int, now time.Time) {
	in := p.hdr.SequenceNumber
	if f.started {
		f.seqOff = f.lastOut + 1 - in
		// The new layer's clock has its own origin: continue from the last
		// timestamp sent, advanced by the time since.
		delta := uint32(max(1, now.Sub(f.lastTSAt).Seconds()*float64(f.clockRate)))
		f.tsOff = f.lastOutTS + delta - p.hdr.Timestamp
		if p.hasVP8 {
			f.picOff = f.lastOutPic + 1 - p.vp8.PictureID
			f.tl0Off = f.lastOutTL0 + 1 - p.vp8.TL0PICIDX
		}
	}
	f.started = true
	if f.cur >= 0 && f.cur != layer {
		f.switches++
	}
	f.cur, f.curT = layer, f.tgtT
	f.lastIn = in - 1
	f.ranges[0], f.nRanges = seqRange{from: in, off: f.seqOff}, 1
	f.dropPicValid = false
}

// temporalDrop reports whether a VP8 packet is of a temporal layer above
// the one sent, switching the temporal layer at frame starts that allow
// it: down at any frame, up at a base-layer frame or a layer sync.
func (f *forwarder) temporalDrop(p *packet) bool {
	if !f.vp8 || !p.hasVP8 || !p.vp8.HasTID {
		return false
	}
	d := &p.vp8
	if d.FrameStart() {
		switch {
		case f.tgtT < f.curT:
			f.curT = f.tgtT
		case f.tgtT > f.curT && (d.TID == 0 || (d.LayerSync && int(d.TID) <= f.tgtT)):
			f.curT = f.tgtT
		}
	}
	return int(d.TID) > f.curT
}

// temporalDropLate is temporalDrop for a packet that arrived out of order:
// no switch happens on it.
func (f *forwarder) temporalDropLate(p *packet) bool {
	return f.vp8 && p.hasVP8 && p.vp8.HasTID && int(p.vp8.TID) > f.curT
}

// dropped hides the in-order packet in from the destination: the packets
// after it are numbered one lower, and a dropped frame's picture id is
// given to the next frame sent.
func (f *forwarder) dropped(in uint16, p *packet) {
	f.seqOff--
	f.pushRange(in+1, f.seqOff, true)
	if p.hasVP8 && (!f.dropPicValid || p.vp8.PictureID != f.lastDropPic) {
		f.picOff--
		f.lastDropPic, f.dropPicValid = p.vp8.PictureID, true
	}
}

// pushRange records that packets from from on get offset off. afterDrop
// says the packet before from was dropped: a range that began with it is
// replaced, since no packet was sent with its offset.
func (f *forwarder) pushRange(from, off uint16, afterDrop bool) {
	if last := &f.ranges[f.nRanges-1]; last.from == from || (afterDrop && last.from == from-1) {
		last.from, last.off = from, off
		return
	}
	if f.nRanges == maxRanges {
		copy(f.ranges[:], f.ranges[1:])
		f.nRanges--
	}
	f.ranges[f.nRanges] = seqRange{from: from, off: off}
	f.nRanges++
}

// offsetFor finds the offset of a packet older than the newest: false if
// it is older than every range remembered.
func (f *forwarder) offsetFor(in uint16) (uint16, bool) {
	for i := f.nRanges - 1; i >= 0; i-- {
		if int16(in-f.ranges[i].from) >= 0 {
			return f.ranges[i].off, true
		}
	}
	return 0, false
}

// restart makes the target layer start again at a keyframe, as a new
// stream: its destination has seen nothing yet (a subscription just bound
// to its connection), so there is no numbering to continue, and a track
// without simulcast keeps its publisher's numbers. What was numbered
// before, and may still be queued, belongs to an older generation.
func (f *forwarder) restart() { f.cur, f.started, f.gen = -1, false, f.gen+1 }

// setTarget selects the spatial and temporal layer to send; -1 pauses.
// A temporal layer below 0 means all of them.
func (f *forwarder) setTarget(spatial, temporal int) {
	if temporal < 0 || temporal >= maxTemporal {
		temporal = maxTemporal - 1
	}
	f.tgt, f.tgtT = spatial, temporal
	if spatial < 0 {
		f.cur = -1
	}
}

// padding numbers len(rws) padding-only packets to send after the newest
// packet: at a frame boundary only while a layer is sent, so that no
// frame gets a hole, at any time while paused. It returns how many it
// numbered (0 in the middle of a frame), their rewrites in rws.
func (f *forwarder) padding(rws []rewrite) int {
	switch {
	case !f.started: // nothing sent yet: the padding starts the numbering
		f.started, f.lastTSAt = true, time.Now()
		f.ranges[0], f.nRanges = seqRange{from: f.lastIn + 1, off: f.seqOff}, 1
	case f.cur >= 0 && !f.atFrameEnd:
		return 0
	}
	for i := range rws {
		f.lastOut++
		f.seqOff++
		rws[i] = rewrite{seq: f.lastOut, ts: f.lastOutTS, layer: -1, gen: f.gen}
		f.hist[f.lastOut%histSize] = sentPacket{outSeq: f.lastOut, layer: -1}
	}
	f.pushRange(f.lastIn+1, f.seqOff, false)
	return len(rws)
}

// lookup maps a sequence number the destination NACKed to what was sent.
func (f *forwarder) lookup(outSeq uint16) (sentPacket, bool) {
	s := f.hist[outSeq%histSize]
	return s, s.layer >= 0 && s.outSeq == outSeq
}

// descriptorChanges reports whether writing pic and tl0 into a VP8
// descriptor changes it: when not (a stream without switches or dropped
// frames), the shared payload is sent as it is, without a copy.
func descriptorChanges(d *vp8.Descriptor, pic uint16, tl0 uint8) bool {
	mask := uint16(0x7FFF)
	if d.PictureIDLen == 1 {
		mask = 0x7F
	}
	return (d.HasPictureID && pic&mask != d.PictureID&mask) || (d.HasTL0PICIDX && tl0 != d.TL0PICIDX)
}
