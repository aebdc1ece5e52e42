package server_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/quartet-rtc/quartet/internal/client"
	"github.com/quartet-rtc/quartet/internal/room"
)

// trackCount is what an in-process sink saw of one track.
type trackCount struct {
	info                       room.TrackInfo
	codec                      room.Codec
	packets, keyframes, srs    atomic.Int64
	afterEnd                   atomic.Int64
	ended                      atomic.Bool
	firstKeyframe, firstPacket atomic.Bool
}

func (c *trackCount) WriteRTP(_ *rtp.Packet, meta room.PacketMeta) {
	if c.ended.Load() {
		c.afterEnd.Add(1)
	}
	if !c.firstPacket.Swap(true) {
		c.firstKeyframe.Store(meta.Keyframe)
	}
	c.packets.Add(1)
	if meta.Keyframe {
		c.keyframes.Add(1)
	}
}

func (c *trackCount) SenderReport(sr room.SenderReport) {
	if sr.NTPTime != 0 {
		c.srs.Add(1)
	}
}

func (c *trackCount) Ended() { c.ended.Store(true) }

// roomCounter is a real in-process consumer of a whole room, as a recorder
// is: it watches the room's tracks and attaches a counting sink to each. As
// the watcher rules require, it attaches on a goroutine of its own.
type roomCounter struct {
	rooms *room.Manager
	name  string
	wg    sync.WaitGroup

	mu      sync.Mutex
	tracks  map[string]*trackCount // by track sid
	removed map[string]bool
	errs    []error
}

func newRoomCounter(rooms *room.Manager, name string) *roomCounter {
	return &roomCounter{rooms: rooms, name: name, tracks: map[string]*trackCount{}, removed: map[string]bool{}}
}

func (rc *roomCounter) TrackAdded(t room.TrackInfo) {
	rc.wg.Add(1)
	go func() {
		defer rc.wg.Done()
		c := &trackCount{info: t}
		a, err := rc.rooms.Attach(rc.name, t.SID, c)
		rc.mu.Lock()
		defer rc.mu.Unlock()
		if err != nil {
			rc.errs = append(rc.errs, err)
			return
		}
		c.codec = a.Codec()
		rc.tracks[t.SID] = c
	}()
}

func (rc *roomCounter) TrackRemoved(t room.TrackInfo) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.removed[t.SID] = true
}

func (rc *roomCounter) get(sid string) *trackCount {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.tracks[sid]
}

func (rc *roomCounter) wasRemoved(sid string) bool {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.removed[sid]
}

// publisher is a participant sending synthetic camera and microphone.
type publisher struct {
	c            *client.Client
	video, audio *webrtc.TrackLocalStaticRTP
	stopVideo    context.CancelFunc
	done         sync.WaitGroup
}

func startPublisher(t *testing.T, ctx context.Context, srv *testServer, roomName, identity string) *publisher {
	t.Helper()
	c := srv.join(t, ctx, roomName, identity, newCounter(), false)
	p := &publisher{c: c}
	var err error
	if p.video, err = client.NewSynthTrack(true, "v-"+identity, identity); err != nil {
		t.Fatal(err)
	}
	if p.audio, err = client.NewSynthTrack(false, "a-"+identity, identity); err != nil {
		t.Fatal(err)
	}
	if err := c.Publish(ctx, map[webrtc.TrackLocal]string{p.video: room.SourceCamera, p.audio: room.SourceMicrophone}); err != nil {
		t.Fatal(err)
	}
	videoCtx, stop := context.WithCancel(ctx)
	p.stopVideo = stop
	p.done.Add(2)
	go func() {
		defer p.done.Done()
		_, _ = client.SendSynth(videoCtx, p.video, client.SynthConfig{Video: true, FPS: 30, BitrateBPS: 300_000, KeyframeInterval: time.Second})
	}()
	go func() {
		defer p.done.Done()
		_, _ = client.SendSynth(ctx, p.audio, client.SynthConfig{AudioPayload: 80})
	}()
	return p
}

