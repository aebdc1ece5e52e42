package vp8

import (
	"bytes"
	"errors"
	"testing"
)

// parseTests are hand-built payloads: the descriptor, then at least one byte
// of VP8 payload where the frame header's P bit decides Keyframe.
var parseTests = []struct {
	name    string
	payload []byte
	want    Descriptor
}{
	{"no X keyframe", []byte{0x10, 0x00, 0x9d, 0x01, 0x2a},
		Descriptor{Start: true, Keyframe: true, Size: 1}},
	{"no X delta frame", []byte{0x10, 0x01},
		Descriptor{Start: true, Size: 1}},
	{"not a partition start", []byte{0x00, 0x00},
		Descriptor{Size: 1}},
	{"start of partition 1 is no frame start", []byte{0x11, 0x00},
		Descriptor{Start: true, PartID: 1, Size: 1}},
	{"non-reference frame", []byte{0x30, 0x01},
		Descriptor{Start: true, NonRef: true, Size: 1}},
	{"X with no optional fields", []byte{0x90, 0x00, 0x00},
		Descriptor{Start: true, Keyframe: true, Size: 2}},
	{"7-bit picture id", []byte{0x90, 0x80, 0x12, 0x00},
		Descriptor{Start: true, HasPictureID: true, PictureID: 0x12, PictureIDLen: 1, Keyframe: true, Size: 3}},
	{"15-bit picture id", []byte{0x90, 0x80, 0x81, 0x23, 0x10},
		Descriptor{Start: true, HasPictureID: true, PictureID: 0x0123, PictureIDLen: 2, Keyframe: true, Size: 4}},
	{"15-bit picture id delta frame", []byte{0x90, 0x80, 0xff, 0xff, 0x11},
		Descriptor{Start: true, HasPictureID: true, PictureID: 0x7fff, PictureIDLen: 2, Size: 4}},
	{"L only", []byte{0x90, 0x40, 0x07, 0x00},
		Descriptor{Start: true, HasTL0PICIDX: true, TL0PICIDX: 7, Keyframe: true, Size: 3}},
	{"7-bit id, L and T with layer sync", []byte{0x90, 0xe0, 0x12, 0x01, 0x20, 0x00},
		Descriptor{Start: true, HasPictureID: true, PictureID: 0x12, PictureIDLen: 1,
			HasTL0PICIDX: true, TL0PICIDX: 1, HasTID: true, LayerSync: true, Keyframe: true, Size: 5}},
	{"15-bit id, L, T and K, delta frame", []byte{0x90, 0xf0, 0xab, 0xcd, 0x07, 0xb3, 0x01},
		Descriptor{Start: true, HasPictureID: true, PictureID: 0x2bcd, PictureIDLen: 2,
			HasTL0PICIDX: true, TL0PICIDX: 7, HasTID: true, TID: 2, LayerSync: true,
			HasKeyIdx: true, KeyIdx: 0x13, Size: 6}},
	// With T clear the TID and Y bits of the shared byte are ignored, and
	// with K clear the KEYIDX bits are.
	{"K only ignores TID and Y", []byte{0x90, 0x10, 0xff, 0x00},
		Descriptor{Start: true, HasKeyIdx: true, KeyIdx: 0x1f, Keyframe: true, Size: 3}},
	{"T only ignores KEYIDX", []byte{0x90, 0x20, 0xdf, 0x00},
		Descriptor{Start: true, HasTID: true, TID: 3, Keyframe: true, Size: 3}},
	{"reserved bits ignored", []byte{0xd8, 0x8f, 0x05, 0x00},
		Descriptor{Start: true, HasPictureID: true, PictureID: 5, PictureIDLen: 1, Keyframe: true, Size: 3}},
	{"continuation packet with a clear low bit", []byte{0x80, 0x80, 0x80, 0x01, 0x00},
		Descriptor{HasPictureID: true, PictureID: 1, PictureIDLen: 2, Size: 4}},
	{"descriptor only", []byte{0x90, 0x80, 0x05},
		Descriptor{Start: true, HasPictureID: true, PictureID: 5, PictureIDLen: 1, Size: 3}},
}

func TestParse(t *testing.T) {
	t.Parallel()
	for _, tt := range parseTests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var d Descriptor
			if err := Parse(tt.payload, &d); err != nil {
				t.Fatalf("Parse(%x): %v", tt.payload, err)
			}
			if d != tt.want {
				t.Fatalf("Parse(%x) =\n %+v, want\n %+v", tt.payload, d, tt.want)
			}
			if got, want := d.FrameStart(), tt.want.Start && tt.want.PartID == 0; got != want {
				t.Fatalf("FrameStart() = %v, want %v", got, want)
			}
		})
	}
}

