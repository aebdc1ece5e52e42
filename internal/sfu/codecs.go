package sfu

import (
	"fmt"

	"github.com/pion/interceptor"
	"github.com/pion/interceptor/pkg/nack"
	"github.com/pion/interceptor/pkg/report"
	"github.com/pion/interceptor/pkg/twcc"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"

	"github.com/quartet-rtc/quartet/internal/bwe"
)

const audioLevelURI = sdp.AudioLevelURI

// newMediaEngine registers the codecs and header extensions the SFU
// forwards. There is no RTX: retransmissions come from the SFU's own
// per-layer cache, shared by all subscribers of a track.
func newMediaEngine() (*webrtc.MediaEngine, error) {
	me := &webrtc.MediaEngine{}
	fb := []webrtc.RTCPFeedback{{Type: "goog-remb"}, {Type: "ccm", Parameter: "fir"},
		{Type: "nack"}, {Type: "nack", Parameter: "pli"}}
	codecs := []struct {
		params webrtc.RTPCodecParameters
		kind   webrtc.RTPCodecType
	}{
		{webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{
			MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2, SDPFmtpLine: "minptime=10;useinbandfec=1"},
			PayloadType: 111}, webrtc.RTPCodecTypeAudio},
		{webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{
			MimeType: webrtc.MimeTypeVP8, ClockRate: 90000, RTCPFeedback: fb}, PayloadType: 96}, webrtc.RTPCodecTypeVideo},
		{webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{
			MimeType: webrtc.MimeTypeVP9, ClockRate: 90000, SDPFmtpLine: "profile-id=0", RTCPFeedback: fb},
			PayloadType: 98}, webrtc.RTPCodecTypeVideo},
		{webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{
			MimeType: webrtc.MimeTypeH264, ClockRate: 90000,
			SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f", RTCPFeedback: fb},
			PayloadType: 102}, webrtc.RTPCodecTypeVideo},
		{webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{
			MimeType: webrtc.MimeTypeH264, ClockRate: 90000,
			SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f", RTCPFeedback: fb},
			PayloadType: 106}, webrtc.RTPCodecTypeVideo},
	}
	for _, c := range codecs {
		if err := me.RegisterCodec(c.params, c.kind); err != nil {
			return nil, fmt.Errorf("sfu: register codec %s: %w", c.params.MimeType, err)
		}
	}
	exts := []struct {
		uri  string
		kind webrtc.RTPCodecType
		dirs []webrtc.RTPTransceiverDirection
	}{
		{audioLevelURI, webrtc.RTPCodecTypeAudio, nil},
		// Transport-wide sequence numbers both ways: publishers get
		// feedback from the server, subscribers give it to the server's
		// bandwidth estimator.
		{sdp.TransportCCURI, webrtc.RTPCodecTypeAudio, nil},
		{sdp.TransportCCURI, webrtc.RTPCodecTypeVideo, nil},
		// Simulcast streams are told apart by rid (RFC 8852); only
		// publishers send them.
		{sdp.SDESMidURI, webrtc.RTPCodecTypeVideo, recvOnly},
		{sdp.SDESRTPStreamIDURI, webrtc.RTPCodecTypeVideo, recvOnly},
		{sdp.SDESRepairRTPStreamIDURI, webrtc.RTPCodecTypeVideo, recvOnly},
	}
	for _, x := range exts {
		if err := me.RegisterHeaderExtension(webrtc.RTPHeaderExtensionCapability{URI: x.uri}, x.kind, x.dirs...); err != nil {
			return nil, fmt.Errorf("sfu: register header extension %s: %w", x.uri, err)
		}
	}
	me.RegisterFeedback(webrtc.RTCPFeedback{Type: webrtc.TypeRTCPFBTransportCC}, webrtc.RTPCodecTypeVideo)
	me.RegisterFeedback(webrtc.RTCPFeedback{Type: webrtc.TypeRTCPFBTransportCC}, webrtc.RTPCodecTypeAudio)
	return me, nil
}

var recvOnly = []webrtc.RTPTransceiverDirection{webrtc.RTPTransceiverDirectionRecvonly}

// publisherInterceptors are what a publisher connection runs: reused
// headers first (the innermost reader), NACKs toward the publisher, RTCP
// reports and transport-cc feedback.
func publisherInterceptors() (*interceptor.Registry, error) {
	reg := &interceptor.Registry{}
	reuse, err := newHeaderReuseFactory()
	if err != nil {
		return nil, fmt.Errorf("sfu: header reuse: %w", err)
	}
	reg.Add(reuse)
	gen, err := nack.NewGeneratorInterceptor()
	if err != nil {
		return nil, fmt.Errorf("sfu: nack generator: %w", err)
	}
	reg.Add(gen)
	if err := webrtc.ConfigureRTCPReports(reg); err != nil {
		return nil, fmt.Errorf("sfu: rtcp reports: %w", err)
	}
	feedback, err := twcc.NewSenderInterceptor()
	if err != nil {
		return nil, fmt.Errorf("sfu: twcc feedback: %w", err)
	}
	reg.Add(feedback)
	return reg, nil
}

// subscriberInterceptors are what a subscriber connection runs: sender
// reports (for lip sync in the subscriber) and transport-cc stamping into
// the connection's bandwidth estimator. It receives no media, so nothing
// generates NACKs or feedback.
func subscriberInterceptors(est *bwe.Estimator) (*interceptor.Registry, error) {
	reg := &interceptor.Registry{}
	sr, err := report.NewSenderInterceptor()
	if err != nil {
		return nil, fmt.Errorf("sfu: sender reports: %w", err)
	}
	reg.Add(sr)
	reg.Add(transportCCFactory{est: est})
	return reg, nil
}
