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

	// Marked video writes the payload descriptor a browser's VP8
	// packetizer writes (X and I with a 15-bit picture id; with
	// TemporalLayers 3 also L and T: TL0PICIDX, TID and the layer sync
	// bit), a VP8 frame header (a keyframe's with Width and Height), and a
	// header of its own that ParseSynth reads: the send time, Layer, the
	// frame number, the packet's place in its frame and a per-stream packet
	// counter. Simulcast layers are always marked. Unmarked video keeps
	// the one-byte descriptor.
	Marked        bool
	Layer         int // the simulcast layer index, written into marked payloads
	Width, Height int // written into marked keyframes
	// TemporalLayers is 1 (or 0) for none, or 3 for VP8 L1T3: frames take
	// temporal layers 0, 2, 1, 2 in turn, sized so that the base layer is
	// about 40% of the bitrate and layers 0-1 about 65%. Marked video only.
	TemporalLayers int
	// Active, if set, is read before every frame: while it is false the
	// stream sends nothing (the server turned the layer off, dynacast), and
	// its first frame after it is a keyframe, as an encoder restarting a
	// layer sends.
	Active *atomic.Bool
	// Keyframes, if set, counts the keyframes sent.
	Keyframes *atomic.Int64
	// MID and RID, with their negotiated extension ids, are written into
	// every packet when the ids are not 0: a simulcast receiver tells the
	// streams apart by them (pion's sender does not add them itself).
	MID, RID           string
	MIDExtID, RIDExtID uint8
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
	keyEvery := max(int(cfg.KeyframeInterval.Seconds()*float64(fps)), 1)
	pkt := &rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: uint16(rand.Uint32()), Timestamp: rand.Uint32()}}
	if cfg.MIDExtID != 0 {
		if err := pkt.SetExtension(cfg.MIDExtID, []byte(cfg.MID)); err != nil {
			return 0, fmt.Errorf("mid extension: %w", err)
		}
	}
	if cfg.RIDExtID != 0 {
		if err := pkt.SetExtension(cfg.RIDExtID, []byte(cfg.RID)); err != nil {
			return 0, fmt.Errorf("rid extension: %w", err)
		}
	}
	buf := make([]byte, maxVideoPayload)
	cfg.Track.start(pkt.SequenceNumber)
	gen := frameGen{cfg: cfg, pictureID: uint16(rand.Uint32()) & 0x7FFF, tl0: uint8(rand.Uint32())}
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
		if cfg.Active != nil && !cfg.Active.Load() {
			sinceKey = keyEvery // restart with a keyframe
			pkt.Timestamp += uint32(90000 / fps)
			continue
		}
		key := sinceKey >= keyEvery
		sinceKey++
		if key {
			sinceKey = 1
		}
		n, err := gen.frame(track, pkt, buf, frameBytes, key)
		sent += n
		if err != nil {
			return sent, err
		}
		pkt.Timestamp += uint32(90000 / fps)
	}
}

// maxVideoPayload is the largest synthetic video payload.
const maxVideoPayload = 1100

// frameGen writes the packets of synthetic video frames.
type frameGen struct {
	cfg       SynthConfig
	frames    uint32 // frames written
	pos       uint32 // the next frame's place in the temporal pattern
	pictureID uint16 // of the next frame; 15 bits
	tl0       uint8  // TL0PICIDX of the latest base-layer frame
	counter   uint32 // packets written
}

// temporalPattern is L1T3's temporal layer of each frame in turn, and
// temporalWeight the share of the average frame size each one gets.
var (
	temporalPattern = [4]uint8{0, 2, 1, 2}
	temporalWeight  = [3]float64{1.6, 1.0, 0.7}
)

