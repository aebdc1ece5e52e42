package bwe

import (
	"math"
	"testing"

	"github.com/pion/interceptor/pkg/twcc"
	"github.com/pion/rtcp"
)

// lostUS marks a lost packet in buildFeedback's arrivals.
const lostUS = -1

// buildFeedback encodes a TWCC feedback for the consecutive sequence
// numbers from base: arrivalsUS[i] is the remote arrival of base+i in µs
// (≥ 0), or lostUS. It picks run-length chunks for runs of seven or more
// equal statuses, one-bit status vectors where only "lost" and "small
// delta" occur, and two-bit vectors otherwise, as a receiver would.
func buildFeedback(tb testing.TB, base uint16, arrivalsUS []int64, count uint8) *rtcp.TransportLayerCC {
	tb.Helper()
	fb := &rtcp.TransportLayerCC{
		SenderSSRC:         1,
		MediaSSRC:          2,
		BaseSequenceNumber: base,
		PacketStatusCount:  uint16(len(arrivalsUS)),
		FbPktCount:         count,
	}
	var ref int64 = -1
	for _, a := range arrivalsUS {
		if a != lostUS {
			ref = a / refTimeUnitUS
			break
		}
	}
	if ref < 0 {
		ref = 0
	}
	fb.ReferenceTime = uint32(ref) & 0xFFFFFF

	syms := make([]uint16, len(arrivalsUS))
	prev := ref * refTimeUnitUS
	for i, a := range arrivalsUS {
		if a == lostUS {
			syms[i] = symNotReceived
			continue
		}
		q := a - a%rtcp.TypeTCCDeltaScaleFactor // the wire's 250 µs resolution
		d := q - prev
		prev = q
		switch {
		case d >= 0 && d <= 255*rtcp.TypeTCCDeltaScaleFactor:
			syms[i] = symSmallDelta
		case d >= math.MinInt16*rtcp.TypeTCCDeltaScaleFactor && d <= math.MaxInt16*rtcp.TypeTCCDeltaScaleFactor:
			syms[i] = symLargeDelta
		default:
			tb.Fatalf("delta %d µs does not fit a feedback packet", d)
		}
		fb.RecvDeltas = append(fb.RecvDeltas, &rtcp.RecvDelta{Type: syms[i], Delta: d})
	}

	for i := 0; i < len(syms); {
		run := 1
		for i+run < len(syms) && syms[i+run] == syms[i] && run < 0x1FFF {
			run++
		}
		if run >= 7 {
			fb.PacketChunks = append(fb.PacketChunks, &rtcp.RunLengthChunk{
				Type: rtcp.TypeTCCRunLengthChunk, PacketStatusSymbol: syms[i], RunLength: uint16(run),
			})
			i += run
			continue
		}
		oneBit := true
		for j := i; j < min(i+14, len(syms)); j++ {
			if syms[j] > symSmallDelta {
				oneBit = false
			}
		}
		n, size := 7, uint16(rtcp.TypeTCCSymbolSizeTwoBit)
		if oneBit {
			n, size = 14, rtcp.TypeTCCSymbolSizeOneBit
		}
		list := make([]uint16, n) // padded with "not received" past the count
		copy(list, syms[i:min(i+n, len(syms))])
		fb.PacketChunks = append(fb.PacketChunks, &rtcp.StatusVectorChunk{
			Type: rtcp.TypeTCCStatusVectorChunk, SymbolSize: size, SymbolList: list,
		})
		i += n
	}

	size := fb.MarshalSize()
	fb.Header = rtcp.Header{
		Padding: size != headerPlusBody(fb),
		Count:   rtcp.FormatTCC,
		Type:    rtcp.TypeTransportSpecificFeedback,
		Length:  uint16(size/4 - 1),
	}
	return fb
}

// headerPlusBody is the unpadded length of fb on the wire.
func headerPlusBody(fb *rtcp.TransportLayerCC) int {
	n := 4 + 16 + 2*len(fb.PacketChunks)
	for _, d := range fb.RecvDeltas {
		if d.Type == symSmallDelta {
			n++
		} else {
			n += 2
		}
	}
	return n
}

// roundTrip marshals fb and parses it back with pion, so what the
// estimator sees is what would have come off the wire.
func roundTrip(tb testing.TB, fb *rtcp.TransportLayerCC) *rtcp.TransportLayerCC {
	tb.Helper()
	b, err := fb.Marshal()
	if err != nil {
		tb.Fatalf("marshal feedback: %v", err)
	}
	pkts, err := rtcp.Unmarshal(b)
	if err != nil {
		tb.Fatalf("unmarshal feedback: %v", err)
	}
	if len(pkts) != 1 {
		tb.Fatalf("unmarshal feedback: %d packets", len(pkts))
	}
	out, ok := pkts[0].(*rtcp.TransportLayerCC)
	if !ok {
		tb.Fatalf("unmarshal feedback: got %T", pkts[0])
	}
	return out
}

// decode walks fb with the estimator's iterator.
func decode(fb *rtcp.TransportLayerCC, refUS int64) []fbStatus {
	var out []fbStatus
	it := newFBIter(fb, refUS)
	for {
		st, ok := it.next()
		if !ok {
			return out
		}
		out = append(out, st)
	}
}

