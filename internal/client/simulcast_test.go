package client_test

import (
	"context"
	"encoding/json"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/quartet-rtc/quartet/internal/client"
	"github.com/quartet-rtc/quartet/internal/room"
	"github.com/quartet-rtc/quartet/internal/testserver"
)

// layerWatch records which simulcast layer a subscriber's video packets
// came from, from the marked synthetic payload.
type layerWatch struct {
	mu     sync.Mutex
	counts map[int]int
	last   atomic.Int32
	sizes  map[[2]int]bool // keyframe sizes seen
}

func newLayerWatch() *layerWatch {
	w := &layerWatch{counts: map[int]int{}, sizes: map[[2]int]bool{}}
	w.last.Store(-1)
	return w
}

func (w *layerWatch) read(t *webrtc.TrackRemote) {
	buf := make([]byte, 1500)
	var pkt rtp.Packet
	for {
		n, _, err := t.Read(buf)
		if err != nil {
			return
		}
		if pkt.Unmarshal(buf[:n]) != nil || len(pkt.Payload) == 0 {
			continue
		}
		p, ok := client.ParseSynth(true, pkt.Payload)
		if !ok || !p.Marked {
			continue
		}
		w.mu.Lock()
		w.counts[p.Layer]++
		if p.Keyframe {
			w.sizes[[2]int{p.Width, p.Height}] = true
		}
		w.mu.Unlock()
		w.last.Store(int32(p.Layer))
	}
}

func (w *layerWatch) reset() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.counts = map[int]int{}
}

func (w *layerWatch) count(layer int) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.counts[layer]
}

func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(timeout); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
	}
}

// A simulcast publisher's track is announced with its three layers; a
// subscriber receives the high layer by default and the low one once it
// asks for quality low, and with only that subscriber left wanting it the
// server turns the high layer off (dynacast) and the client stops it.
func TestSimulcastPublishAndPreferences(t *testing.T) {
	srv := testserver.Start(t, testserver.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pub := dial(t, srv, "pub", client.Options{})
	defer pub.Close()
	watch := newLayerWatch()
	var videoSID atomic.Value
	sub := dial(t, srv, "sub", client.Options{OnTrack: func(tr *webrtc.TrackRemote, info room.TrackInfo) {
		if tr.Kind() == webrtc.RTPCodecTypeVideo {
			videoSID.Store(info)
			go watch.read(tr)
		}
	}})
	defer sub.Close()

	st, err := client.NewSimulcastTrack("cam", pub.SID(), client.DefaultSimulcastLayers())
	if err != nil {
		t.Fatal(err)
	}
	if err := pub.PublishSimulcast(ctx, st, room.SourceCamera); err != nil {
		t.Fatal(err)
	}
	sendCtx, stopSending := context.WithCancel(ctx)
	var sending sync.WaitGroup
	sending.Add(1)
	go func() {
		defer sending.Done()
		_, _ = client.SendSimulcastSynth(sendCtx, st, client.SimulcastSynthConfig{FPS: 30, KeyframeInterval: 2 * time.Second})
	}()
	defer func() { stopSending(); sending.Wait() }()

	msg, err := sub.WaitFor(ctx, func(m client.Message) bool { return m.Type == "track_published" })
	if err != nil {
		t.Fatal(err)
	}
	var published struct{ Track room.TrackInfo }
	if err := json.Unmarshal(msg.Raw, &published); err != nil {
		t.Fatal(err)
	}
	want := []room.Layer{{RID: "q", Quality: "low", Width: 320, Height: 180, Bitrate: 150_000},
		{RID: "h", Quality: "medium", Width: 640, Height: 360, Bitrate: 500_000},
		{RID: "f", Quality: "high", Width: 1280, Height: 720, Bitrate: 1_700_000}}
	if !slices.Equal(published.Track.Layers, want) {
		t.Fatalf("track_published layers %+v, want %+v", published.Track.Layers, want)
	}
	sid := published.Track.SID

	waitFor(t, 10*time.Second, "the high layer at the subscriber", func() bool { return watch.last.Load() == 2 })
	if err := sub.SetTrackSettings(client.TrackSettings{TrackSIDs: []string{sid}, Quality: room.QualityLow}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the low layer after quality low", func() bool { return watch.last.Load() == 0 })
	watch.reset()
	time.Sleep(500 * time.Millisecond)
	if n := watch.count(1) + watch.count(2); n != 0 {
		t.Errorf("%d packets of the medium or high layer after the switch to low", n)
	}
	waitFor(t, 10*time.Second, "dynacast turning medium and high off", func() bool { return !st.Active(2) && !st.Active(1) })
	if !st.Active(0) {
		t.Error("the low layer was turned off too")
	}
	if err := sub.SetTrackSettings(client.TrackSettings{TrackSIDs: []string{sid}, Quality: room.QualityHigh}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the high layer turned back on", func() bool { return st.Active(2) })
	waitFor(t, 5*time.Second, "the high layer at the subscriber again", func() bool { return watch.last.Load() == 2 })
	watch.mu.Lock()
	sizes := watch.sizes
	watch.mu.Unlock()
	if !sizes[[2]int{1280, 720}] || !sizes[[2]int{320, 180}] {
		t.Errorf("keyframe sizes seen %v, want 1280x720 and 320x180 among them", sizes)
	}
	if _, ok := videoSID.Load().(room.TrackInfo); !ok {
		t.Error("OnTrack saw no track info")
	}
}
