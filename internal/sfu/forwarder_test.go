package sfu

import (
	"encoding/binary"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/pion/rtp"

	"github.com/quartet-rtc/quartet/internal/room"
	"github.com/quartet-rtc/quartet/internal/sfu/vp8"
)

// simulcastSource plays a VP8 publisher sending three simulcast layers,
// each with temporal layers (L1T3 pattern 0,2,1,2), its own random
// sequence numbers, timestamps, picture ids and TL0PICIDX, and keyframes
// every 10 frames (staggered between layers).
type simulcastSource struct {
	layers [3]struct {
		seq uint16
		ts  uint32
		pic uint16
		tl0 uint8
	}
	frame int
}

func newSimulcastSource(rng *rand.Rand) *simulcastSource {
	s := &simulcastSource{}
	for i := range s.layers {
		l := &s.layers[i]
		l.seq, l.ts, l.pic, l.tl0 = uint16(rng.Uint32()), rng.Uint32(), uint16(rng.IntN(0x8000)), uint8(rng.Uint32())
	}
	return s
}

// token identifies a packet in its payload: layer and sequence number at
// the source.
func token(b []byte) uint32 { return binary.BigEndian.Uint32(b[len(b)-4:]) }

// next makes one frame on every layer (layer i has i+1 packets) and hands
// each packet to emit.
func (s *simulcastSource) next(emit func(layer int, raw []byte)) {
	tid := []uint8{0, 2, 1, 2}[s.frame%4]
	for i := range s.layers {
		l := &s.layers[i]
		key := (s.frame+i*3)%10 == 0
		ftid := tid
		if key {
			ftid = 0
		}
		if ftid == 0 {
			l.tl0++
		}
		n := i + 1
		for k := range n {
			h := rtp.Header{Version: 2, PayloadType: 96, SSRC: uint32(100 + i), SequenceNumber: l.seq,
				Timestamp: l.ts, Marker: k == n-1}
			b, _ := h.Marshal()
			desc := []byte{0x80, 0xE0, 0x80 | byte(l.pic>>8), byte(l.pic), l.tl0, ftid << 6}
			if k == 0 {
				desc[0] |= 0x10 // S: start of the frame's first partition
			}
			frameHdr := byte(0x01) // P set: inter frame
			if key {
				frameHdr = 0x00
			}
			b = append(b, desc...)
			b = append(b, frameHdr, 0x9d, 0x01, 0x2a)
			b = binary.BigEndian.AppendUint32(b, uint32(i)<<16|uint32(l.seq))
			emit(i, b)
			l.seq++
		}
		l.ts += 3000
		l.pic = (l.pic + 1) & 0x7FFF
	}
	s.frame++
}

// captured is one packet as the destination saw it.
type captured struct {
	seq   uint16
	ts    uint32
	desc  vp8.Descriptor
	token uint32
}

type captureDst struct{ got []captured }

func (c *captureDst) writeRTP(out *rtp.Packet, _ *packet) error {
	var d vp8.Descriptor
	if err := vp8.Parse(out.Payload, &d); err != nil {
		return err
	}
	c.got = append(c.got, captured{seq: out.SequenceNumber, ts: out.Timestamp, desc: d, token: token(out.Payload)})
	return nil
}

func (c *captureDst) senderReport(*room.SenderReport) {}

