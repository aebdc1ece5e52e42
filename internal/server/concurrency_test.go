package server_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/quartet-rtc/quartet/internal/client"
	"github.com/quartet-rtc/quartet/internal/config"
	"github.com/quartet-rtc/quartet/internal/room"
	"github.com/quartet-rtc/quartet/internal/testserver"
)

// sinkChurn attaches a sink to every track as it appears and detaches some
// of them at random, on goroutines of its own, as the watcher rules say.
type sinkChurn struct {
	rooms *room.Manager
	name  string
	ctx   context.Context
	wg    sync.WaitGroup
}

func (s *sinkChurn) TrackAdded(t room.TrackInfo) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		a, err := s.rooms.Attach(s.name, t.SID, &trackCount{})
		if err != nil {
			return // unpublished meanwhile
		}
		if rand.IntN(2) == 0 {
			select {
			case <-time.After(time.Duration(rand.IntN(300)) * time.Millisecond):
			case <-s.ctx.Done():
			}
			a.Detach()
		}
	}()
}

func (s *sinkChurn) TrackRemoved(room.TrackInfo) {}

// TestConcurrentRoomChurn runs every path that takes the room and media
// locks at once, for a bounded time, under the race detector: participants
// join, publish, unpublish, toggle subscriptions, drop and leave; sinks
// attach and detach; the admin removes participants. Nothing may deadlock,
// race or leak (TestMain checks goroutines), and the room ends empty.
func TestConcurrentRoomChurn(t *testing.T) {
	t.Parallel()
	srv := startServer(t, func(c *config.Config) { c.Signal.ResumeTimeout = time.Second }, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	churnCtx, stopChurn := context.WithTimeout(ctx, 6*time.Second)
	defer stopChurn()
	sinks := &sinkChurn{rooms: srv.Rooms(), name: "churn", ctx: churnCtx}
	stopWatch := srv.Rooms().Watch("churn", sinks)

	var wg sync.WaitGroup
	for i := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for round := 0; churnCtx.Err() == nil; round++ {
				churnOnce(t, churnCtx, srv, fmt.Sprintf("p%d-%d", i, round))
			}
		}()
	}
	wg.Add(1)
	go func() { // the admin removes whoever is there
		defer wg.Done()
		for churnCtx.Err() == nil {
			if _, ps, ok := srv.Rooms().Describe("churn"); ok && len(ps) > 0 {
				srv.Rooms().Remove("churn", ps[rand.IntN(len(ps))].Identity)
			}
			time.Sleep(400 * time.Millisecond)
		}
	}()
	wg.Wait()
	stopWatch()
	sinks.wg.Wait()
	waitUntil(t, 30*time.Second, "the room to empty", func() bool {
		_, ps, _ := srv.Rooms().Describe("churn")
		return len(ps) == 0 && srv.Media().TrackCount() == 0
	})
}

// churnOnce is one participant's short life: join, publish, maybe toggle a
// subscription or unpublish, then leave or drop.
func churnOnce(t *testing.T, ctx context.Context, srv *testServer, identity string) {
	c, err := client.Dial(ctx, client.Options{URL: srv.WSURL(), Token: srv.Token(t, "churn", identity), Log: testserver.Logger(),
		OnTrack: func(tr *webrtc.TrackRemote, _ room.TrackInfo) { go drain(tr) }})
	if err != nil {
		return // the context ended, or the admin removed us mid-join
	}
	defer c.Close()
	v, err := client.NewSynthTrack(true, "v-"+identity, identity)
	if err != nil {
		t.Error(err)
		return
	}
	if err := c.Publish(ctx, map[webrtc.TrackLocal]string{v: room.SourceCamera}); err != nil {
		return
	}
	life, end := context.WithTimeout(ctx, time.Duration(200+rand.IntN(600))*time.Millisecond)
	defer end()
	go func() {
		_, _ = client.SendSynth(life, v, client.SynthConfig{Video: true, FPS: 30, BitrateBPS: 200_000, KeyframeInterval: time.Second})
	}()
	switch rand.IntN(4) {
	case 0:
		_ = c.Unpublish(life, v)
	case 1:
		if _, ps, ok := srv.Rooms().Describe("churn"); ok {
			for _, p := range ps {
				for _, tr := range p.Tracks {
					if p.Identity != identity {
						_ = c.Unsubscribe(tr.SID)
						_ = c.Subscribe(tr.SID)
					}
				}
			}
		}
	case 2:
		<-life.Done()
		c.Abort() // a dropped connection: parked, then gone after the resume timeout
		return
	}
	<-life.Done()
}

func drain(tr *webrtc.TrackRemote) {
	for {
		if _, _, err := tr.ReadRTP(); err != nil {
			return
		}
	}
}
