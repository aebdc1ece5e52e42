package sfu

import (
	"sync/atomic"

	"github.com/quartet-rtc/quartet/internal/room"
)

// destination is where a down track's packets end up, on its writer's
// goroutine: a subscriber's PeerConnection track (subscription) or an
// in-process sink (sinkAttachment).
type destination interface {
	writeRTP(pkt *packet) error
	// senderReport gets the publisher's sender reports; only destinations
	// whose down track has reports set are sent them.
	senderReport(sr *room.SenderReport)
}

// DownTrack forwards one UpTrack to one destination. forward runs on the up
// track's reader goroutine, which owns dropping and dropTS; writes happen on
// the destination's writer goroutine.
type DownTrack struct {
	up      *UpTrack
	out     *writer
	dst     destination
	reports bool // the destination wants sender reports

	closed       atomic.Bool
	needKeyframe atomic.Bool // video: drop until a keyframe starts

	dropping bool   // video: dropping the rest of frame dropTS
	dropTS   uint32 // owned by the up track's reader goroutine
}

func newDownTrack(up *UpTrack, out *writer, dst destination) *DownTrack {
	d := &DownTrack{up: up, out: out, dst: dst}
	d.needKeyframe.Store(up.video)
	return d
}

// restartAtKeyframe makes video wait for the next keyframe and asks for one.
func (d *DownTrack) restartAtKeyframe() {
	if d.up.video {
		d.needKeyframe.Store(true)
		d.up.RequestKeyframe()
	}
}

func (d *DownTrack) info() room.TrackInfo { return d.up.info }

// forward queues pkt for the destination without ever blocking. It consumes
// one reference of pkt.
func (d *DownTrack) forward(pkt *packet) {
	if d.closed.Load() {
		pkt.release()
		return
	}
	if d.up.video && !d.admitVideo(pkt) {
		pkt.release()
		return
	}
	if !d.out.enqueue(queued{down: d, pkt: pkt}) {
		d.out.stats.dropped.Add(1)
		if d.up.video { // the rest of the frame is useless now
			d.dropping, d.dropTS = true, pkt.hdr.Timestamp
		}
		pkt.release()
	}
}

// admitVideo decides whether a video packet may go to this destination.
func (d *DownTrack) admitVideo(pkt *packet) bool {
	if d.needKeyframe.Load() {
		if !pkt.keyframe {
			d.up.RequestKeyframe()
			return false
		}
		d.needKeyframe.Store(false)
		d.dropping = false
	}
	if d.dropping {
		if pkt.hdr.Timestamp == d.dropTS {
			d.out.stats.dropped.Add(1)
			return false
		}
		d.dropping = false
	}
	return true
}

// senderReport queues a publisher's sender report, in order with the
// packets, for a destination that wants them. sr is shared, read-only.
func (d *DownTrack) senderReport(sr *room.SenderReport) {
	if !d.reports || d.closed.Load() {
		return
	}
	pkt := getPacket(d.up.pool)
	pkt.report = sr
	if !d.out.enqueue(queued{down: d, pkt: pkt}) {
		d.out.stats.dropped.Add(1)
		pkt.release()
	}
}

// retransmit queues the cached packets a subscriber reported lost.
func (d *DownTrack) retransmit(seqs []uint16) {
	if d.up.cache == nil {
		return
	}
	for _, seq := range seqs {
		pkt := getPacket(d.up.pool)
		n := d.up.cache.Get(seq, pkt.buf[:])
		if n == 0 || pkt.parse(n) != nil {
			pkt.release()
			continue
		}
		pkt.stripExtensions()
		if !d.out.enqueue(queued{down: d, pkt: pkt}) {
			pkt.release()
			return
		}
		d.out.stats.retransmitted.Add(1)
	}
}
