package sfu

import (
	"errors"
	"reflect"
	"testing"

	"github.com/quartet-rtc/quartet/internal/room"
)

const chromeLikeOffer = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n" +
	"a=group:BUNDLE 0 1 2\r\n" +
	"m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=sendonly\r\na=msid:stream mic-1\r\na=rtpmap:111 opus/48000/2\r\n" +
	"m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:1\r\na=sendonly\r\na=msid:stream cam-1\r\na=rtpmap:96 VP8/90000\r\n" +
	"m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:2\r\na=inactive\r\na=rtpmap:96 VP8/90000\r\n" +
	"m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:3\r\na=sendonly\r\na=msid:stream cam-2\r\na=rtpmap:96 VP8/90000\r\n" +
	"a=rid:q send\r\na=rid:h send\r\na=rid:f send\r\na=simulcast:send q;~h;f,f2\r\n"

func TestParseOffer(t *testing.T) {
	t.Parallel()
	tracks, err := parseOffer(chromeLikeOffer)
	if err != nil {
		t.Fatal(err)
	}
	want := []offerTrack{{trackID: "mic-1", kind: "audio"}, {trackID: "cam-1", kind: "video"},
		{trackID: "cam-2", kind: "video", rids: []string{"q", "h", "f"}}}
	if !reflect.DeepEqual(tracks, want) {
		t.Fatalf("tracks = %+v, want %+v (the inactive section is no track; rids without pause markers and alternatives)", tracks, want)
	}
	if _, err := parseOffer("not sdp"); !errors.Is(err, room.ErrBadSDP) {
		t.Fatalf("garbage: %v, want ErrBadSDP", err)
	}
}

func FuzzParseOffer(f *testing.F) {
	f.Add(chromeLikeOffer)
	f.Add("v=0\r\n")
	f.Add("m=video 9 RTP/AVP 96\r\na=msid:x\r\n")
	f.Fuzz(func(t *testing.T, offer string) {
		tracks, err := parseOffer(offer)
		if err != nil && !errors.Is(err, room.ErrBadSDP) {
			t.Fatalf("unexpected error kind: %v", err)
		}
		for _, tr := range tracks {
			if tr.trackID == "" || (tr.kind != "audio" && tr.kind != "video") {
				t.Fatalf("bad track %+v", tr)
			}
		}
	})
}
