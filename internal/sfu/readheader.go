package sfu

import (
	"errors"

	"github.com/pion/interceptor"
	"github.com/pion/rtp"
)

// headerReuseFactory builds the innermost interceptor on every publisher
// stream. pion's TrackRemote.Read passes nil attributes down the chain, so
// each interceptor that needs the packet's RTP header (NACK generator,
// receiver reports, TWCC) makes its own attributes map and parses its own
// header: three to four allocations per received packet. This interceptor
// hands them one map and one header per stream instead, reused for every
// packet, so that receiving allocates nothing.
//
// The map and header are valid until the stream's next read. That is safe
// because a stream is read by one goroutine, the interceptors above only
// read header fields during the call (TWCC passes the pointer to its loop,
// which never looks at it), and the SFU ignores the attributes Read returns.
type headerReuseFactory struct {
	key any // the attributes key under which pion's interceptors look for the header
}

func newHeaderReuseFactory() (*headerReuseFactory, error) {
	key, err := rtpHeaderKey()
	if err != nil {
		return nil, err
	}
	return &headerReuseFactory{key: key}, nil
}

// rtpHeaderKey finds the key pion's interceptors cache a parsed header
// under. It is unexported, so it is learnt from a probe.
func rtpHeaderKey() (any, error) {
	probe := interceptor.Attributes{}
	minimal := []byte{0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	if _, err := probe.GetRTPHeader(minimal); err != nil {
		return nil, err
	}
	for key := range probe {
		return key, nil
	}
	return nil, errors.New("sfu: pion's interceptors cache no RTP header in attributes")
}

// NewInterceptor implements interceptor.Factory.
func (f *headerReuseFactory) NewInterceptor(string) (interceptor.Interceptor, error) {
	return &headerReuse{key: f.key}, nil
}

type headerReuse struct {
	interceptor.NoOp
	key any
}

// BindRemoteStream implements interceptor.Interceptor.
func (h *headerReuse) BindRemoteStream(_ *interceptor.StreamInfo, reader interceptor.RTPReader) interceptor.RTPReader {
	attrs := interceptor.Attributes{}
	hdr := &rtp.Header{}
	return interceptor.RTPReaderFunc(func(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
		n, a, err := reader.Read(b, a)
		if err != nil || a != nil {
			return n, a, err
		}
		clear(attrs)
		if _, err := hdr.Unmarshal(b[:n]); err == nil { // else the interceptors above report it
			attrs[h.key] = hdr
		}
		return n, attrs, nil
	})
}