// TestSinkFollowsEveryTrackOfARoom runs an in-process consumer that counts
// packets, keyframes and sender reports per track for a whole room while
// participants join, publish, unpublish and leave.
func TestSinkFollowsEveryTrackOfARoom(t *testing.T) {
	t.Parallel()
	srv := startServer(t, nil, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	rc := newRoomCounter(srv.Rooms(), "sinks")
	stop := srv.Rooms().Watch("sinks", rc) // before the room exists

	alice := startPublisher(t, ctx, srv, "sinks", "alice")
	defer alice.c.Close()
	bob := startPublisher(t, ctx, srv, "sinks", "bob")
	defer bob.c.Close()
	sid := func(p *publisher, tr webrtc.TrackLocal) string { return p.c.TrackSID(tr.ID()) }
	all := func() []string {
		return []string{sid(alice, alice.video), sid(alice, alice.audio), sid(bob, bob.video), sid(bob, bob.audio)}
	}
	waitUntil(t, 30*time.Second, "every track counted, with sender reports", func() bool {
		for _, s := range all() {
			c := rc.get(s)
			if c == nil || c.packets.Load() < 40 || c.srs.Load() < 1 {
				return false
			}
		}
		return true
	})
	for _, s := range all() {
		c := rc.get(s)
		video := c.info.Kind == "video"
		if video && (c.keyframes.Load() == 0 || !c.firstKeyframe.Load()) {
			t.Errorf("video track %s: %d keyframe packets, first packet a keyframe: %v", s, c.keyframes.Load(), c.firstKeyframe.Load())
		}
		wantMime, wantRate := webrtc.MimeTypeOpus, uint32(48000)
		if video {
			wantMime, wantRate = webrtc.MimeTypeVP8, 90000
		}
		if c.codec.MimeType != wantMime || c.codec.ClockRate != wantRate {
			t.Errorf("track %s codec %+v, want %s at %d Hz", s, c.codec, wantMime, wantRate)
		}
	}

	// Bob stops his camera: its sink ends, the others go on.
	bobVideo := rc.get(sid(bob, bob.video))
	bob.stopVideo()
	if err := bob.c.Unpublish(ctx, bob.video); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 20*time.Second, "bob's camera sink ended", func() bool {
		return bobVideo.ended.Load() && rc.wasRemoved(sid(bob, bob.video))
	})

	// Carol joins late and publishes: the watcher picks her up.
	carol := startPublisher(t, ctx, srv, "sinks", "carol")
	waitUntil(t, 20*time.Second, "carol's tracks counted", func() bool {
		v, a := rc.get(sid(carol, carol.video)), rc.get(sid(carol, carol.audio))
		return v != nil && a != nil && v.packets.Load() > 30 && a.packets.Load() > 30
	})

	// Alice leaves: her sinks end; Bob's microphone keeps flowing.
	aliceTracks := []*trackCount{rc.get(sid(alice, alice.video)), rc.get(sid(alice, alice.audio))}
	alice.c.Close()
	waitUntil(t, 20*time.Second, "alice's sinks ended", func() bool {
		return aliceTracks[0].ended.Load() && aliceTracks[1].ended.Load()
	})
	bobAudio := rc.get(sid(bob, bob.audio))
	before := bobAudio.packets.Load()
	waitUntil(t, 10*time.Second, "bob's microphone still counted", func() bool { return bobAudio.packets.Load() > before+20 })

	carol.c.Close()
	bob.c.Close()
	waitUntil(t, 20*time.Second, "every sink ended", func() bool {
		for _, s := range append(all(), sid(carol, carol.video), sid(carol, carol.audio)) {
			if c := rc.get(s); c == nil || !c.ended.Load() {
				return false
			}
		}
		return true
	})
	stop()
	rc.wg.Wait()
	cancel()
	for _, p := range []*publisher{alice, bob, carol} {
		p.done.Wait()
	}
	for s, c := range rc.tracks {
		if n := c.afterEnd.Load(); n > 0 {
			t.Errorf("track %s: %d packets after Ended", s, n)
		}
	}
	if len(rc.errs) > 0 {
		t.Errorf("attach errors: %v", rc.errs)
	}
}

// A sink attached to a track that does not exist is refused.
func TestAttachUnknownTrack(t *testing.T) {
	t.Parallel()
	srv := startServer(t, nil, nil)
	if _, err := srv.Rooms().Attach("nowhere", "TR_x", &trackCount{}); err == nil {
		t.Fatal("attached to a track in a room that does not exist")
	}
}