// frame writes one frame of about frameBytes bytes and returns how many
// packets it wrote.
func (g *frameGen) frame(track *webrtc.TrackLocalStaticRTP, pkt *rtp.Packet, buf []byte, frameBytes int, key bool) (int, error) {
	cfg := g.cfg
	temporal := cfg.Marked && cfg.TemporalLayers >= 3
	var tid uint8
	if temporal {
		if key {
			g.pos = 0 // a keyframe starts the pattern again
		}
		tid = temporalPattern[g.pos%4]
		frameBytes = int(float64(frameBytes) * temporalWeight[tid])
		if tid == 0 {
			g.tl0++
		}
	}
	packets := (frameBytes + maxVideoPayload - 1) / maxVideoPayload
	remaining := frameBytes
	sent := 0
	for i := range packets {
		n := min(remaining, maxVideoPayload)
		remaining -= n
		var payload []byte
		if cfg.Marked {
			payload = g.markedPayload(buf, n, i, packets, key, tid)
		} else {
			payload = plainPayload(buf, n, i == 0, key)
		}
		pkt.Payload = payload
		pkt.Marker = i == packets-1
		if err := track.WriteRTP(pkt); err != nil {
			return sent, fmt.Errorf("write video: %w", err)
		}
		cfg.Sent.add(len(payload))
		cfg.Track.add(len(payload))
		sent++
		g.counter++
		pkt.SequenceNumber++
	}
	if key && cfg.Keyframes != nil {
		cfg.Keyframes.Add(1)
	}
	g.frames++
	g.pos++
	g.pictureID = (g.pictureID + 1) & 0x7FFF
	return sent, nil
}

// plainPayload is the unmarked layout: a one-byte VP8 descriptor, the
// first byte of a VP8 frame header, then the send time.
func plainPayload(buf []byte, n int, first, key bool) []byte {
	n = max(n, vp8HeaderLen+8)
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
	return payload
}

// Sizes in the marked layout.
const (
	keyHeaderLen   = 10 // a VP8 keyframe's frame tag, start code and size
	deltaHeaderLen = 3  // a delta frame's frame tag
	markLen        = 22 // the synthetic header
)

// markedPayload writes packet index of a frame of count packets in the
// marked layout: descriptor, frame header (first packet only), mark,
// filler up to n bytes.
func (g *frameGen) markedPayload(buf []byte, n, index, count int, key bool, tid uint8) []byte {
	cfg := g.cfg
	temporal := cfg.TemporalLayers >= 3
	d := buf[:0]
	b0 := byte(0x80) // X
	if index == 0 {
		b0 |= 0x10 // S, partition 0
	}
	if temporal && tid == 2 {
		b0 |= 0x20 // N: no frame refers to a top-layer frame
	}
	x := byte(0x80) // I
	if temporal {
		x |= 0x40 | 0x20 // L, T
	}
	d = append(d, b0, x, 0x80|byte(g.pictureID>>8), byte(g.pictureID))
	if temporal {
		// Y: frames 1 and 2 of the pattern refer only to the base layer.
		y := byte(0)
		if pos := g.pos % 4; pos == 1 || pos == 2 {
			y = 0x20
		}
		d = append(d, g.tl0, tid<<6|y)
	}
	if index == 0 {
		if key {
			w, h := uint16(cfg.Width)&0x3FFF, uint16(cfg.Height)&0x3FFF
			// Frame tag: key frame, version 0, shown; then the start code
			// and the size, as a VP8 decoder reads them.
			d = append(d, 0x10, 0, 0, 0x9d, 0x01, 0x2a, byte(w), byte(w>>8), byte(h), byte(h>>8))
		} else {
			d = append(d, 0x11, 0, 0) // P: a delta frame
		}
	}
	size := max(n, len(d)+markLen)
	payload := buf[:size]
	m := payload[len(d):]
	binary.BigEndian.PutUint64(m[0:], uint64(time.Now().UnixNano()))
	m[8] = byte(cfg.Layer)
	m[9] = tid
	binary.BigEndian.PutUint16(m[10:], uint16(index))
	binary.BigEndian.PutUint16(m[12:], uint16(count))
	binary.BigEndian.PutUint32(m[14:], g.frames)
	binary.BigEndian.PutUint32(m[18:], g.counter)
	return payload
}

