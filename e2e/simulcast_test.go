package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// hdCameraScript asks the fake camera for 1280x720 at 15 fps: the three
// simulcast layers of a real camera, at a frame rate two cores encode
// beside the other tabs.
const hdCameraScript = `(() => {
  const md = navigator.mediaDevices;
  const getUserMedia = md.getUserMedia.bind(md);
  md.getUserMedia = (c) => {
    if (c && c.video) c = { ...c, video: { width: { exact: 1280 }, height: { exact: 720 }, frameRate: { ideal: 15 } } };
    return getUserMedia(c);
  };
})();`

// noCameraScript makes the page join with its microphone only.
const noCameraScript = `(() => {
  const md = navigator.mediaDevices;
  const getUserMedia = md.getUserMedia.bind(md);
  md.getUserMedia = (c) => (c && c.video)
    ? Promise.reject(new DOMException('no camera in this test', 'NotFoundError'))
    : getUserMedia(c);
})();`

// inboundVideoJS reads the page's inbound video of one track.
func inboundVideoJS(trackSid string) string {
	return fmt.Sprintf(`(async () => {
  const room = window.quartet.room;
  const rt = room.remoteTracks.find((r) => r.trackSid === %s);
  if (!rt) return { width: 0, frames: 0, freezes: 0 };
  const st = await room.subscriberPC.getStats();
  let out = { width: 0, frames: 0, freezes: 0, mime: '' };
  st.forEach((s) => {
    if (s.type === 'inbound-rtp' && s.kind === 'video' && s.mid === rt.mid) {
      const codec = s.codecId && st.get(s.codecId);
      out = { width: s.frameWidth || 0, frames: s.framesDecoded || 0, freezes: s.freezeCount || 0,
        mime: (codec && codec.mimeType) || '' };
    }
  });
  return out;
})()`, jsString(trackSid))
}

type inboundVideo struct {
	Width   float64 `json:"width"`
	Frames  float64 `json:"frames"`
	Freezes float64 `json:"freezes"`
	Mime    string  `json:"mime"`
}

// preferCodecScript makes the page's video senders prefer one codec.
func preferCodecScript(mime string) string {
	return fmt.Sprintf(`(() => {
  const add = RTCPeerConnection.prototype.addTransceiver;
  RTCPeerConnection.prototype.addTransceiver = function (trackOrKind, init) {
    const tr = add.call(this, trackOrKind, init);
    const kind = typeof trackOrKind === 'string' ? trackOrKind : trackOrKind.kind;
    if (kind === 'video' && tr.setCodecPreferences) {
      const codecs = RTCRtpSender.getCapabilities('video').codecs;
      const first = codecs.filter((c) => c.mimeType === %[1]s && !/packetization-mode=0/.test(c.sdpFmtpLine || ''));
      tr.setCodecPreferences([...first, ...codecs.filter((c) => !first.includes(c))]);
    }
    return tr;
  };
})();`, jsString(mime))
}

// outboundLayersJS sums the publisher's bytes sent per rid.
const outboundLayersJS = `(async () => {
  const st = await window.quartet.room.publisherPC.getStats();
  const out = {};
  st.forEach((s) => { if (s.type === 'outbound-rtp' && s.kind === 'video') out[s.rid || ''] = s.bytesSent || 0; });
  return out;
})()`

// waitInbound polls a page's inbound video of trackSid until ok holds for
// two polls a second apart with frames decoded in between.
func waitInbound(t *testing.T, p *browserPage, trackSid, what string, ok func(inboundVideo) bool) inboundVideo {
	t.Helper()
	deadline := time.Now().Add(mediaTimeout)
	var prev inboundVideo
	for {
		v, err := evalJS[inboundVideo](p, inboundVideoJS(trackSid))
		if err == nil && ok(v) && ok(prev) && v.Frames > prev.Frames {
			t.Logf("%s: %s: %+v", p.name, what, v)
			return v
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: timed out waiting for %s (last %+v, err %v)", p.name, what, v, err)
		}
		prev = v
		time.Sleep(time.Second)
	}
}

// TestBrowserSimulcastLayers: a page publishes its 1280x720 camera as
// simulcast, in VP8 and in H.264; of two subscriber pages, one asks for the
// low layer and gets a 320-wide stream while the other gets the full 1280,
// both decoding. With only the low subscriber left, the publisher stops
// sending its top layer (dynacast).
func TestBrowserSimulcastLayers(t *testing.T) {
	for _, mime := range []string{"video/VP8", "video/H264"} {
		t.Run(strings.TrimPrefix(mime, "video/"), func(t *testing.T) { testSimulcastLayers(t, mime) })
	}
}

func testSimulcastLayers(t *testing.T, mime string) {
	baseURL := startServer(t)
	b := startBrowser(t)
	pub := b.openPageScript(t, baseURL, "e2e-simulcast", "Pub", nil, hdCameraScript+preferCodecScript(mime))
	waitJoined(t, pub)
	waitJS(t, pub, mediaTimeout, "the camera published", `window.quartet.room.localTracks.some((t) => t.source === 'camera' && t.sid)`)
	cam := evalOK[string](t, pub, "camera sid", `window.quartet.room.localTracks.find((t) => t.source === 'camera').sid`)

	big := b.openPageScript(t, baseURL, "e2e-simulcast", "Big", nil, noCameraScript)
	small := b.openPageScript(t, baseURL, "e2e-simulcast", "Small", nil, noCameraScript)
	for _, p := range []*browserPage{big, small} {
		waitJoined(t, p)
		waitJS(t, p, mediaTimeout, "the camera's layers", fmt.Sprintf(
			`(window.quartet.room.remoteTracks.find((r) => r.trackSid === %s) || {layers: []}).layers.length === 3`, jsString(cam)))
	}
	evalOK[bool](t, big, "ask for 1280x720", fmt.Sprintf(
		`(window.quartet.room.setTrackSettings([%s], { width: 1280, height: 720 }), true)`, jsString(cam)))
	evalOK[bool](t, small, "ask for the low layer", fmt.Sprintf(
		`(window.quartet.room.setTrackSettings([%s], { quality: 'low' }), true)`, jsString(cam)))

	v := waitInbound(t, big, cam, "the 1280-wide layer", func(v inboundVideo) bool { return v.Width >= 1280 })
	if v.Mime != mime {
		t.Fatalf("Big receives %q, want %s", v.Mime, mime)
	}
	waitInbound(t, small, cam, "a layer at most 320 wide", func(v inboundVideo) bool { return v.Width > 0 && v.Width <= 320 })
	// Both keep decoding what they were given.
	waitInbound(t, big, cam, "the 1280-wide layer, still", func(v inboundVideo) bool { return v.Width >= 1280 })

	// Dynacast: only the low subscriber is left, so the top layer stops.
	evalOK[bool](t, big, "leave", `(window.quartet.room.leave(), true)`)
	deadline := time.Now().Add(mediaTimeout)
	var before map[string]float64
	for {
		now := evalOK[map[string]float64](t, pub, "outbound layers", outboundLayersJS)
		if before != nil && now["f"] == before["f"] && now["q"] > before["q"] {
			t.Logf("Pub: top layer stopped at %.0f bytes while the low layer goes on (%v)", now["f"], now)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Pub: the top layer still grows with only a low-layer subscriber: %v then %v", before, now)
		}
		before = now
		time.Sleep(2 * time.Second)
	}
	waitInbound(t, small, cam, "the low layer after dynacast", func(v inboundVideo) bool { return v.Width > 0 && v.Width <= 320 })
}
