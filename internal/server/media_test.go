package server_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/quartet-rtc/quartet/internal/client"
	"github.com/quartet-rtc/quartet/internal/room"
)

type (
	webrtcTrack = webrtc.TrackRemote
	roomTrack   = room.TrackInfo
)

func (c *counter) consume(tr *webrtc.TrackRemote, info room.TrackInfo) {
	key := info.ParticipantSID + "/" + tr.Kind().String()
	for {
		pkt, _, err := tr.ReadRTP()
		if err != nil {
			return
		}
		c.mu.Lock()
		c.packets[key]++
		c.packets[info.SID]++
		if c.seqs[key] == nil {
			c.seqs[key] = map[uint16]bool{}
		}
		c.seqs[key][pkt.SequenceNumber] = true
		c.mu.Unlock()
	}
}

// publishSynth publishes synthetic camera and microphone tracks and sends
// media until ctx ends. It returns a wait function giving packets sent.
func publishSynth(t *testing.T, ctx context.Context, c *client.Client, video, audio bool) func() (int, int) {
	t.Helper()
	tracks := map[webrtc.TrackLocal]string{}
	var v, a *webrtc.TrackLocalStaticRTP
	var err error
	if video {
		if v, err = client.NewSynthTrack(true, "video-"+c.SID(), c.SID()); err != nil {
			t.Fatal(err)
		}
		tracks[v] = room.SourceCamera
	}
	if audio {
		if a, err = client.NewSynthTrack(false, "audio-"+c.SID(), c.SID()); err != nil {
			t.Fatal(err)
		}
		tracks[a] = room.SourceMicrophone
	}
	if err := c.Publish(ctx, tracks); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var sentV, sentA int
	if v != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sentV, _ = client.SendSynth(ctx, v, client.SynthConfig{Video: true, FPS: 30, BitrateBPS: 500_000, KeyframeInterval: time.Second})
		}()
	}
	if a != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sentA, _ = client.SendSynth(ctx, a, client.SynthConfig{AudioPayload: 80})
		}()
	}
	return func() (int, int) { wg.Wait(); return sentV, sentA }
}

func TestGroupCallEveryoneReceivesEveryone(t *testing.T) {
	t.Parallel()
	srv := startServer(t, nil, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const n = 4
	clients := make([]*client.Client, n)
	counters := make([]*counter, n)
	var waits []func() (int, int)
	for i := range n {
		counters[i] = newCounter()
		clients[i] = srv.join(t, ctx, "group", fmt.Sprintf("user%d", i), counters[i], true)
		defer clients[i].Close()
		waits = append(waits, publishSynth(t, ctx, clients[i], true, true))
	}
	for i := range n {
		for j := range n {
			if i == j {
				continue
			}
			from := clients[j].SID()
			waitUntil(t, 30*time.Second, fmt.Sprintf("user%d to receive user%d's media", i, j), func() bool {
				return counters[i].get(from, "video") >= 60 && counters[i].get(from, "audio") >= 25
			})
		}
	}
	if got := len(srv.Rooms().Get("group").Participants()); got != n {
		t.Fatalf("room has %d participants, want %d", got, n)
	}

	// The last participant leaves: the others are told, and its media stops.
	leaver := clients[n-1]
	leaver.Close()
	for i := range n - 1 {
		_, err := clients[i].WaitFor(ctx, func(m client.Message) bool {
			return m.Type == "participant_left" && containsSID(m, leaver.SID())
		})
		if err != nil {
			t.Fatalf("user%d did not see the leave: %v", i, err)
		}
	}
	waitUntil(t, 10*time.Second, "the room to shrink", func() bool {
		return len(srv.Rooms().Get("group").Participants()) == n-1
	})
	cancel()
	for _, w := range waits {
		w()
	}
	packets, _, _, _ := srv.Media().Totals()
	if packets == 0 {
		t.Fatal("the server counted no forwarded packets")
	}
}

func containsSID(m client.Message, sid string) bool {
	return len(sid) > 0 && contains(string(m.Raw), `"sid":"`+sid+`"`)
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}
