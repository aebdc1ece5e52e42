package vp8

import (
	"bytes"
	"testing"

	"github.com/pion/rtp/codecs"
)

// FuzzParse checks that Parse never panics, that it agrees with pion's
// depacketizer, and that Rewrite of a parsed descriptor re-parses to the same
// fields with only the ids changed.
func FuzzParse(f *testing.F) {
	for _, tt := range parseTests {
		f.Add(tt.payload, uint16(0x1234), uint8(7))
	}
	f.Fuzz(func(t *testing.T, payload []byte, pictureID uint16, tl0 uint8) {
		var d Descriptor
		err := Parse(payload, &d)

		var pion codecs.VP8Packet
		_, perr := pion.Unmarshal(payload)
		if (err == nil) != (perr == nil) {
			t.Fatalf("Parse(%x) = %v, pion says %v", payload, err, perr)
		}
		if err != nil {
			if d != (Descriptor{}) {
				t.Fatalf("failed Parse(%x) left %+v", payload, d)
			}
			return
		}
		if !samePion(&d, &pion, len(payload)) {
			t.Fatalf("Parse(%x) = %+v, pion %+v", payload, d, pion)
		}

		// A descriptor from another payload must never make Rewrite panic.
		if len(payload) > 0 {
			_, _ = Rewrite(make([]byte, len(payload)), payload[1:], &d, pictureID, tl0)
		}
		if len(payload) > 0 {
			if _, err := Rewrite(make([]byte, len(payload)-1), payload, &d, pictureID, tl0); err != ErrDstShort {
				t.Fatalf("Rewrite into a short dst: %v", err)
			}
		}

		dst := make([]byte, len(payload))
		n, err := Rewrite(dst, payload, &d, pictureID, tl0)
		if err != nil || n != len(payload) {
			t.Fatalf("Rewrite(%x, %+v) = %d, %v", payload, d, n, err)
		}
		var got Descriptor
		if err := Parse(dst, &got); err != nil {
			t.Fatalf("Parse(Rewrite) %x: %v", dst, err)
		}
		if want := withIDs(d, pictureID, tl0); got != want {
			t.Fatalf("Parse(Rewrite(%x)) =\n %+v, want\n %+v", payload, got, want)
		}
		// Only the id bytes may differ: the M bit and everything else stay.
		mask := bytes.Clone(payload)
		i := extStart
		if d.HasPictureID {
			mask[i], dst[i] = mask[i]&bitM, dst[i]&bitM
			if d.PictureIDLen == 2 {
				mask[i+1], dst[i+1] = 0, 0
			}
			i += d.PictureIDLen
		}
		if d.HasTL0PICIDX {
			mask[i], dst[i] = 0, 0
		}
		if !bytes.Equal(dst, mask) {
			t.Fatalf("Rewrite changed bytes outside the ids: %x -> %x", mask, dst)
		}
	})
}

// samePion compares the fields both parsers have. pion keeps TID, Y and
// KEYIDX only when their bits are set, as Parse does.
func samePion(d *Descriptor, p *codecs.VP8Packet, n int) bool {
	return d.Start == (p.S == 1) && d.PartID == p.PID && d.NonRef == (p.N == 1) &&
		d.HasPictureID == (p.I == 1) && d.PictureID == p.PictureID &&
		d.HasTL0PICIDX == (p.L == 1) && d.TL0PICIDX == p.TL0PICIDX &&
		d.HasTID == (p.T == 1) && d.TID == p.TID && d.LayerSync == (p.Y == 1) &&
		d.HasKeyIdx == (p.K == 1) && d.KeyIdx == p.KEYIDX &&
		d.Size == n-len(p.Payload)
}
