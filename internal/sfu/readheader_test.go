package sfu

import (
	"testing"

	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
)

// rawStream stands in for the SRTP read stream under the interceptors: it
// returns the same packet with a new sequence number (and TWCC sequence)
// each time, and nil attributes, as pion's does.
type rawStream struct {
	pkt    rtp.Packet
	twccID uint8
}

func newRawStream(t testing.TB, twccID uint8) *rawStream {
	t.Helper()
	s := &rawStream{pkt: rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 96, SSRC: 42},
		Payload: make([]byte, 1000)}, twccID: twccID}
	if twccID != 0 {
		if err := s.pkt.Header.SetExtension(twccID, []byte{0, 0}); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

func (s *rawStream) Read(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
	s.pkt.SequenceNumber++
	if ext := s.pkt.GetExtension(s.twccID); ext != nil {
		ext[0], ext[1] = byte(s.pkt.SequenceNumber>>8), byte(s.pkt.SequenceNumber)
	}
	n, err := s.pkt.MarshalTo(b)
	return n, a, err
}

// seqRecorder is an interceptor that records the sequence number of the
// header it finds in the attributes, as pion's own interceptors look it up.
type seqRecorder struct {
	interceptor.NoOp
	seqs []uint16
}

func (r *seqRecorder) NewInterceptor(string) (interceptor.Interceptor, error) { return r, nil }

func (r *seqRecorder) BindRemoteStream(_ *interceptor.StreamInfo, reader interceptor.RTPReader) interceptor.RTPReader {
	return interceptor.RTPReaderFunc(func(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
		n, a, err := reader.Read(b, a)
		if err != nil {
			return n, a, err
		}
		h, err := a.GetRTPHeader(b[:n])
		if err != nil {
			return n, a, err
		}
		r.seqs = append(r.seqs, h.SequenceNumber)
		return n, a, nil
	})
}

func TestHeaderReuseGivesEachPacketsHeader(t *testing.T) {
	t.Parallel()
	reuse, err := newHeaderReuseFactory()
	if err != nil {
		t.Fatal(err)
	}
	rec := &seqRecorder{}
	reg := &interceptor.Registry{}
	reg.Add(reuse)
	reg.Add(rec)
	chain, err := reg.Build("")
	if err != nil {
		t.Fatal(err)
	}
	defer chain.Close()
	reader := chain.BindRemoteStream(&interceptor.StreamInfo{SSRC: 42}, newRawStream(t, 0))
	buf := make([]byte, maxPacketSize)
	for range 3 {
		if _, _, err := reader.Read(buf, nil); err != nil {
			t.Fatal(err)
		}
	}
	if len(rec.seqs) != 3 || rec.seqs[0] != 1 || rec.seqs[1] != 2 || rec.seqs[2] != 3 {
		t.Fatalf("interceptors saw sequence numbers %v, want [1 2 3]", rec.seqs)
	}
}

// The server's whole interceptor chain on a publisher's stream (NACK
// generator, receiver reports, TWCC feedback) reads packets without
// allocating.
func TestReceiveChainAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts need a build without -race; scripts/test.sh runs this test so")
	}
	reg, err := publisherInterceptors()
	if err != nil {
		t.Fatal(err)
	}
	chain, err := reg.Build("")
	if err != nil {
		t.Fatal(err)
	}
	defer chain.Close()
	chain.BindRTCPWriter(interceptor.RTCPWriterFunc(func([]rtcp.Packet, interceptor.Attributes) (int, error) {
		return 0, nil
	}))
	const twccID = 3
	info := &interceptor.StreamInfo{SSRC: 42, ClockRate: 90000, MimeType: "video/VP8",
		RTCPFeedback:        []interceptor.RTCPFeedback{{Type: "nack"}},
		RTPHeaderExtensions: []interceptor.RTPHeaderExtension{{URI: sdp.TransportCCURI, ID: twccID}}}
	reader := chain.BindRemoteStream(info, newRawStream(t, twccID))
	defer chain.UnbindRemoteStream(info)
	buf := make([]byte, maxPacketSize)
	read := func() {
		if _, _, err := reader.Read(buf, nil); err != nil {
			t.Fatal(err)
		}
	}
	for range 1000 {
		read()
	}
	if allocs := testing.AllocsPerRun(2000, read); allocs > 0.05 {
		t.Fatalf("%.2f allocations per received packet, want 0", allocs)
	}
}
