package sfu

import (
	"encoding/binary"
	"sync/atomic"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"

	"github.com/quartet-rtc/quartet/internal/bwe"
)

// transportCCFactory makes the interceptor of one subscriber connection
// that stamps transport-wide sequence numbers (transport-cc) on every
// packet the server sends it — media, retransmissions and padding — and
// feeds that connection's bandwidth estimator with what was sent and with
// the feedback the subscriber returns.
type transportCCFactory struct{ est *bwe.Estimator }

// NewInterceptor implements interceptor.Factory.
func (f transportCCFactory) NewInterceptor(string) (interceptor.Interceptor, error) {
	return &transportCC{est: f.est}, nil
}

type transportCC struct {
	interceptor.NoOp
	est  *bwe.Estimator
	next atomic.Uint32 // the next transport-wide sequence number
}

// BindLocalStream implements interceptor.Interceptor.
func (t *transportCC) BindLocalStream(info *interceptor.StreamInfo, writer interceptor.RTPWriter) interceptor.RTPWriter {
	for _, ext := range info.RTPHeaderExtensions {
		if ext.URI == sdp.TransportCCURI && ext.ID > 0 && ext.ID < 15 {
			return &stampedStream{t: t, id: uint8(ext.ID), next: writer}
		}
	}
	return writer // not negotiated: nothing to stamp
}

// BindRTCPReader implements interceptor.Interceptor: it takes the
// transport-cc feedback out of the RTCP the subscriber sends.
func (t *transportCC) BindRTCPReader(reader interceptor.RTCPReader) interceptor.RTCPReader {
	return interceptor.RTCPReaderFunc(func(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
		n, a, err := reader.Read(b, a)
		if err != nil {
			return n, a, err
		}
		if a == nil {
			a = interceptor.Attributes{}
		}
		pkts, err := a.GetRTCPPackets(b[:n])
		if err != nil {
			return n, a, nil // not ours to judge; the next reader sees the error
		}
		now := time.Now()
		for _, p := range pkts {
			if fb, ok := p.(*rtcp.TransportLayerCC); ok {
				t.est.Feedback(fb, now)
			}
		}
		return n, a, nil
	})
}

// stampedStream is one sender's stream of a subscriber connection. Its
// packets come from the subscriber's one writer goroutine, so the
// extension buffers are reused without a lock.
type stampedStream struct {
	t    *transportCC
	id   uint8
	next interceptor.RTPWriter
	exts [1]rtp.Extension
	seq  [2]byte
}

// Write implements interceptor.RTPWriter.
func (s *stampedStream) Write(h *rtp.Header, payload []byte, a interceptor.Attributes) (int, error) {
	seq := uint16(s.t.next.Add(1) - 1)
	binary.BigEndian.PutUint16(s.seq[:], seq)
	// Forwarded packets carry no extension (their ids were the
	// publisher's): the header gets this stream's own, so that the
	// packet shared with other subscribers is never written to.
	h.Extension, h.Extensions = false, s.exts[:0]
	if err := h.SetExtension(s.id, s.seq[:]); err != nil {
		return 0, err
	}
	probe := len(payload) == 0 && h.PaddingSize > 0
	s.t.est.Sent(seq, h.MarshalSize()+len(payload)+int(h.PaddingSize), time.Now(), probe)
	return s.next.Write(h, payload, a)
}
