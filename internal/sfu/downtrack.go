package sfu

import (
	"sync/atomic"

	"github.com/pion/webrtc/v4"

	"github.com/quartet-rtc/quartet/internal/room"
)

// DownTrack forwards one UpTrack to one subscriber. forward runs on the up
// track's reader goroutine, which owns dropping and dropTS; writes happen on
// the subscriber's writer goroutine.
type DownTrack struct {
	up     *UpTrack
	peer   *Peer // the subscriber
	local  *boundTrack
	sender *webrtc.RTPSender

	closed       atomic.Bool
	needKeyframe atomic.Bool // video: drop until a keyframe starts

	dropping bool   // video: dropping the rest of frame dropTS
	dropTS   uint32 // owned by the up track's reader goroutine
}

// boundTrack is a TrackLocalStaticRTP that reports when pion binds it to a
// negotiated sender, the moment a subscriber can first receive packets.
type boundTrack struct {
	*webrtc.TrackLocalStaticRTP
	onBind func()
}

// Bind implements webrtc.TrackLocal.
func (b *boundTrack) Bind(ctx webrtc.TrackLocalContext) (webrtc.RTPCodecParameters, error) {
	c, err := b.TrackLocalStaticRTP.Bind(ctx)
	if err == nil {
		b.onBind()
	}
	return c, err
}

func newDownTrack(up *UpTrack, peer *Peer) (*DownTrack, error) {
	local, err := webrtc.NewTrackLocalStaticRTP(up.codec.RTPCodecCapability, up.info.SID, up.info.ParticipantSID)
	if err != nil {
		return nil, err
	}
	d := &DownTrack{up: up, peer: peer}
	d.needKeyframe.Store(up.video)
	d.local = &boundTrack{TrackLocalStaticRTP: local, onBind: d.onBind}
	return d, nil
}

// onBind restarts video at a keyframe: anything forwarded before the
// subscriber connection was negotiated went nowhere.
func (d *DownTrack) onBind() {
	if d.up.video {
		d.needKeyframe.Store(true)
		d.up.RequestKeyframe()
	}
}

func (d *DownTrack) info() room.TrackInfo { return d.up.info }

// forward queues pkt for the subscriber without ever blocking. It consumes
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
	if !d.peer.enqueue(d, pkt) {
		d.peer.stats.dropped.Add(1)
		if d.up.video { // the rest of the frame is useless now
			d.dropping, d.dropTS = true, pkt.hdr.Timestamp
		}
		pkt.release()
	}
}

// admitVideo decides whether a video packet may go to this subscriber.
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
			d.peer.stats.dropped.Add(1)
			return false
		}
		d.dropping = false
	}
	return true
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
		if !d.peer.enqueue(d, pkt) {
			pkt.release()
			return
		}
		d.peer.stats.retransmitted.Add(1)
	}
}
