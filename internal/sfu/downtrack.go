package sfu

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtp"

	"github.com/quartet-rtc/quartet/internal/room"
)

// destination is where a down track's packets end up, on its writer's
// goroutine: a subscriber's PeerConnection track (subscription) or an
// in-process sink (sinkAttachment).
type destination interface {
	// writeRTP sends out, the rewritten form of pkt; out is the writer's,
	// valid during the call.
	writeRTP(out *rtp.Packet, pkt *packet) error
	// senderReport gets the publisher's sender reports; only destinations
	// whose down track has reports set are sent them.
	senderReport(sr *room.SenderReport)
}

// DownTrack forwards one UpTrack to one destination: the layer its
// forwarder selected, rewritten into one continuous stream. forward runs on
// the up track's layer readers; writes happen on the destination's writer
// goroutine.
type DownTrack struct {
	up      *UpTrack
	out     *writer
	dst     destination
	reports bool // the destination wants sender reports

	closed atomic.Bool
	// gen mirrors the forwarder's generation for the writer, which drops
	// queued packets of an older one.
	gen atomic.Uint32
	// interest has bit i set for each layer whose packets forward must
	// look at (the one sent and the one wanted), so that packets of the
	// other layers are passed over without taking mu.
	interest atomic.Uint32

	// mu guards the forwarder and the drop state. It is taken by the up
	// track's layer readers, by NACK handling and by the allocator.
	mu       sync.Mutex
	fw       forwarder
	dropping bool   // video: dropping the rest of frame dropTS (queue full)
	dropTS   uint32 // in the destination's timestamps

	// alloc is the subscriber allocator's state for this track; only the
	// allocator touches it.
	alloc downAlloc
}

func newDownTrack(up *UpTrack, out *writer, dst destination, target int) *DownTrack {
	d := &DownTrack{up: up, out: out, dst: dst}
	d.fw = newForwarder(up.vp8, up.codec.ClockRate, target)
	d.alloc.prev.spatial = -1 // nothing chosen yet
	d.updateInterestLocked()
	return d
}

// updateInterestLocked recomputes interest from the forwarder. d.mu must
// be held (or d not yet shared).
func (d *DownTrack) updateInterestLocked() {
	var mask uint32
	if d.fw.cur >= 0 {
		mask |= 1 << d.fw.cur
	}
	if d.fw.tgt >= 0 {
		mask |= 1 << d.fw.tgt
	}
	if !d.up.video {
		mask = 1
	}
	d.interest.Store(mask)
}

// restartAtKeyframe makes video start afresh at the next keyframe of the
// target layer and asks for one; for a destination that has received
// nothing yet.
func (d *DownTrack) restartAtKeyframe() {
	if !d.up.video {
		return
	}
	d.mu.Lock()
	d.fw.restart()
	d.gen.Store(uint32(d.fw.gen))
	d.updateInterestLocked()
	tgt := d.fw.tgt
	d.mu.Unlock()
	d.requestKeyframe(tgt)
}

// requestKeyframe asks the publisher for a keyframe of layer, if any.
func (d *DownTrack) requestKeyframe(layer int) {
	if layer >= 0 && layer < len(d.up.layers) {
		d.up.layers[layer].requestKeyframe()
	}
}

// setTarget selects the layers to send (spatial -1 pauses), and asks for
// a keyframe when the spatial layer changes.
func (d *DownTrack) setTarget(spatial, temporal int) {
	d.mu.Lock()
	changed := spatial != d.fw.tgt
	d.fw.setTarget(spatial, temporal)
	d.updateInterestLocked()
	cur := d.fw.cur
	d.mu.Unlock()
	if changed && spatial != cur {
		d.requestKeyframe(spatial)
	}
}

// current returns the spatial layer being sent (-1 none) and the one wanted.
func (d *DownTrack) current() (cur, tgt int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.fw.cur, d.fw.tgt
}

func (d *DownTrack) info() room.TrackInfo { return d.up.info }