func TestParseTruncated(t *testing.T) {
	t.Parallel()
	for _, p := range [][]byte{
		nil,
		{},
		{0x80},                         // X, no extension byte
		{0x90, 0x80},                   // I, no picture id
		{0x90, 0x80, 0x81},             // M, second id byte missing
		{0x90, 0x40},                   // L, no TL0PICIDX
		{0x90, 0x20},                   // T, no TID byte
		{0x90, 0x10},                   // K, no KEYIDX byte
		{0x90, 0xc0, 0x12},             // id present, TL0PICIDX missing
		{0x90, 0xf0, 0x81, 0x23, 0x07}, // TID/KEYIDX byte missing
	} {
		d := Descriptor{Start: true, PictureID: 9, Size: 3} // stale fields must go
		if err := Parse(p, &d); !errors.Is(err, ErrShort) {
			t.Errorf("Parse(%x) = %v, want ErrShort", p, err)
		}
		if d != (Descriptor{}) {
			t.Errorf("Parse(%x) left %+v, want zero", p, d)
		}
	}
	// Every prefix that cuts a table descriptor short fails too.
	for _, tt := range parseTests {
		for n := 0; n < tt.want.Size; n++ {
			var d Descriptor
			if err := Parse(tt.payload[:n], &d); !errors.Is(err, ErrShort) {
				t.Errorf("%s: Parse(%x) = %v, want ErrShort", tt.name, tt.payload[:n], err)
			}
		}
	}
}

func TestRewrite(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		src       []byte
		pictureID uint16
		tl0       uint8
		want      []byte
	}{
		{"7-bit id and TL0PICIDX", []byte{0x90, 0xc0, 0x12, 0x05, 0xaa, 0xbb}, 0x1234, 9,
			[]byte{0x90, 0xc0, 0x34, 0x09, 0xaa, 0xbb}},
		{"7-bit id wraps", []byte{0x90, 0x80, 0x7f, 0xaa}, 0x80, 0,
			[]byte{0x90, 0x80, 0x00, 0xaa}},
		{"15-bit id keeps M and drops the top bit", []byte{0x90, 0x80, 0x81, 0x23, 0xaa}, 0xfffe, 0,
			[]byte{0x90, 0x80, 0xff, 0xfe, 0xaa}},
		{"15-bit id small value keeps 2 bytes", []byte{0x90, 0x80, 0xff, 0xff, 0xaa}, 3, 0,
			[]byte{0x90, 0x80, 0x80, 0x03, 0xaa}},
		{"L only: the id stays absent", []byte{0x90, 0x40, 0x05, 0x00}, 0x1234, 200,
			[]byte{0x90, 0x40, 0xc8, 0x00}},
		{"I only: TL0PICIDX stays absent", []byte{0x90, 0x80, 0x05, 0x00}, 6, 200,
			[]byte{0x90, 0x80, 0x06, 0x00}},
		{"TID/KEYIDX byte kept", []byte{0x90, 0xf0, 0xab, 0xcd, 0x07, 0xb3, 0x01}, 0x0102, 8,
			[]byte{0x90, 0xf0, 0x81, 0x02, 0x08, 0xb3, 0x01}},
		{"no extension: plain copy", []byte{0x10, 0x00, 0x01}, 5, 5,
			[]byte{0x10, 0x00, 0x01}},
		{"X without fields: plain copy", []byte{0x90, 0x00, 0x01}, 5, 5,
			[]byte{0x90, 0x00, 0x01}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var d Descriptor
			if err := Parse(tt.src, &d); err != nil {
				t.Fatalf("Parse(%x): %v", tt.src, err)
			}
			orig := bytes.Clone(tt.src)
			dst := make([]byte, len(tt.src)+4) // room to spare: only n bytes are the packet
			n, err := Rewrite(dst, tt.src, &d, tt.pictureID, tt.tl0)
			if err != nil {
				t.Fatalf("Rewrite: %v", err)
			}
			if !bytes.Equal(dst[:n], tt.want) {
				t.Fatalf("Rewrite = %x, want %x", dst[:n], tt.want)
			}
			if !bytes.Equal(tt.src, orig) {
				t.Fatalf("Rewrite changed src to %x", tt.src)
			}
			// In place gives the same bytes.
			in := bytes.Clone(tt.src)
			if n, err := Rewrite(in, in, &d, tt.pictureID, tt.tl0); err != nil || !bytes.Equal(in[:n], tt.want) {
				t.Fatalf("Rewrite in place = %x, %v, want %x", in[:n], err, tt.want)
			}
		})
	}
}

