package sfu

import (
	"log/slog"
	"strings"
	"sync"

	"github.com/pion/webrtc/v4"

	"github.com/quartet-rtc/quartet/internal/room"
)

// testUpTrack is an up track without a publisher connection: tests play
// its layer readers by calling fanOut. info.Layers gives it simulcast
// layers; a video track caches packets. No keyframe request leaves it
// (its layers have no remote).
func testUpTrack(info room.TrackInfo, codec webrtc.RTPCodecParameters, pool *sync.Pool) *UpTrack {
	video := info.Kind == "video"
	u := &UpTrack{info: info, video: video, vp8: strings.EqualFold(codec.MimeType, webrtc.MimeTypeVP8),
		codec: codec, pool: pool, log: slog.New(slog.DiscardHandler)}
	for i := range max(len(info.Layers), 1) {
		l := &upLayer{up: u, index: i}
		if len(info.Layers) > 0 {
			l.rid = info.Layers[i].RID
		}
		if video {
			l.cache = NewPacketCache(512)
		}
		u.layers = append(u.layers, l)
	}
	u.dynacast.init(len(u.layers))
	u.downs.Store(&[]*DownTrack{})
	return u
}
