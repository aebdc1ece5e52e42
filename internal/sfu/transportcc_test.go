package sfu

import (
	"testing"

	"github.com/pion/interceptor"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"

	"github.com/quartet-rtc/quartet/internal/bwe"
)

// Every packet to a subscriber gets the next transport-wide sequence
// number in its own extension, without allocating, and the shared header
// it was copied from is never written to.
func TestTransportCCStampingAllocations(t *testing.T) {
	tcc := &transportCC{est: bwe.New(bwe.Config{})}
	var got []uint16
	var ids []uint8
	w := tcc.BindLocalStream(&interceptor.StreamInfo{RTPHeaderExtensions: []interceptor.RTPHeaderExtension{
		{URI: sdp.TransportCCURI, ID: 5}}}, interceptor.RTPWriterFunc(
		func(h *rtp.Header, _ []byte, _ interceptor.Attributes) (int, error) {
			var ext rtp.TransportCCExtension
			if err := ext.Unmarshal(h.GetExtension(5)); err != nil {
				t.Fatal(err)
			}
			got, ids = append(got, ext.TransportSequence), append(ids, h.GetExtensionIDs()...)
			return 0, nil
		}))
	shared := rtp.Header{Version: 2, SequenceNumber: 9}
	shared.Extensions = make([]rtp.Extension, 0, 4) // spare capacity a careless append would use
	for range 3 {
		h := shared // as pion copies the writer's packet
		if _, err := w.Write(&h, []byte{1, 2, 3}, nil); err != nil {
			t.Fatal(err)
		}
	}
	if len(got) != 3 || got[0] != 0 || got[1] != 1 || got[2] != 2 || len(ids) != 3 {
		t.Fatalf("transport sequence numbers %v, extension ids %v", got, ids)
	}
	spare := rtp.Header{Extension: true, ExtensionProfile: rtp.ExtensionProfileOneByte, Extensions: shared.Extensions[:1]}
	if len(shared.Extensions) != 0 || spare.GetExtension(5) != nil {
		t.Fatal("the shared header's extensions were written to")
	}
	if raceEnabled {
		return // allocation counts need a build without -race
	}
	h, payload := shared, []byte{1}
	if allocs := testing.AllocsPerRun(1000, func() { h = shared; _, _ = w.Write(&h, payload, nil) }); allocs > 0 {
		t.Fatalf("%.1f allocations per stamped packet, want 0", allocs)
	}
}
