package sfu

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtp"

	"github.com/quartet-rtc/quartet/internal/room"
	"github.com/quartet-rtc/quartet/internal/sfu/vp8"
)

// packet is one RTP packet shared read-only by every subscriber it is
// forwarded to. The last holder to release it returns it to the pool, so
// forwarding does not allocate in steady state.
type packet struct {
	buf      [maxPacketSize]byte
	hdr      rtp.Packet // parsed from buf; Payload points into buf
	keyframe bool
	// vp8 is the payload descriptor of a VP8 packet, parsed once for every
	// down track (hasVP8).
	vp8    vp8.Descriptor
	hasVP8 bool
	// padding makes this a padding-only packet of padding bytes, sent to
	// probe a subscriber's bandwidth; buf and hdr are unused then.
	padding uint8
	arrival time.Time // when the publisher's packet was read
	// report, if set, makes this a sender report for a sink rather than
	// media (DownTrack.senderReport); buf and hdr are unused then.
	report *room.SenderReport
	refs   atomic.Int32
	pool   *sync.Pool
}

func newPacketPool() *sync.Pool {
	p := &sync.Pool{}
	p.New = func() any { return &packet{pool: p} }
	return p
}

func getPacket(pool *sync.Pool) *packet {
	pkt := pool.Get().(*packet)
	pkt.refs.Store(1)
	pkt.keyframe = false
	pkt.hasVP8 = false
	pkt.padding = 0
	pkt.arrival = time.Time{}
	pkt.report = nil
	return pkt
}

// parse reads the RTP packet in buf[:n]; Payload points into buf.
func (p *packet) parse(n int) error { return p.hdr.Unmarshal(p.buf[:n]) }

// stripExtensions removes header extensions before forwarding: their ids
// were negotiated with the publisher and mean nothing to subscribers.
func (p *packet) stripExtensions() {
	p.hdr.Extension = false
	p.hdr.ExtensionProfile = 0
	p.hdr.Extensions = p.hdr.Extensions[:0]
}

// parseVP8 reads the VP8 payload descriptor into p.vp8.
func (p *packet) parseVP8() bool {
	p.hasVP8 = vp8.Parse(p.hdr.Payload, &p.vp8) == nil
	return p.hasVP8
}

func (p *packet) retain(n int32) { p.refs.Add(n) }

func (p *packet) release() {
	if p.refs.Add(-1) == 0 {
		p.pool.Put(p)
	}
}