// TestRewriteAcrossSwitchesAndLoss forces 20 spatial switches and temporal
// layer changes while 5% of what reaches the subscriber is lost and
// NACKed: the subscriber must see one stream with contiguous sequence
// numbers, rising timestamps, continuous picture ids, and retransmissions
// that carry the packets it lost.
func TestRewriteAcrossSwitchesAndLoss(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	layers := []room.Layer{{RID: "q", Quality: "low"}, {RID: "h", Quality: "medium"}, {RID: "f", Quality: "high"}}
	up := testUpTrack(room.TrackInfo{SID: "TR_s", Kind: "video", Layers: layers}, vp8Codec, newPacketPool())
	dst := &captureDst{}
	out := newWriter(4096, &peerStats{})
	d := newDownTrack(up, out, dst, 2)
	up.addDown(d)
	src := newSimulcastSource(rng)

	firstSeen := map[uint16]uint32{} // sequence number the subscriber saw → token
	received := map[uint16]captured{}
	lost := 0
	drain := func() []captured {
		dst.got = dst.got[:0]
		for len(out.queue) > 0 {
			out.write(<-out.queue)
		}
		return dst.got
	}
	for frame := 0; d.fw.switches < 20 || frame < 400; frame++ {
		if frame > 2000 {
			t.Fatalf("only %d switches in %d frames", d.fw.switches, frame)
		}
		if frame%15 == 7 { // a new target: some other spatial layer, any temporal one
			cur, _ := d.current()
			d.setTarget((cur+1+rng.IntN(2))%3, rng.IntN(3))
		}
		src.next(func(layer int, raw []byte) {
			pkt := getPacket(up.pool)
			up.layers[layer].fanOut(pkt, copy(pkt.buf[:], raw))
		})
		var nacks []uint16
		for _, c := range drain() {
			if tok, ok := firstSeen[c.seq]; ok {
				t.Fatalf("sequence number %d sent twice unasked (tokens %x, %x)", c.seq, tok, c.token)
			}
			firstSeen[c.seq] = c.token
			if rng.IntN(100) < 5 {
				nacks = append(nacks, c.seq)
				lost++
				continue
			}
			received[c.seq] = c
		}
		d.retransmit(nacks)
		for _, c := range drain() {
			if firstSeen[c.seq] != c.token {
				t.Fatalf("retransmission of %d carries packet %x, the subscriber lost %x", c.seq, c.token, firstSeen[c.seq])
			}
			received[c.seq] = c
		}
	}
	if lost == 0 {
		t.Fatal("no packet was lost: the test checks nothing about NACKs")
	}
	// The base temporal layer alone: nothing above TID 0 comes through,
	// and the numbering stays contiguous across the frames left out.
	cur, _ := d.current()
	d.setTarget(cur, 0)
	for range 12 {
		src.next(func(layer int, raw []byte) {
			pkt := getPacket(up.pool)
			up.layers[layer].fanOut(pkt, copy(pkt.buf[:], raw))
		})
		for _, c := range drain() {
			if c.desc.TID > 0 && c.desc.FrameStart() {
				// The switch down happens at the next frame start, so one
				// frame of a higher layer may still begin.
				t.Logf("TID %d frame after the switch down", c.desc.TID)
			}
			received[c.seq] = c
		}
	}
	tail := 0
	for _, c := range dst.got {
		if c.desc.TID > 0 {
			tail++
		}
	}
	if tail > 0 {
		t.Errorf("%d packets above the base temporal layer after the switch down", tail)
	}
	checkContinuous(t, received)
	t.Logf("%d packets, %d lost and retransmitted, %d switches", len(received), lost, d.fw.switches)
}

// checkContinuous checks the stream a subscriber received.
func checkContinuous(t *testing.T, got map[uint16]captured) {
	t.Helper()
	seqs := make([]uint16, 0, len(got))
	for s := range got {
		seqs = append(seqs, s)
	}
	first := seqs[0]
	for _, s := range seqs {
		if int16(s-first) < 0 {
			first = s
		}
	}
	slices.SortFunc(seqs, func(a, b uint16) int { return int(int16(a-first)) - int(int16(b-first)) })
	frames := 0
	for i := 1; i < len(seqs); i++ {
		a, b := got[seqs[i-1]], got[seqs[i]]
		if b.seq != a.seq+1 {
			t.Fatalf("sequence gap: %d then %d", a.seq, b.seq)
		}
		if int32(b.ts-a.ts) < 0 {
			t.Fatalf("timestamp went back at %d: %d then %d", b.seq, a.ts, b.ts)
		}
		if b.ts == a.ts {
			if b.desc.PictureID != a.desc.PictureID {
				t.Fatalf("picture id changed within a frame at %d", b.seq)
			}
			continue
		}
		frames++
		if b.desc.PictureID != (a.desc.PictureID+1)&0x7FFF {
			t.Fatalf("picture id %d then %d at %d (tokens %x %x, desc %+v)", a.desc.PictureID, b.desc.PictureID, b.seq, a.token, b.token, b.desc)
		}
		if step := b.desc.TL0PICIDX - a.desc.TL0PICIDX; step > 1 {
			t.Fatalf("TL0PICIDX %d then %d at %d", a.desc.TL0PICIDX, b.desc.TL0PICIDX, b.seq)
		}
	}
	if frames < 100 {
		t.Fatalf("only %d frames received", frames)
	}
}

// Padding before anything was sent (a probe on a paused or new track)
// starts the numbering, and the first layer's packets continue it.
func TestPaddingBeforeMedia(t *testing.T) {
	t.Parallel()
	f := newForwarder(true, 90000, -1)
	var rws [4]rewrite
	if n := f.padding(rws[:]); n != 4 {
		t.Fatalf("%d padding packets numbered, want 4", n)
	}
	f.setTarget(0, -1)
	pkt := &packet{keyframe: true}
	pkt.hdr.SequenceNumber, pkt.hdr.Timestamp, pkt.hdr.Payload = 5000, 1000, []byte{0x10, 0, 0x9d}
	rw, act := f.admit(pkt, 0, time.Now)
	if act != actSend || rw.seq != rws[3].seq+1 {
		t.Fatalf("keyframe after padding: action %d, seq %d, want %d", act, rw.seq, rws[3].seq+1)
	}
}
