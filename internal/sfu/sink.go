package sfu

import (
	"fmt"
	"sync"

	"github.com/pion/rtp"

	"github.com/quartet-rtc/quartet/internal/room"
)

// sinkAttachment is a down track whose destination is an in-process
// room.Sink. It has a writer of its own, so a slow sink delays only itself.
type sinkAttachment struct {
	down  *DownTrack
	sink  room.Sink
	out   *writer
	stats peerStats
	once  sync.Once
}

// Attach implements room.Media.
func (e *Engine) Attach(roomName, trackSID string, sink room.Sink) (room.Attachment, error) {
	e.mu.Lock()
	r, ok := e.routers[roomName]
	closed := e.closed
	if !closed && ok {
		e.sinks.Add(1) // under e.mu, so that Close, which sets closed under it, waits for this sink
	}
	e.mu.Unlock()
	if closed {
		return nil, errEngineClosed
	}
	if !ok {
		return nil, fmt.Errorf("%w: %s", room.ErrUnknownRoom, roomName)
	}
	a, err := e.attach(r, trackSID, sink)
	if err != nil {
		e.sinks.Done()
	}
	return a, err
}

// attach attaches sink to a track of r; e.sinks was counted for it.
func (e *Engine) attach(r *Router, trackSID string, sink room.Sink) (room.Attachment, error) {
	ups, _ := r.upTracks([]string{trackSID})
	if len(ups) == 0 || ups[0].ended.Load() {
		return nil, fmt.Errorf("%w: %s", room.ErrUnknownTrack, trackSID)
	}
	up := ups[0]
	a := &sinkAttachment{sink: sink}
	a.out = newWriter(e.cfg.SubscriberQueue, &a.stats)
	// A sink (a recorder) takes the best layer there is.
	a.down = newDownTrack(up, a.out, a, len(up.layers)-1)
	a.down.reports = true
	a.down.alloc.want.Store(int32(len(up.layers) - 1))
	if !r.addSink(a) {
		return nil, fmt.Errorf("%w: %s", room.ErrUnknownTrack, trackSID)
	}
	a.out.start(func() {
		sink.Ended()
		r.removeSink(a)
		r.retire(&a.stats)
		e.sinks.Done()
	})
	up.sinks.Add(1)
	up.addDown(a.down)
	// Detached meanwhile (the track was unpublished, or the engine is
	// closing): the down track must not stay on the up track's list.
	if up.ended.Load() {
		a.Detach()
	}
	if a.down.closed.Load() {
		up.removeDown(a.down)
	}
	up.RequestKeyframe()
	return a, nil
}

// writeRTP implements destination.
func (a *sinkAttachment) writeRTP(out *rtp.Packet, pkt *packet) error {
	a.sink.WriteRTP(out, room.PacketMeta{Arrival: pkt.arrival, Keyframe: pkt.keyframe})
	return nil
}

// senderReport implements destination.
func (a *sinkAttachment) senderReport(sr *room.SenderReport) { a.sink.SenderReport(*sr) }

// Track implements room.Attachment.
func (a *sinkAttachment) Track() room.TrackInfo { return a.down.up.info }

// Codec implements room.Attachment.
func (a *sinkAttachment) Codec() room.Codec {
	c := a.down.up.codec
	return room.Codec{MimeType: c.MimeType, ClockRate: c.ClockRate, Channels: c.Channels,
		SDPFmtpLine: c.SDPFmtpLine, PayloadType: uint8(c.PayloadType)}
}

// RequestKeyframe implements room.Attachment.
func (a *sinkAttachment) RequestKeyframe() { a.down.up.RequestKeyframe() }

// Dropped implements room.Attachment.
func (a *sinkAttachment) Dropped() uint64 { return a.stats.dropped.Load() }

// Detach implements room.Attachment.
func (a *sinkAttachment) Detach() {
	a.once.Do(func() {
		a.down.closed.Store(true)
		a.down.up.removeDown(a.down)
		a.down.up.sinks.Add(-1)
		a.out.stop()
	})
}

// addSink records a; false if its track was unpublished already.
func (r *Router) addSink(a *sinkAttachment) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ups[a.down.up.info.SID] != a.down.up {
		return false
	}
	r.sinks[a] = struct{}{}
	return true
}

func (r *Router) removeSink(a *sinkAttachment) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.sinks, a)
}

// sinksOf lists the sinks attached to up.
func (r *Router) sinksOf(up *UpTrack) []*sinkAttachment {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*sinkAttachment
	for a := range r.sinks {
		if a.down.up == up {
			out = append(out, a)
		}
	}
	return out
}

// allSinks lists every sink of the room.
func (r *Router) allSinks() []*sinkAttachment {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]*sinkAttachment, 0, len(r.sinks))
	for a := range r.sinks {
		out = append(out, a)
	}
	return out
}

// followTopLayer points the sink at the best layer that flows: the top
// one may not come (the publisher's uplink, or an encoder that never sent
// it), and a recorder must not be left without video.
func (a *sinkAttachment) followTopLayer() {
	up := a.down.up
	top := len(up.layers) - 1
	for top > 0 && !up.layers[top].active.Load() {
		top--
	}
	if _, tgt := a.down.current(); tgt != top {
		a.down.setTarget(top, -1)
	}
}
