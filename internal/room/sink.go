package room

import (
	"time"

	"github.com/pion/rtp"
)

// Sink consumes one published track inside the server: a recorder, an HLS
// muxer, a mixer, a relay to another node. It is the in-process sibling of
// a subscriber's PeerConnection and gets the same packets under the same
// rule: the media plane queues them for the sink (bounded, never blocking
// the publisher; what does not fit is dropped and counted, see
// Attachment.Dropped) and calls the sink from one goroutine of its own, in
// order. The sink may take its time in a call (write a file), at the cost
// of drops when it falls behind.
type Sink interface {
	// WriteRTP gets one packet, header parsed, header extensions removed.
	// pkt and its payload are shared with the track's other destinations
	// and only valid during the call: read them, never modify them, and
	// copy what is kept.
	WriteRTP(pkt *rtp.Packet, meta PacketMeta)
	// SenderReport gets the publisher's RTCP sender reports for the track,
	// in order with its packets: the NTP↔RTP timestamp mapping for lip sync.
	SenderReport(sr SenderReport)
	// Ended is the last call: the track was unpublished or the attachment
	// detached.
	Ended()
}

// PacketMeta is what the media plane knows of a packet beyond its bytes.
type PacketMeta struct {
	// Arrival is when the server read the packet from the publisher.
	Arrival time.Time
	// Keyframe marks the packet that starts a video keyframe (VP8, VP9,
	// H.264); the keyframe's other packets follow with the same timestamp.
	Keyframe bool
}

// SenderReport is one RTCP sender report of a track's publisher.
type SenderReport struct {
	SSRC uint32
	// NTPTime is the sender's wall clock (64-bit NTP format) at RTPTime.
	NTPTime     uint64
	RTPTime     uint32
	PacketCount uint32
	OctetCount  uint32
	// Arrival is when the server received the report.
	Arrival time.Time
}

// Codec is a track's negotiated codec.
type Codec struct {
	MimeType    string
	ClockRate   uint32
	Channels    uint16
	SDPFmtpLine string
	PayloadType uint8
}

// Attachment is one sink attached to a track.
type Attachment interface {
	// Track describes the track.
	Track() TrackInfo
	// Codec is the track's codec.
	Codec() Codec
	// RequestKeyframe asks the publisher for a keyframe (throttled per
	// track, as for PeerConnection subscribers).
	RequestKeyframe()
	// Dropped counts the packets not delivered because the sink's queue
	// was full.
	Dropped() uint64
	// Detach stops delivery; Ended follows on the sink's goroutine. It
	// does not wait, so a sink may call it from inside WriteRTP.
	Detach()
}

// TrackWatcher follows the tracks of one room as they are published and
// unpublished (see Manager.Watch). Its calls are made in order, with a
// room lock held: they must not block and must not call back into the room
// or the media plane (hand the work to a goroutine of the watcher's own).
type TrackWatcher interface {
	TrackAdded(t TrackInfo)
	TrackRemoved(t TrackInfo)
}
