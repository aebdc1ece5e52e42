package server_test

import (
	"context"
	"encoding/json"
	"regexp"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/quartet-rtc/quartet/internal/client"
	"github.com/quartet-rtc/quartet/internal/room"
)

// trackEvent decodes a track_published or track_unpublished message.
func trackEvent(m client.Message) room.TrackInfo {
	var ev struct{ Track room.TrackInfo }
	_ = json.Unmarshal(m.Raw, &ev)
	return ev.Track
}

func TestPublishAndUnpublishDuringTheCall(t *testing.T) {
	t.Parallel()
	srv := startServer(t, nil, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	bobCnt := newCounter()
	alice := srv.join(t, ctx, "reneg", "alice", newCounter(), true)
	defer alice.Close()
	bob := srv.join(t, ctx, "reneg", "bob", bobCnt, true)
	defer bob.Close()
	publishSynth(t, ctx, alice, true, true)
	waitUntil(t, 20*time.Second, "bob to receive alice's camera", func() bool { return bobCnt.get(alice.SID(), "video") > 30 })

	// Alice starts sharing her screen: a second video track, mid-call.
	screen, err := client.NewSynthTrack(true, "screen", alice.SID())
	if err != nil {
		t.Fatal(err)
	}
	if err := alice.Publish(ctx, map[webrtc.TrackLocal]string{screen: room.SourceScreen}); err != nil {
		t.Fatal(err)
	}
	screenCtx, stopScreen := context.WithCancel(ctx)
	go client.SendSynth(screenCtx, screen, client.SynthConfig{Video: true, FPS: 15, BitrateBPS: 300_000, KeyframeInterval: time.Second})
	m, err := bob.WaitFor(ctx, func(m client.Message) bool {
		return m.Type == "track_published" && trackEvent(m).Source == room.SourceScreen
	})
	if err != nil {
		t.Fatal(err)
	}
	screenSID := trackEvent(m).SID
	waitUntil(t, 20*time.Second, "bob to receive alice's screen", func() bool { return bobCnt.track(screenSID) > 20 })

	// She stops sharing: everyone is told and the server forgets the track.
	stopScreen()
	if err := alice.Unpublish(ctx, screen); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.WaitFor(ctx, func(m client.Message) bool {
		return m.Type == "track_unpublished" && trackEvent(m).SID == screenSID
	}); err != nil {
		t.Fatalf("bob was not told the screen share ended: %v", err)
	}
	waitUntil(t, 10*time.Second, "the room to list two tracks for alice", func() bool {
		for _, p := range srv.Rooms().Get("reneg").Participants() {
			if p.SID == alice.SID() {
				return len(p.Tracks) == 2
			}
		}
		return false
	})
	// The camera keeps flowing.
	before := bobCnt.get(alice.SID(), "video")
	waitUntil(t, 10*time.Second, "camera media after the unpublish", func() bool {
		return bobCnt.get(alice.SID(), "video") > before+30
	})
}

var ufragRE = regexp.MustCompile(`a=ice-ufrag:(\S+)`)

func TestSubscriberICERestartKeepsMedia(t *testing.T) {
	t.Parallel()
	srv := startServer(t, nil, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	bobCnt := newCounter()
	alice := srv.join(t, ctx, "restart", "alice", newCounter(), true)
	defer alice.Close()
	bob := srv.join(t, ctx, "restart", "bob", bobCnt, true)
	defer bob.Close()
	publishSynth(t, ctx, alice, true, false)
	waitUntil(t, 20*time.Second, "media before the restart", func() bool { return bobCnt.get(alice.SID(), "video") > 30 })
	offers := func() []string {
		var ufrags []string
		for _, m := range bob.Messages() {
			if m.Type == "offer" {
				var o struct{ SDP string }
				_ = json.Unmarshal(m.Raw, &o)
				if u := ufragRE.FindStringSubmatch(o.SDP); u != nil {
					ufrags = append(ufrags, u[1])
				}
			}
		}
		return ufrags
	}
	first := offers()
	if err := bob.RestartICE(ctx); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 10*time.Second, "a subscriber offer with new ICE credentials", func() bool {
		all := offers()
		return len(all) > len(first) && all[len(all)-1] != first[len(first)-1]
	})
	before := bobCnt.get(alice.SID(), "video")
	waitUntil(t, 20*time.Second, "media after the restart", func() bool {
		return bobCnt.get(alice.SID(), "video") > before+60
	})
}

func TestActiveSpeakers(t *testing.T) {
	t.Parallel()
	srv := startServer(t, nil, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	speak := func(c *client.Client, level uint8) {
		track, err := client.NewSynthTrack(false, "mic", c.SID())
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Publish(ctx, map[webrtc.TrackLocal]string{track: room.SourceMicrophone}); err != nil {
			t.Fatal(err)
		}
		id := c.HeaderExtensionID(client.AudioLevelURI)
		if id == 0 {
			t.Fatal("the audio level extension was not negotiated")
		}
		go client.SendSynth(ctx, track, client.SynthConfig{AudioPayload: 60, AudioLevelID: id, AudioLevel: level})
	}
	loud := srv.join(t, ctx, "speakers", "loud", newCounter(), true)
	defer loud.Close()
	quiet := srv.join(t, ctx, "speakers", "quiet", newCounter(), true)
	defer quiet.Close()
	listener := srv.join(t, ctx, "speakers", "listener", newCounter(), true)
	defer listener.Close()
	speak(loud, 20)   // -20 dBov: talking
	speak(quiet, 127) // silence
	m, err := listener.WaitFor(ctx, func(m client.Message) bool {
		return m.Type == "active_speakers" && containsSID(m, loud.SID())
	})
	if err != nil {
		t.Fatalf("no active_speakers naming the talker: %v", err)
	}
	var ev struct{ Speakers []room.Speaker }
	if err := json.Unmarshal(m.Raw, &ev); err != nil {
		t.Fatal(err)
	}
	if len(ev.Speakers) != 1 || ev.Speakers[0].SID != loud.SID() || ev.Speakers[0].Level <= 0.5 {
		t.Fatalf("speakers = %+v, want only the loud participant with a high level", ev.Speakers)
	}
}
