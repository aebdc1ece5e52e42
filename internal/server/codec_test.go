package server_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/quartet-rtc/quartet/internal/client"
	"github.com/quartet-rtc/quartet/internal/room"
	"github.com/quartet-rtc/quartet/internal/testserver"
)

// sendNALs writes single-NAL-unit H.264 packets: an IDR slice every 30th
// frame, non-IDR slices otherwise.
func sendNALs(ctx context.Context, track *webrtc.TrackLocalStaticRTP) {
	pkt := &rtp.Packet{Header: rtp.Header{Version: 2, Marker: true}, Payload: make([]byte, 800)}
	t := time.NewTicker(33 * time.Millisecond)
	defer t.Stop()
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		pkt.Payload[0] = 0x41 // non-IDR slice
		if i%30 == 0 {
			pkt.Payload[0] = 0x65 // IDR slice
		}
		pkt.SequenceNumber++
		pkt.Timestamp += 3000
		_ = track.WriteRTP(pkt)
	}
}

func TestH264IsForwardedWhenBothSidesSupportIt(t *testing.T) {
	t.Parallel()
	srv := startServer(t, nil, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var mime atomic.Value
	var packets atomic.Int64
	sub, err := client.Dial(ctx, client.Options{URL: srv.WSURL(), Token: srv.Token(t, "h264", "sub"), Log: testserver.Logger(),
		OnTrack: func(tr *webrtc.TrackRemote, _ room.TrackInfo) {
			mime.Store(tr.Codec().MimeType)
			go func() {
				for {
					if _, _, err := tr.ReadRTP(); err != nil {
						return
					}
					packets.Add(1)
				}
			}()
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	pub := srv.join(t, ctx, "h264", "pub", newCounter(), true)
	defer pub.Close()
	track, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000,
		SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"}, "h264", pub.SID())
	if err != nil {
		t.Fatal(err)
	}
	if err := pub.Publish(ctx, map[webrtc.TrackLocal]string{track: room.SourceCamera}); err != nil {
		t.Fatal(err)
	}
	go sendNALs(ctx, track)
	waitUntil(t, 20*time.Second, "H.264 packets at the subscriber", func() bool { return packets.Load() > 30 })
	if got, _ := mime.Load().(string); !strings.EqualFold(got, webrtc.MimeTypeH264) {
		t.Fatalf("subscriber negotiated %q, want H264", got)
	}
}
