package server_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/quartet-rtc/quartet/internal/client"
	"github.com/quartet-rtc/quartet/internal/room"
	"github.com/quartet-rtc/quartet/internal/testserver"
)

// fanOutSubscribers is how many subscribers join; the fan-out benchmark
// has 100, more than -race on a shared machine carries.
const fanOutSubscribers = 60

// Subscribers that join together while a publisher publishes (the load
// generator's fan-out scenario, in process) each receive its video and its
// audio. It caught a second subscriber offer racing pion's start of ICE
// (see subscriber.settlingLocked): 5 of 100 runs left a subscriber with no
// media at all, its connection connecting for good.
func TestFanOutJoinWhilePublishing(t *testing.T) {
	srv := startServer(t, nil, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	keyframes := make(chan struct{}, 1)
	pub, err := client.Dial(ctx, client.Options{URL: srv.WSURL(), Token: srv.Token(t, "fanout", "publisher"),
		Log: testserver.Logger(), OnKeyframeRequest: func(string) {
			select {
			case keyframes <- struct{}{}:
			default:
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()

	// Half the subscribers are in the room when the tracks are published
	// (each then gets an offer for the video and one for the audio at
	// once, all together); the other half join meanwhile.
	subs := make([]*fanOutSubscriber, fanOutSubscribers)
	var wg sync.WaitGroup
	for i := range subs {
		name := fmt.Sprintf("sub%d", i)
		subs[i] = &fanOutSubscriber{name: name, token: srv.Token(t, "fanout", name), cnt: newCounter()}
		if i == len(subs)/2 {
			wg.Wait()
		}
		wg.Add(1)
		go func() { defer wg.Done(); subs[i].join(ctx, srv) }()
	}
	sending := publishWithKeyframes(t, ctx, pub, keyframes)
	defer sending.Wait()
	defer cancel()
	wg.Wait()
	for _, s := range subs {
		if s.c != nil {
			defer s.c.Close()
		}
		if s.err != nil {
			t.Fatalf("%s: %v", s.name, s.err)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for _, s := range subs {
		for !s.received(pub.SID()) && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
	}
	var missing []string
	for _, s := range subs {
		if !s.received(pub.SID()) {
			missing = append(missing, fmt.Sprintf("%s (%s): video %d, audio %d packets, subscriber connection %s",
				s.name, s.c.SID(), s.cnt.get(pub.SID(), "video"), s.cnt.get(pub.SID(), "audio"),
				webrtc.PeerConnectionState(s.state.Load())))
		}
	}
	if len(missing) > 0 {
		t.Fatalf("%d of %d subscribers did not receive both video and audio:\n%s",
			len(missing), len(subs), strings.Join(missing, "\n"))
	}
}

type fanOutSubscriber struct {
	name  string
	token string
	cnt   *counter
	c     *client.Client
	err   error
	state atomic.Int32 // of the subscriber connection
}

func (s *fanOutSubscriber) join(ctx context.Context, srv *testServer) {
	s.c, s.err = client.Dial(ctx, client.Options{URL: srv.WSURL(), Token: s.token, Log: testserver.Logger(),
		OnTrack: func(tr *webrtc.TrackRemote, info room.TrackInfo) { go s.cnt.consume(tr, info) },
		OnConnectionState: func(target string, st webrtc.PeerConnectionState) {
			if target == room.TargetSubscriber {
				s.state.Store(int32(st))
			}
		}})
}

func (s *fanOutSubscriber) received(from string) bool {
	return s.cnt.get(from, "video") >= 30 && s.cnt.get(from, "audio") >= 25
}

// publishWithKeyframes publishes synthetic VP8 and Opus as the load
// generator does: a keyframe every 3 s, and one at once when asked.
func publishWithKeyframes(t *testing.T, ctx context.Context, c *client.Client, keyframes <-chan struct{}) *sync.WaitGroup {
	t.Helper()
	v, err := client.NewSynthTrack(true, "video", c.SID())
	if err != nil {
		t.Fatal(err)
	}
	a, err := client.NewSynthTrack(false, "audio", c.SID())
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Publish(ctx, map[webrtc.TrackLocal]string{v: room.SourceCamera, a: room.SourceMicrophone}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		_, _ = client.SendSynth(ctx, v, client.SynthConfig{Video: true, FPS: 30, BitrateBPS: 300_000,
			KeyframeInterval: 3 * time.Second, KeyframeRequests: keyframes})
	}()
	go func() { defer wg.Done(); _, _ = client.SendSynth(ctx, a, client.SynthConfig{AudioPayload: 80}) }()
	return &wg
}
