package client

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// SynthConfig describes synthetic media. The SFU does not decode, so the
// content is filler, but packets are valid RTP with real VP8 payload
// descriptors, so its keyframe logic works. Every payload carries its send
// time (unix nanos, 8 bytes after the codec header) so receivers can measure
// one-way latency on loopback.
type SynthConfig struct {
	Video            bool
	FPS              int           // video frames per second
	BitrateBPS       int           // video bitrate
	KeyframeInterval time.Duration // video keyframe period
	// Audio: one 20 ms Opus-sized packet every 20 ms.
	AudioPayload int
	// AudioLevelID, if not 0, is the negotiated id of the audio level
	// extension; each packet then carries AudioLevel (-dBov, 127 = silence).
	AudioLevelID uint8
	AudioLevel   uint8
	// KeyframeRequests, if set, makes the next video frame a keyframe, as a
	// real encoder does when the server sends a PLI.
	KeyframeRequests <-chan struct{}
	// Sent, if set, counts packets and payload bytes as they are written.
	Sent *SendCounter
	// Track, if set, counts this track's packets alone and keeps its first
	// sequence number, so receivers can tell what was sent to them.
	Track *TrackCounter
}

// SendCounter counts what a synthetic sender wrote, for live progress.
type SendCounter struct {
	Packets, Bytes atomic.Int64
}

func (s *SendCounter) add(bytes int) {
	if s != nil {
		s.Packets.Add(1)
		s.Bytes.Add(int64(bytes))
	}
}

// TrackCounter counts what one synthetic track wrote. Its packets carry
// consecutive sequence numbers from FirstSeq, which the SFU passes through
// unchanged, so packet i of the track has sequence number FirstSeq+i.
type TrackCounter struct {
	SendCounter
	first atomic.Int32 // the first sequence number; -1 until sending starts
}

// NewTrackCounter returns a counter for a track that has not started.
func NewTrackCounter() *TrackCounter {
	t := &TrackCounter{}
	t.first.Store(-1)
	return t
}

// FirstSeq is the sequence number of the track's first packet; ok is false
// until the sender has started.
func (t *TrackCounter) FirstSeq() (seq uint16, ok bool) {
	v := t.first.Load()
	return uint16(v), v >= 0
}

func (t *TrackCounter) start(seq uint16) {
	if t != nil {
		t.first.Store(int32(seq))
	}
}

func (t *TrackCounter) add(bytes int) {
	if t != nil {
		t.SendCounter.add(bytes)
	}
}

// NewSynthTrack returns a local track for synthetic VP8 video or Opus audio.
func NewSynthTrack(video bool, id, streamID string) (*webrtc.TrackLocalStaticRTP, error) {
	capability := webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}
	if video {
		capability = webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}
	}
	return webrtc.NewTrackLocalStaticRTP(capability, id, streamID)
}

// vp8HeaderLen is the VP8 payload descriptor (1 byte) plus the first byte of
// the VP8 frame header, whose low bit tells key from delta frames.
const vp8HeaderLen = 2

// SendSynth writes synthetic media to track until ctx ends. It returns how
// many packets it wrote.
func SendSynth(ctx context.Context, track *webrtc.TrackLocalStaticRTP, cfg SynthConfig) (int, error) {
	if cfg.Video {
		return sendVideo(ctx, track, cfg)
	}
	return sendAudio(ctx, track, cfg)
}

func sendAudio(ctx context.Context, track *webrtc.TrackLocalStaticRTP, cfg SynthConfig) (int, error) {
	size := max(cfg.AudioPayload, 16)
	pkt := &rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: uint16(rand.Uint32()), Timestamp: rand.Uint32()}}
	payload := make([]byte, size)
	if cfg.AudioLevelID != 0 {
		level := []byte{0x80 | cfg.AudioLevel&0x7F} // V bit: voice activity
		if err := pkt.SetExtension(cfg.AudioLevelID, level); err != nil {
			return 0, fmt.Errorf("audio level extension: %w", err)
		}
	}
	cfg.Track.start(pkt.SequenceNumber)
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	sent := 0
	for {
		select {
		case <-ctx.Done():
			return sent, nil
		case <-t.C:
		}
		binary.BigEndian.PutUint64(payload[1:], uint64(time.Now().UnixNano()))
		pkt.Payload = payload
		if err := track.WriteRTP(pkt); err != nil {
			return sent, fmt.Errorf("write audio: %w", err)
		}
		cfg.Sent.add(len(payload))
		cfg.Track.add(len(payload))
		sent++
		pkt.SequenceNumber++
		pkt.Timestamp += 960
	}
}

func sendVideo(ctx context.Context, track *webrtc.TrackLocalStaticRTP, cfg SynthConfig) (int, error) {
	fps := max(cfg.FPS, 1)
	frameBytes := max(cfg.BitrateBPS/8/fps, 100)
	const maxPayload = 1100
	keyEvery := max(int(cfg.KeyframeInterval.Seconds()*float64(fps)), 1)
	pkt := &rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: uint16(rand.Uint32()), Timestamp: rand.Uint32()}}
	buf := make([]byte, maxPayload)
	cfg.Track.start(pkt.SequenceNumber)
	t := time.NewTicker(time.Second / time.Duration(fps))
	defer t.Stop()
	sent, sinceKey := 0, keyEvery // the first frame is a keyframe
	for {
		select {
		case <-ctx.Done():
			return sent, nil
		case <-cfg.KeyframeRequests:
			sinceKey = keyEvery
			continue
		case <-t.C:
		}
		key := sinceKey >= keyEvery
		sinceKey++
		if key {
			sinceKey = 1
		}
		remaining := frameBytes
		for first := true; remaining > 0; first = false {
			n := min(remaining, maxPayload)
			n = max(n, vp8HeaderLen+8)
			remaining -= n
			payload := buf[:n]
			payload[0] = 0 // VP8 descriptor: continuation of a partition
			if first {
				payload[0] = 0x10 // S: start of partition 0
			}
			payload[1] = 0x01 // VP8 frame tag: P bit set, a delta frame
			if key {
				payload[1] = 0x00
			}
			binary.BigEndian.PutUint64(payload[vp8HeaderLen:], uint64(time.Now().UnixNano()))
			pkt.Payload = payload
			pkt.Marker = remaining <= 0
			if err := track.WriteRTP(pkt); err != nil {
				return sent, fmt.Errorf("write video: %w", err)
			}
			cfg.Sent.add(n)
			cfg.Track.add(n)
			sent++
			pkt.SequenceNumber++
		}
		pkt.Timestamp += uint32(90000 / fps)
	}
}

// SentAt returns the send time stamped in a synthetic payload.
func SentAt(video bool, payload []byte) (time.Time, bool) {
	off := 1
	if video {
		off = vp8HeaderLen
	}
	if len(payload) < off+8 {
		return time.Time{}, false
	}
	return time.Unix(0, int64(binary.BigEndian.Uint64(payload[off:]))), true
}