// TestRewriteRoundTrip rewrites every table payload and parses the result:
// only the ids change, and the VP8 payload after the descriptor is intact.
func TestRewriteRoundTrip(t *testing.T) {
	t.Parallel()
	for _, tt := range parseTests {
		for _, ids := range []struct {
			pictureID uint16
			tl0       uint8
		}{{0, 0}, {0x7f, 1}, {0x80, 0x80}, {0x1234, 0xff}, {0xffff, 0x42}} {
			var d Descriptor
			if err := Parse(tt.payload, &d); err != nil {
				t.Fatalf("%s: Parse: %v", tt.name, err)
			}
			dst := make([]byte, len(tt.payload))
			n, err := Rewrite(dst, tt.payload, &d, ids.pictureID, ids.tl0)
			if err != nil || n != len(tt.payload) {
				t.Fatalf("%s: Rewrite = %d, %v", tt.name, n, err)
			}
			var got Descriptor
			if err := Parse(dst[:n], &got); err != nil {
				t.Fatalf("%s: Parse(Rewrite) %x: %v", tt.name, dst[:n], err)
			}
			if got != withIDs(d, ids.pictureID, ids.tl0) {
				t.Errorf("%s ids %+v: Parse(Rewrite) =\n %+v, want\n %+v", tt.name, ids, got, withIDs(d, ids.pictureID, ids.tl0))
			}
			if !bytes.Equal(dst[d.Size:n], tt.payload[d.Size:]) {
				t.Errorf("%s: payload after the descriptor %x, want %x", tt.name, dst[d.Size:n], tt.payload[d.Size:])
			}
		}
	}
}

// withIDs is what Parse should return for a rewrite of a payload with
// descriptor d: the new ids in the fields d has, cut to their width.
func withIDs(d Descriptor, pictureID uint16, tl0 uint8) Descriptor {
	switch {
	case !d.HasPictureID:
	case d.PictureIDLen == 2:
		d.PictureID = pictureID & 0x7fff
	default:
		d.PictureID = pictureID & 0x7f
	}
	if d.HasTL0PICIDX {
		d.TL0PICIDX = tl0
	}
	return d
}

func TestRewriteErrors(t *testing.T) {
	t.Parallel()
	src := []byte{0x90, 0xc0, 0x81, 0x23, 0x05, 0xaa}
	var d Descriptor
	if err := Parse(src, &d); err != nil {
		t.Fatal(err)
	}
	dst := make([]byte, len(src)-1)
	if n, err := Rewrite(dst, src, &d, 1, 1); !errors.Is(err, ErrDstShort) || n != 0 {
		t.Errorf("Rewrite into %d bytes = %d, %v, want ErrDstShort", len(dst), n, err)
	}
	if !bytes.Equal(dst, make([]byte, len(dst))) {
		t.Errorf("failed Rewrite wrote %x", dst)
	}

	// A descriptor that does not belong to src must fail, not write the
	// fields at the wrong place or past the end.
	other := func(p []byte) Descriptor {
		var d Descriptor
		if err := Parse(p, &d); err != nil {
			t.Fatal(err)
		}
		return d
	}
	for _, tt := range []struct {
		name string
		src  []byte
		d    Descriptor
	}{
		{"zero descriptor", src, Descriptor{}},
		{"size past src", []byte{0x90, 0xc0, 0x81}, d},
		{"7-bit descriptor on a 15-bit id", src, other([]byte{0x90, 0xc0, 0x12, 0x05, 0x00, 0x00})},
		{"15-bit descriptor on a 7-bit id", []byte{0x90, 0xc0, 0x12, 0x05, 0x00, 0x00}, d},
		{"id descriptor on a payload without X", []byte{0x10, 0x00, 0x00, 0x00, 0x00}, other([]byte{0x90, 0x80, 0x12, 0x00})},
		{"TL0PICIDX descriptor on a payload without L", []byte{0x90, 0x80, 0x12, 0x00}, other([]byte{0x90, 0x40, 0x12, 0x00})},
		{"bad id length", src, func() Descriptor { d := d; d.PictureIDLen = 3; return d }()},
		{"size inside the fields", src, func() Descriptor { d := d; d.Size = 3; return d }()},
	} {
		dst := make([]byte, len(tt.src))
		if n, err := Rewrite(dst, tt.src, &tt.d, 1, 1); !errors.Is(err, ErrMismatch) || n != 0 {
			t.Errorf("%s: Rewrite = %d, %v, want ErrMismatch", tt.name, n, err)
		}
	}
}

// TestAllocations: both run per forwarded packet. The name matches the
// non-race run of scripts/test.sh; the counts hold with -race as well.
func TestAllocations(t *testing.T) {
	src := []byte{0x90, 0xf0, 0xab, 0xcd, 0x07, 0xb3, 0x01, 0x02}
	dst := make([]byte, len(src))
	var d Descriptor
	var err error
	if a := testing.AllocsPerRun(100, func() { err = Parse(src, &d) }); a != 0 || err != nil {
		t.Errorf("Parse: %v allocations, err %v", a, err)
	}
	if a := testing.AllocsPerRun(100, func() { _ = Parse(src[:3], &d) }); a != 0 {
		t.Errorf("Parse of a truncated payload: %v allocations", a)
	}
	if err := Parse(src, &d); err != nil {
		t.Fatal(err)
	}
	if a := testing.AllocsPerRun(100, func() { _, err = Rewrite(dst, src, &d, 7, 8) }); a != 0 || err != nil {
		t.Errorf("Rewrite: %v allocations, err %v", a, err)
	}
	if a := testing.AllocsPerRun(100, func() { _, _ = Rewrite(dst[:1], src, &d, 7, 8) }); a != 0 {
		t.Errorf("Rewrite into a short dst: %v allocations", a)
	}
}