func TestFeedbackWireRoundTrip(t *testing.T) {
	// Runs, one-bit and two-bit vectors, a large delta, a negative
	// (reordered) delta, and a sequence wrap.
	var arr []int64
	base := int64(1_000_000_123)
	for i := range 40 {
		switch {
		case i >= 10 && i < 20: // run of losses
			arr = append(arr, lostUS)
		case i == 25:
			arr = append(arr, base+int64(i)*1000+80_000) // large delta
		case i == 26:
			arr = append(arr, base+int64(i)*1000) // negative delta
		case i%3 == 0 && i > 20:
			arr = append(arr, lostUS)
		default:
			arr = append(arr, base+int64(i)*1000)
		}
	}
	fb := roundTrip(t, buildFeedback(t, 65530, arr, 7))
	var kinds [2]int
	for _, c := range fb.PacketChunks {
		switch c.(type) {
		case *rtcp.RunLengthChunk:
			kinds[0]++
		case *rtcp.StatusVectorChunk:
			kinds[1]++
		}
	}
	if kinds[0] == 0 || kinds[1] == 0 {
		t.Fatalf("want both chunk kinds, got %d run-length and %d vectors", kinds[0], kinds[1])
	}
	var u refUnwrapper
	got := decode(fb, u.unwrap(fb.ReferenceTime)*refTimeUnitUS)
	if len(got) != len(arr) {
		t.Fatalf("decoded %d statuses, want %d", len(got), len(arr))
	}
	for i, st := range got {
		if st.seq != uint16(65530+i) {
			t.Fatalf("status %d: seq %d", i, st.seq)
		}
		if (arr[i] == lostUS) == st.received {
			t.Fatalf("seq %d: received %v, want %v", st.seq, st.received, arr[i] != lostUS)
		}
		if st.received && st.arrivalUS != arr[i]-arr[i]%250 {
			t.Fatalf("seq %d: arrival %d, want %d", st.seq, st.arrivalUS, arr[i]-arr[i]%250)
		}
	}
}

// TestFeedbackFromPionRecorder decodes what pion's own TWCC receiver side
// (the interceptor's Recorder, which follows Chrome's) produces.
func TestFeedbackFromPionRecorder(t *testing.T) {
	rec := twcc.NewRecorder(1)
	want := map[uint16]int64{}
	at := int64(5_000_000_000)
	for i := range 300 {
		seq := uint16(65400 + i)
		at += int64(200 + (i%7)*900)
		if i%11 == 5 {
			continue // lost
		}
		if i == 150 {
			at += 300_000 // a stall: large delta
		}
		rec.Record(9, seq, at)
		want[seq] = at
	}
	var u refUnwrapper
	seen := 0
	for _, p := range rec.BuildFeedbackPacket() {
		fb := roundTrip(t, p.(*rtcp.TransportLayerCC))
		for _, st := range decode(fb, u.unwrap(fb.ReferenceTime)*refTimeUnitUS) {
			w, ok := want[st.seq]
			if ok != st.received {
				t.Fatalf("seq %d: received %v, want %v", st.seq, st.received, ok)
			}
			if ok {
				seen++
				if d := st.arrivalUS - w; d < -250 || d > 250 {
					t.Fatalf("seq %d: arrival %d, want %d±250", st.seq, st.arrivalUS, w)
				}
			}
		}
	}
	if seen != len(want) {
		t.Fatalf("decoded %d received packets, want %d", seen, len(want))
	}
}

func TestFeedbackMalformed(t *testing.T) {
	// Fewer deltas than received statuses, nil chunks, more statuses than
	// chunks: the walk stops, never panics, and keeps what came before.
	fb := &rtcp.TransportLayerCC{
		BaseSequenceNumber: 10,
		PacketStatusCount:  50,
		PacketChunks: []rtcp.PacketStatusChunk{
			nil,
			(*rtcp.RunLengthChunk)(nil),
			&rtcp.RunLengthChunk{PacketStatusSymbol: symNoDeltaRecvd, RunLength: 2},
			&rtcp.RunLengthChunk{PacketStatusSymbol: symSmallDelta, RunLength: 5},
		},
		RecvDeltas: []*rtcp.RecvDelta{{Delta: 250}, {Delta: 500}, nil},
	}
	got := decode(fb, 0)
	if len(got) != 4 {
		t.Fatalf("decoded %d statuses, want 4: %+v", len(got), got)
	}
	if got[0].hasArrival || !got[0].received || got[3].arrivalUS != 750 {
		t.Fatalf("decoded %+v", got)
	}
}

func TestRefUnwrap(t *testing.T) {
	var u refUnwrapper
	for _, c := range []struct {
		in   uint32
		want int64
	}{{0xFFFFFE, 0xFFFFFE}, {0xFFFFFF, 0xFFFFFF}, {1, 0x1000001}, {0xFFFFFF, 0xFFFFFF}, {3, 0x1000003}} {
		if got := u.unwrap(c.in); got != c.want {
			t.Fatalf("unwrap(%#x) = %#x, want %#x", c.in, got, c.want)
		}
	}
}

func mustUnmarshalTWCC(tb testing.TB, b []byte) *rtcp.TransportLayerCC {
	tb.Helper()
	pkts, err := rtcp.Unmarshal(b)
	if err != nil {
		tb.Fatalf("unmarshal feedback: %v", err)
	}
	fb, ok := pkts[0].(*rtcp.TransportLayerCC)
	if !ok {
		tb.Fatalf("unmarshal feedback: got %T", pkts[0])
	}
	return fb
}
