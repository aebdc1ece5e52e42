package client

import (
	"testing"
	"time"

	"github.com/pion/rtp/codecs"

	"github.com/quartet-rtc/quartet/internal/sfu/vp8"
)

// Marked synthetic VP8 carries descriptors the server's parser and pion's
// depacketizer read the same way as ParseSynth: picture ids that count
// frames, L1T3 temporal ids in the 0 2 1 2 pattern with TL0PICIDX
// counting base frames, keyframes with their size, and the mark.
func TestMarkedPayloads(t *testing.T) {
	for _, temporal := range []int{1, 3} {
		g := frameGen{cfg: SynthConfig{Marked: true, Layer: 2, Width: 1280, Height: 720, TemporalLayers: temporal},
			pictureID: 0x7FFE, tl0: 255}
		buf := make([]byte, maxVideoPayload)
		for frame := range 9 {
			key := frame == 0 || frame == 6
			frameBytes := 2500
			tid := uint8(0)
			if temporal == 3 {
				if key {
					g.pos = 0
				}
				tid = temporalPattern[g.pos%4]
				frameBytes = int(float64(frameBytes) * temporalWeight[tid])
				if tid == 0 {
					g.tl0++
				}
			}
			count := (frameBytes + maxVideoPayload - 1) / maxVideoPayload
			for i := range count {
				n := min(maxVideoPayload, frameBytes-i*maxVideoPayload)
				before := time.Now()
				payload := g.markedPayload(buf, n, i, count, key, tid)
				p, ok := ParseSynth(true, payload)
				if !ok || !p.Marked {
					t.Fatalf("T%d frame %d packet %d: ParseSynth failed", temporal, frame, i)
				}
				wantPic := (0x7FFE + uint16(frame)) & 0x7FFF
				if p.PictureID != wantPic || p.Layer != 2 || p.Index != i || p.Count != count ||
					p.Frame != uint32(frame) || p.Start != (i == 0) || p.Keyframe != (key && i == 0) ||
					p.SentAt.Before(before.Add(-time.Second)) {
					t.Fatalf("T%d frame %d packet %d: parsed %+v, want picture id %d", temporal, frame, i, p, wantPic)
				}
				if p.Keyframe && (p.Width != 1280 || p.Height != 720) {
					t.Errorf("keyframe size %dx%d, want 1280x720", p.Width, p.Height)
				}
				if temporal == 3 && (!p.HasTID || p.TID != tid || p.TL0PICIDX != g.tl0) {
					t.Errorf("T3 frame %d: TID %d TL0PICIDX %d, want %d and %d", frame, p.TID, p.TL0PICIDX, tid, g.tl0)
				}
				var d vp8.Descriptor
				if err := vp8.Parse(payload, &d); err != nil {
					t.Fatalf("vp8.Parse: %v", err)
				}
				if !d.HasPictureID || d.PictureID != wantPic || d.PictureIDLen != 2 || d.Keyframe != p.Keyframe ||
					d.FrameStart() != (i == 0) || d.HasTID != (temporal == 3) || d.TID != p.TID ||
					d.TL0PICIDX != p.TL0PICIDX || d.NonRef != (tid == 2) {
					t.Fatalf("vp8.Parse read %+v from %+v", d, p)
				}
				var pion codecs.VP8Packet
				if _, err := pion.Unmarshal(payload); err != nil {
					t.Fatalf("pion: %v", err)
				}
				if pion.PictureID != wantPic || (temporal == 3 && pion.TID != tid) {
					t.Fatalf("pion read picture id %d TID %d", pion.PictureID, pion.TID)
				}
				if at, ok := SentAt(true, payload); !ok || !at.Equal(p.SentAt) {
					t.Fatalf("SentAt %v %v, ParseSynth %v", at, ok, p.SentAt)
				}
			}
			g.counter += uint32(count)
			g.frames++
			g.pos++
			g.pictureID = (g.pictureID + 1) & 0x7FFF
		}
	}
}

// The plain layout stays what it was: a one-byte descriptor, the frame
// tag byte, the send time.
func TestPlainPayloads(t *testing.T) {
	buf := make([]byte, maxVideoPayload)
	key := plainPayload(buf, 500, true, true)
	if len(key) != 500 || key[0] != 0x10 || key[1] != 0 {
		t.Fatalf("plain keyframe starts % x, length %d", key[:2], len(key))
	}
	var d vp8.Descriptor
	if err := vp8.Parse(key, &d); err != nil || !d.Keyframe || d.HasPictureID {
		t.Fatalf("vp8.Parse: %+v, %v", d, err)
	}
	if _, ok := SentAt(true, key); !ok {
		t.Fatal("SentAt failed on a plain payload")
	}
	if p, ok := ParseSynth(true, key); !ok || p.Marked {
		t.Fatalf("ParseSynth on a plain payload: %+v %v", p, ok)
	}
}
