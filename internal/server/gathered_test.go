package server_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/quartet-rtc/quartet/internal/client"
	"github.com/quartet-rtc/quartet/internal/room"
	"github.com/quartet-rtc/quartet/internal/testserver"
)

// door is the smallest front door: it joins through room.Manager.Join and
// records what the room and the media session tell it, as a WHIP or WHEP
// endpoint would before translating it to HTTP.
type door struct {
	mu     sync.Mutex
	events []string
	closed string
}

func (d *door) add(s string) { d.mu.Lock(); d.events = append(d.events, s); d.mu.Unlock() }

func (d *door) Deliver(ev room.Event)                             { d.add(ev.EventType()) }
func (d *door) Close(reason string)                               { d.mu.Lock(); d.closed = reason; d.mu.Unlock() }
func (d *door) PublisherAnswer(string, []room.TrackInfo)          { d.add("publisher_answer") }
func (d *door) SubscriberOffer(string, map[string]room.TrackInfo) { d.add("subscriber_offer") }
func (d *door) LocalCandidate(target string, c *room.Candidate)   {}
func (d *door) StreamState(string, string, string)                { d.add("stream_state") }
func (d *door) SubscribedLayers(string, []room.LayerState)        { d.add("subscribed_layers") }
func (d *door) saw(s string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, e := range d.events {
		if e == s {
			return true
		}
	}
	return false
}

func joinDoor(t *testing.T, ctx context.Context, srv *testServer, roomName, identity string, perms room.Permissions) (*room.Member, *door) {
	t.Helper()
	d := &door{}
	mem, err := srv.Rooms().Join(ctx, room.JoinRequest{Room: roomName, Participant: d, Events: d, ManualSubscribe: true,
		Info: room.ParticipantInfo{SID: room.NewSID("PA_"), Identity: identity, Name: identity, Permissions: &perms,
			JoinedAt: time.Now()}})
	if err != nil {
		t.Fatalf("%s: join: %v", identity, err)
	}
	t.Cleanup(func() { mem.Leave("test over") })
	return mem, d
}

// gatheredOffer makes pc's offer and waits for its candidates, as a WHIP or
// WHEP client does before its one POST.
func gatheredOffer(t *testing.T, pc *webrtc.PeerConnection) string {
	t.Helper()
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	<-gathered
	return pc.LocalDescription().SDP
}

func newTestPC(t *testing.T) *webrtc.PeerConnection {
	t.Helper()
	api, err := client.NewAPI(testserver.Logger(), false)
	if err != nil {
		t.Fatal(err)
	}
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pc.Close() })
	return pc
}

// A publisher that takes one complete answer (WHIP) publishes with
// PublishGathered: the answer carries the server's candidates, no
// trickle follows, and a native participant receives its media.
func TestGatheredPublishAnswer(t *testing.T) {
	t.Parallel()
	srv := startServer(t, nil, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	viewerCnt := newCounter()
	viewer := srv.join(t, ctx, "whip", "viewer", viewerCnt, true)
	defer viewer.Close()

	mem, d := joinDoor(t, ctx, srv, "whip", "encoder", room.Permissions{CanPublish: true})
	pc := newTestPC(t)
	video, err := client.NewSynthTrack(true, "cam", "encoder")
	if err != nil {
		t.Fatal(err)
	}
	audio, err := client.NewSynthTrack(false, "mic", "encoder")
	if err != nil {
		t.Fatal(err)
	}
	for _, tr := range []webrtc.TrackLocal{video, audio} {
		if _, err := pc.AddTransceiverFromTrack(tr, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly}); err != nil {
			t.Fatal(err)
		}
	}
	answer, err := mem.Media().PublishGathered(ctx, gatheredOffer(t, pc),
		[]room.TrackMeta{{TrackID: "cam", Source: room.SourceCamera}, {TrackID: "mic", Source: room.SourceMicrophone}})
	if err != nil {
		t.Fatalf("PublishGathered: %v", err)
	}
	if !strings.Contains(answer.SDP, "a=candidate:") || len(answer.Tracks) != 2 {
		t.Fatalf("answer has no candidates or not 2 tracks (%d):\n%s", len(answer.Tracks), answer.SDP)
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer.SDP}); err != nil {
		t.Fatal(err)
	}
	go func() {
		_, _ = client.SendSynth(ctx, video, client.SynthConfig{Video: true, FPS: 30, BitrateBPS: 300_000, KeyframeInterval: time.Second})
	}()
	go func() { _, _ = client.SendSynth(ctx, audio, client.SynthConfig{AudioPayload: 80}) }()
	waitUntil(t, 20*time.Second, "the native viewer receives the gathered publisher", func() bool {
		return viewerCnt.get(mem.SID(), "video") > 30 && viewerCnt.get(mem.SID(), "audio") > 30
	})
	if d.saw("publisher_answer") {
		t.Error("a gathered publish also sent a PublisherAnswer event")
	}
	sources := map[string]string{}
	for _, tr := range answer.Tracks {
		sources[tr.Kind] = tr.Source
	}
	if sources["video"] != room.SourceCamera || sources["audio"] != room.SourceMicrophone {
		t.Errorf("track sources %v", sources)
	}
}

// A viewer that offers to receive (WHEP's recvonly offer) gets an answer
// that puts the publisher's tracks on its media sections, and their media.
func TestClientOfferedSubscription(t *testing.T) {
	t.Parallel()
	srv := startServer(t, nil, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	alice := startPublisher(t, ctx, srv, "whep", "alice")
	defer alice.c.Close()
	waitUntil(t, 20*time.Second, "alice's tracks published", func() bool { return srv.Media().TrackCount() == 2 })
	want := map[string]string{"video": alice.c.TrackSID(alice.video.ID()), "audio": alice.c.TrackSID(alice.audio.ID())}

	mem, _ := joinDoor(t, ctx, srv, "whep", "viewer", room.Permissions{CanSubscribe: true})
	pc := newTestPC(t)
	for _, kind := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio} {
		if _, err := pc.AddTransceiverFromKind(kind, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
			t.Fatal(err)
		}
	}
	cnt := newCounter()
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		go cnt.consume(tr, room.TrackInfo{SID: tr.ID(), ParticipantSID: tr.StreamID()})
	})
	answer, err := mem.Media().AcceptSubscriberOffer(ctx, gatheredOffer(t, pc), []string{want["video"], want["audio"]})
	if err != nil {
		t.Fatalf("AcceptSubscriberOffer: %v", err)
	}
	if !strings.Contains(answer.SDP, "a=candidate:") || len(answer.Mids) != 2 {
		t.Fatalf("answer has no candidates or not 2 mapped sections (%v):\n%s", answer.Mids, answer.SDP)
	}
	for mid, info := range answer.Mids {
		if want[info.Kind] != info.SID {
			t.Errorf("mid %s carries %s (%s), want %s", mid, info.SID, info.Kind, want[info.Kind])
		}
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer.SDP}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 20*time.Second, "the viewer receives alice's video and audio", func() bool {
		return cnt.track(want["video"]) > 30 && cnt.track(want["audio"]) > 30
	})

	// Subscribing to one's own or an unknown track fails whole.
	if _, err := mem.Media().AcceptSubscriberOffer(ctx, gatheredOffer(t, newTestPC(t)), []string{"TR_nope"}); err == nil {
		t.Error("an offer naming an unknown track was accepted")
	}
}
