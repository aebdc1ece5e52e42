package client

import (
	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
)

// rtcpTap is an interceptor that shows every outgoing RTCP packet to a
// callback, so a load generator can count the NACKs it sends.
type rtcpTap struct {
	interceptor.NoOp
	on func([]rtcp.Packet)
}

type rtcpTapFactory func([]rtcp.Packet)

// NewInterceptor implements interceptor.Factory.
func (f rtcpTapFactory) NewInterceptor(string) (interceptor.Interceptor, error) {
	return &rtcpTap{on: f}, nil
}

// BindRTCPWriter implements interceptor.Interceptor.
func (t *rtcpTap) BindRTCPWriter(w interceptor.RTCPWriter) interceptor.RTCPWriter {
	return interceptor.RTCPWriterFunc(func(pkts []rtcp.Packet, attrs interceptor.Attributes) (int, error) {
		t.on(pkts)
		return w.Write(pkts, attrs)
	})
}
