package sfu

import (
	"slices"
	"sync/atomic"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/quartet-rtc/quartet/internal/room"
)

// subscription is a down track whose destination is a track of a
// subscriber's PeerConnection.
type subscription struct {
	*DownTrack
	local  *boundTrack
	sender *webrtc.RTPSender // set when added to the connection
}

// boundTrack is a TrackLocalStaticRTP that reports when pion first binds
// it to a negotiated sender, the moment a subscriber can first receive
// packets. pion may bind it again on a later negotiation: the subscriber
// has received the stream by then, whose numbering goes on (what went
// nowhere in between is a gap it NACKs).
type boundTrack struct {
	*webrtc.TrackLocalStaticRTP
	onBind func()
	bound  atomic.Bool
}

// Bind implements webrtc.TrackLocal. onBind runs before the binding
// exists: a packet that slipped through between the two would reach the
// subscriber ahead of the keyframe it restarts at, and the numbers
// skipped up to that keyframe would look lost.
func (b *boundTrack) Bind(ctx webrtc.TrackLocalContext) (webrtc.RTPCodecParameters, error) {
	if !b.bound.Swap(true) {
		b.onBind()
	}
	return b.TrackLocalStaticRTP.Bind(ctx)
}

func newSubscription(up *UpTrack, out *writer) (*subscription, error) {
	local, err := webrtc.NewTrackLocalStaticRTP(up.codec.RTPCodecCapability, up.info.SID, up.info.ParticipantSID)
	if err != nil {
		return nil, err
	}
	s := &subscription{}
	// The lowest layer starts soonest and fits any link; the allocator
	// raises it as the subscriber's bandwidth allows.
	s.DownTrack = newDownTrack(up, out, s, 0)
	// Anything forwarded before the subscriber connection was negotiated
	// went nowhere: video restarts at a keyframe.
	s.local = &boundTrack{TrackLocalStaticRTP: local, onBind: s.restartAtKeyframe}
	return s, nil
}

// writeRTP implements destination: pion rewrites SSRC and payload type for
// the subscriber's connection.
func (s *subscription) writeRTP(out *rtp.Packet, _ *packet) error { return s.local.WriteRTP(out) }

// senderReport implements destination; pion's report interceptor sends the
// subscriber sender reports of its own.
func (s *subscription) senderReport(*room.SenderReport) {}

// readRTCP answers the subscriber's NACKs and keyframe requests for this
// track until its sender stops.
func (s *subscription) readRTCP(stats *peerStats) {
	var buf [maxNACKSeqs]uint16
	for {
		pkts, _, err := s.sender.ReadRTCP()
		if err != nil {
			return
		}
		for _, pkt := range pkts {
			switch pkt := pkt.(type) {
			case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
				cur, tgt := s.current()
				s.requestKeyframe(max(cur, tgt))
			case *rtcp.TransportLayerNack:
				stats.nacks.Add(1)
				s.retransmit(nackedSeqs(pkt, buf[:0]))
			}
		}
	}
}

// maxNACKSeqs bounds the retransmissions one NACK message can ask for.
const maxNACKSeqs = 64

// nackedSeqs lists the distinct sequence numbers a NACK asks for, at most
// maxNACKSeqs of them, appended to seqs.
func nackedSeqs(nack *rtcp.TransportLayerNack, seqs []uint16) []uint16 {
	for _, pair := range nack.Nacks {
		pair.Range(func(s uint16) bool {
			if len(seqs) == maxNACKSeqs {
				return false // Range calls once more before checking; this guards it
			}
			if !slices.Contains(seqs, s) {
				seqs = append(seqs, s)
			}
			return true
		})
	}
	return seqs
}