// forward queues pkt, a packet of layer, for the destination without ever
// blocking. It consumes one reference of pkt.
func (d *DownTrack) forward(pkt *packet, layer int) {
	if d.closed.Load() || d.interest.Load()&(1<<layer) == 0 {
		pkt.release()
		return
	}
	if !d.up.video { // audio passes through as it came
		d.enqueue(pkt, rewrite{seq: pkt.hdr.SequenceNumber, ts: pkt.hdr.Timestamp, layer: -1})
		return
	}
	d.mu.Lock()
	switches, cur := d.fw.switches, d.fw.cur
	rw, act := d.fw.admit(pkt, layer, time.Now)
	if d.fw.switches != switches {
		d.out.stats.switches.Add(1)
	}
	if d.fw.cur != cur {
		d.updateInterestLocked()
	}
	if act == actSend && d.dropping {
		if rw.ts == d.dropTS {
			act = actIgnore // the rest of a frame whose start was dropped
			d.out.stats.dropped.Add(1)
		} else {
			d.dropping = false
		}
	}
	d.mu.Unlock()
	switch act {
	case actSend:
		if !d.enqueue(pkt, rw) {
			d.mu.Lock()
			d.dropping, d.dropTS = true, rw.ts // the rest of the frame is useless now
			d.mu.Unlock()
		}
		return
	case actKeyframe:
		d.requestKeyframe(layer)
	}
	pkt.release()
}

// enqueue hands pkt to the writer, consuming one reference; false when the
// queue was full and the packet dropped.
func (d *DownTrack) enqueue(pkt *packet, rw rewrite) bool {
	if d.out.enqueue(queued{down: d, pkt: pkt, rw: rw}) {
		return true
	}
	d.out.stats.dropped.Add(1)
	pkt.release()
	return false
}

// senderReport queues a publisher's sender report of layer, in order with
// the packets, for a destination that wants them, its RTP time moved onto
// the timeline the destination sees. sr is shared, read-only.
func (d *DownTrack) senderReport(sr *room.SenderReport, layer int) {
	if !d.reports || d.closed.Load() {
		return
	}
	d.mu.Lock()
	cur, tsOff := d.fw.cur, d.fw.tsOff
	d.mu.Unlock()
	if d.up.video && layer != cur {
		return
	}
	if tsOff != 0 {
		moved := *sr
		moved.RTPTime += tsOff
		sr = &moved
	}
	pkt := getPacket(d.up.pool)
	pkt.report = sr
	if !d.out.enqueue(queued{down: d, pkt: pkt}) {
		d.out.stats.dropped.Add(1)
		pkt.release()
	}
}

// retransmit queues the packets a subscriber reported lost, by the
// sequence numbers it saw, from the cache of the layer each came from.
func (d *DownTrack) retransmit(seqs []uint16) {
	if !d.up.video {
		return
	}
	for _, seq := range seqs {
		d.mu.Lock()
		sent, ok := d.fw.lookup(seq)
		gen := d.fw.gen
		d.mu.Unlock()
		if !ok {
			continue
		}
		pkt := getPacket(d.up.pool)
		n := d.up.layers[sent.layer].cache.Get(sent.inSeq, pkt.buf[:])
		if n == 0 || pkt.parse(n) != nil {
			pkt.release()
			continue
		}
		pkt.stripExtensions()
		rw := rewrite{seq: sent.outSeq, ts: sent.ts, pic: sent.pic, tl0: sent.tl0, layer: sent.layer, gen: gen}
		if d.up.vp8 && pkt.parseVP8() {
			rw.vp8 = descriptorChanges(&pkt.vp8, sent.pic, sent.tl0)
		}
		if !d.enqueue(pkt, rw) {
			return
		}
		d.out.stats.retransmitted.Add(1)
	}
}

// maxPaddingBurst is the most padding packets sent at once.
const maxPaddingBurst = 16

// sendPadding queues up to n padding-only packets of size bytes each after
// the newest packet, if it ended a frame, and returns how many it queued.
func (d *DownTrack) sendPadding(n int, size uint8) int {
	var rws [maxPaddingBurst]rewrite
	d.mu.Lock()
	n = d.fw.padding(rws[:min(n, maxPaddingBurst)])
	d.mu.Unlock()
	for i := range n {
		pkt := getPacket(d.up.pool)
		pkt.padding = size
		if !d.enqueue(pkt, rws[i]) {
			return i
		}
	}
	return n
}