// SynthPacket is what ParseSynth reads from a synthetic payload.
type SynthPacket struct {
	SentAt time.Time
	// The rest is known for marked video only (Marked is set).
	Marked        bool
	Layer         int
	Keyframe      bool // the first packet of a keyframe
	Start         bool // the first packet of a frame
	Width, Height int  // of a keyframe's first packet
	PictureID     uint16
	TL0PICIDX     uint8
	TID           uint8
	HasTID        bool
	Index, Count  int    // the packet's place in its frame, and the frame's packets
	Frame         uint32 // the frame number in the sending stream
	Counter       uint32 // the packet number in the sending stream
}

// ParseSynth reads a synthetic payload, as sent (a server may have
// rewritten the picture id and TL0PICIDX). ok is false when it is too short.
func ParseSynth(video bool, payload []byte) (p SynthPacket, ok bool) {
	if !video || len(payload) == 0 || payload[0]&0x80 == 0 {
		at, ok := SentAt(video, payload)
		return SynthPacket{SentAt: at}, ok
	}
	off, ok := markedHeader(payload, &p)
	if !ok || len(payload) < off+markLen {
		return SynthPacket{}, false
	}
	m := payload[off:]
	p.Marked = true
	p.SentAt = time.Unix(0, int64(binary.BigEndian.Uint64(m[0:])))
	p.Layer = int(m[8])
	p.Index = int(binary.BigEndian.Uint16(m[10:]))
	p.Count = int(binary.BigEndian.Uint16(m[12:]))
	p.Frame = binary.BigEndian.Uint32(m[14:])
	p.Counter = binary.BigEndian.Uint32(m[18:])
	return p, true
}

// markedHeader parses the VP8 descriptor and frame header of a marked
// payload into p and returns where the mark starts.
func markedHeader(payload []byte, p *SynthPacket) (int, bool) {
	if len(payload) < 2 {
		return 0, false
	}
	p.Start = payload[0]&0x10 != 0 && payload[0]&0x07 == 0
	x := payload[1]
	off := 2
	if x&0x80 != 0 { // I
		if len(payload) < off+1 {
			return 0, false
		}
		if payload[off]&0x80 != 0 {
			if len(payload) < off+2 {
				return 0, false
			}
			p.PictureID = binary.BigEndian.Uint16(payload[off:]) & 0x7FFF
			off += 2
		} else {
			p.PictureID = uint16(payload[off])
			off++
		}
	}
	if x&0x40 != 0 { // L
		if len(payload) < off+1 {
			return 0, false
		}
		p.TL0PICIDX = payload[off]
		off++
	}
	if x&0x30 != 0 { // T or K
		if len(payload) < off+1 {
			return 0, false
		}
		if x&0x20 != 0 {
			p.TID, p.HasTID = payload[off]>>6, true
		}
		off++
	}
	if !p.Start {
		return off, true
	}
	if len(payload) < off+deltaHeaderLen {
		return 0, false
	}
	if payload[off]&0x01 != 0 {
		return off + deltaHeaderLen, true
	}
	if len(payload) < off+keyHeaderLen {
		return 0, false
	}
	p.Keyframe = true
	h := payload[off:]
	p.Width = int(binary.LittleEndian.Uint16(h[6:]) & 0x3FFF)
	p.Height = int(binary.LittleEndian.Uint16(h[8:]) & 0x3FFF)
	return off + keyHeaderLen, true
}

// SentAt returns the send time stamped in a synthetic payload.
func SentAt(video bool, payload []byte) (time.Time, bool) {
	if video && len(payload) > 0 && payload[0]&0x80 != 0 {
		p, ok := ParseSynth(video, payload)
		return p.SentAt, ok
	}
	off := 1
	if video {
		off = vp8HeaderLen
	}
	if len(payload) < off+8 {
		return time.Time{}, false
	}
	return time.Unix(0, int64(binary.BigEndian.Uint64(payload[off:]))), true
}
