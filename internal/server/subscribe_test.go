package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/pion/webrtc/v4"

	"github.com/quartet-rtc/quartet/internal/auth"
	"github.com/quartet-rtc/quartet/internal/client"
	"github.com/quartet-rtc/quartet/internal/room"
	"github.com/quartet-rtc/quartet/internal/testserver"
)

// joinManual is join with autoSubscribe false.
func (s *testServer) joinManual(t *testing.T, ctx context.Context, roomName, identity string, cnt *counter) *client.Client {
	t.Helper()
	c, err := client.Dial(ctx, client.Options{URL: s.WSURL(), Token: s.Token(t, roomName, identity),
		Log: testserver.Logger(), ManualSubscribe: true,
		OnTrack: func(tr *webrtcTrack, info roomTrack) { go cnt.consume(tr, info) }})
	if err != nil {
		t.Fatalf("%s: join: %v", identity, err)
	}
	return c
}

// offeredSIDs lists the track sids of a subscriber offer.
func offeredSIDs(m client.Message) []string {
	var o struct{ Tracks map[string]room.TrackInfo }
	_ = json.Unmarshal(m.Raw, &o)
	var sids []string
	for _, t := range o.Tracks {
		sids = append(sids, t.SID)
	}
	slices.Sort(sids)
	return sids
}

// nextOffer waits for the subscriber offer after the first seen ones and
// checks that it carries exactly the tracks want.
func nextOffer(t *testing.T, ctx context.Context, c *client.Client, seen int, want ...string) {
	t.Helper()
	n := 0
	m, err := c.WaitFor(ctx, func(m client.Message) bool {
		if m.Type == "offer" {
			n++
		}
		return n > seen
	})
	if err != nil {
		t.Fatalf("no subscriber offer: %v", err)
	}
	slices.Sort(want)
	if got := offeredSIDs(m); !slices.Equal(got, want) {
		t.Fatalf("subscriber offer carries %v, want %v", got, want)
	}
}

// waitPublished waits until c is told of track sid: in its joined message
// or by track_published. The server knows a track's sid from its publisher's
// answer, but the track can be subscribed to only once its media arrived.
func waitPublished(t *testing.T, ctx context.Context, c *client.Client, sid string) {
	t.Helper()
	for _, p := range c.Joined.Participants {
		if slices.ContainsFunc(p.Tracks, func(tr room.TrackInfo) bool { return tr.SID == sid }) {
			return
		}
	}
	if _, err := c.WaitFor(ctx, func(m client.Message) bool {
		return m.Type == "track_published" && trackEvent(m).SID == sid
	}); err != nil {
		t.Fatalf("never told of track %s: %v", sid, err)
	}
}

func countOffers(c *client.Client) int {
	n := 0
	for _, m := range c.Messages() {
		if m.Type == "offer" {
			n++
		}
	}
	return n
}

// A manual participant receives nothing until it subscribes, then exactly
// what it chose, until it unsubscribes.
func TestManualSubscribeReceivesOnlyChosenTracks(t *testing.T) {
	t.Parallel()
	srv := startServer(t, nil, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	daveCnt, carolCnt := newCounter(), newCounter()
	alice := srv.join(t, ctx, "manual", "alice", newCounter(), true)
	defer alice.Close()
	bob := srv.join(t, ctx, "manual", "bob", newCounter(), true)
	defer bob.Close()
	publishSynth(t, ctx, alice, true, true)
	publishSynth(t, ctx, bob, true, false)
	carol := srv.joinManual(t, ctx, "manual", "carol", carolCnt)
	defer carol.Close()
	// dave receives everything: once he has plenty from both, carol would
	// have had it too, had the server sent it.
	dave := srv.join(t, ctx, "manual", "dave", daveCnt, true)
	defer dave.Close()
	waitUntil(t, 20*time.Second, "dave to receive both publishers", func() bool {
		return daveCnt.get(alice.SID(), "video") > 60 && daveCnt.get(bob.SID(), "video") > 60
	})
	if n := countOffers(carol); n != 0 || carolCnt.get(alice.SID(), "video")+carolCnt.get(bob.SID(), "video") != 0 {
		t.Fatalf("carol got %d offers and media before subscribing", n)
	}
	aliceVideo, aliceAudio := alice.TrackSID("video-"+alice.SID()), alice.TrackSID("audio-"+alice.SID())
	waitPublished(t, ctx, carol, aliceVideo)
	waitPublished(t, ctx, carol, aliceAudio)
	// One message, one offer.
	if err := carol.Subscribe(aliceVideo, aliceAudio); err != nil {
		t.Fatal(err)
	}
	nextOffer(t, ctx, carol, 0, aliceVideo, aliceAudio)
	waitUntil(t, 20*time.Second, "carol to receive alice", func() bool {
		return carolCnt.track(aliceVideo) > 30 && carolCnt.track(aliceAudio) > 20
	})
	// Subscribing again changes nothing, and nothing else arrives.
	if err := carol.Subscribe(aliceVideo); err != nil {
		t.Fatal(err)
	}
	offers := countOffers(carol)
	before := daveCnt.get(bob.SID(), "video")
	waitUntil(t, 20*time.Second, "more of bob's video at dave", func() bool { return daveCnt.get(bob.SID(), "video") > before+60 })
	if got := countOffers(carol); got != offers {
		t.Errorf("subscribing again made %d more offers", got-offers)
	}
	if got := carolCnt.get(bob.SID(), "video"); got != 0 {
		t.Errorf("carol received %d packets of bob's video; she did not choose it", got)
	}

	// Unsubscribing removes the track from the next offer, and its packets stop.
	if err := carol.Unsubscribe(aliceVideo); err != nil {
		t.Fatal(err)
	}
	nextOffer(t, ctx, carol, offers, aliceAudio)
	// Packets already on their way may still land; wait for dave to see
	// more before taking the count that must no longer grow.
	before = daveCnt.get(alice.SID(), "video")
	waitUntil(t, 20*time.Second, "more of alice's video at dave", func() bool { return daveCnt.get(alice.SID(), "video") > before+30 })
	stopped, audio := carolCnt.track(aliceVideo), carolCnt.track(aliceAudio)
	before = daveCnt.get(alice.SID(), "video")
	waitUntil(t, 20*time.Second, "more of alice's video at dave", func() bool { return daveCnt.get(alice.SID(), "video") > before+60 })
	if got := carolCnt.track(aliceVideo); got != stopped {
		t.Errorf("carol received %d packets of alice's video after unsubscribing", got-stopped)
	}
	if carolCnt.track(aliceAudio) <= audio {
		t.Errorf("alice's audio, still subscribed, stopped too")
	}
	// Unsubscribing again is a no-op, without an error.
	if err := carol.Unsubscribe(aliceVideo); err != nil {
		t.Fatal(err)
	}
	if err := carol.Send(map[string]any{"type": "ping", "id": "after"}); err != nil {
		t.Fatal(err)
	}
	if _, err := carol.WaitFor(ctx, func(m client.Message) bool { return m.Type == "pong" }); err != nil {
		t.Fatal(err)
	}
	for _, m := range carol.Messages() {
		if m.Type == "error" {
			t.Errorf("carol got an error: %s", m.Raw)
		}
	}
}

// nextError reads a bare connection's messages up to the next error.
func (r *rawConn) nextError(ctx context.Context) map[string]any {
	r.t.Helper()
	for {
		m := r.expectAny(ctx)
		if m["type"] == "error" {
			return m
		}
	}
}

func TestSubscribeRefusesBadRequestsAndKeepsServing(t *testing.T) {
	t.Parallel()
	srv := startServer(t, nil, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	bobCnt := newCounter()
	alice := srv.join(t, ctx, "subbad", "alice", newCounter(), true)
	defer alice.Close()
	bob := srv.join(t, ctx, "subbad", "bob", bobCnt, true)
	defer bob.Close()
	publishSynth(t, ctx, alice, true, false)
	waitUntil(t, 20*time.Second, "bob to receive alice", func() bool { return bobCnt.get(alice.SID(), "video") > 30 })
	aliceVideo := alice.TrackSID("video-" + alice.SID())

	join := func(spec auth.TokenSpec) *rawConn {
		r := srv.dialRaw(t, ctx)
		r.write(ctx, websocket.MessageText, `{"type":"join","protocol":1,"autoSubscribe":false,"token":"`+
			testserver.MintToken(t, spec)+`"}`)
		r.expect(ctx, "joined", "")
		return r
	}
	mallory := join(auth.TokenSpec{Identity: "mallory", Room: "subbad", CanPublish: true, CanSubscribe: true, TTL: time.Hour})
	many := make([]string, 65)
	for i := range many {
		many[i] = fmt.Sprintf("%q", aliceVideo)
	}
	for _, tt := range []struct{ name, msg, code, mentions string }{
		{"unknown sid", `{"type":"subscribe","trackSids":["` + aliceVideo + `","TR_nope"]}`, "bad_request", "TR_nope"},
		{"unknown sid to unsubscribe", `{"type":"unsubscribe","trackSids":["TR_gone"]}`, "bad_request", "TR_gone"},
		{"too many sids", `{"type":"subscribe","trackSids":[` + strings.Join(many, ",") + `]}`, "bad_request", "64"},
		{"no sids", `{"type":"subscribe","trackSids":[]}`, "bad_request", "trackSids"},
		{"empty sid", `{"type":"unsubscribe","trackSids":[""]}`, "bad_request", "track sid"},
		{"sids not a list", `{"type":"subscribe","trackSids":"` + aliceVideo + `"}`, "bad_json", "trackSids"},
	} {
		mallory.write(ctx, websocket.MessageText, tt.msg)
		m := mallory.nextError(ctx)
		if m["code"] != tt.code || !strings.Contains(m["message"].(string), tt.mentions) {
			t.Errorf("%s: got %v, want code %s mentioning %q", tt.name, m, tt.code, tt.mentions)
		}
	}
	// The refused request with a known and an unknown sid changed nothing.
	mallory.write(ctx, websocket.MessageText, `{"type":"ping","id":"p"}`)
	for m := mallory.expectAny(ctx); m["type"] != "pong"; m = mallory.expectAny(ctx) {
		if m["type"] == "offer" {
			t.Errorf("a refused subscribe made an offer: %v", m)
		}
	}

	// Without canSubscribe: forbidden.
	eve := join(auth.TokenSpec{Identity: "eve", Room: "subbad", CanPublish: true, TTL: time.Hour})
	eve.write(ctx, websocket.MessageText, `{"type":"subscribe","trackSids":["`+aliceVideo+`"]}`)
	if m := eve.nextError(ctx); m["code"] != "forbidden" || m["requestType"] != "subscribe" {
		t.Errorf("subscribe without canSubscribe: got %v, want forbidden", m)
	}

	// One's own track: bad_request.
	if err := alice.Subscribe(aliceVideo); err != nil {
		t.Fatal(err)
	}
	m, err := alice.WaitFor(ctx, func(m client.Message) bool { return m.Type == "error" })
	if err != nil {
		t.Fatal(err)
	}
	var e struct{ Code, Message, RequestType string }
	_ = json.Unmarshal(m.Raw, &e)
	if e.Code != "bad_request" || e.RequestType != "subscribe" || !strings.Contains(e.Message, "own") {
		t.Errorf("subscribing to one's own track: got %s, want bad_request", m.Raw)
	}

	// The bystander kept receiving and saw no error.
	before := bobCnt.get(alice.SID(), "video")
	waitUntil(t, 20*time.Second, "bob to keep receiving", func() bool { return bobCnt.get(alice.SID(), "video") > before+30 })
	for _, m := range bob.Messages() {
		if m.Type == "error" {
			t.Errorf("bystander got an error: %s", m.Raw)
		}
	}
}

// An automatically subscribed participant can turn a track off; it stays
// off, while later tracks still arrive by themselves, until it asks again.
func TestAutoSubscriberCanUnsubscribe(t *testing.T) {
	t.Parallel()
	srv := startServer(t, nil, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	bobCnt := newCounter()
	alice := srv.join(t, ctx, "autooff", "alice", newCounter(), true)
	defer alice.Close()
	bob := srv.join(t, ctx, "autooff", "bob", bobCnt, true)
	defer bob.Close()
	publishSynth(t, ctx, alice, true, true)
	aliceVideo, aliceAudio := alice.TrackSID("video-"+alice.SID()), alice.TrackSID("audio-"+alice.SID())
	waitUntil(t, 20*time.Second, "bob to receive alice", func() bool {
		return bobCnt.track(aliceVideo) > 30 && bobCnt.track(aliceAudio) > 30
	})
	offers := countOffers(bob)
	if err := bob.Unsubscribe(aliceVideo); err != nil {
		t.Fatal(err)
	}
	nextOffer(t, ctx, bob, offers, aliceAudio)
	before := bobCnt.track(aliceAudio)
	waitUntil(t, 20*time.Second, "more audio", func() bool { return bobCnt.track(aliceAudio) > before+25 })
	stopped := bobCnt.track(aliceVideo)

	// A new track is subscribed as usual; the video stays off.
	screen, err := client.NewSynthTrack(true, "screen", alice.SID())
	if err != nil {
		t.Fatal(err)
	}
	if err := alice.Publish(ctx, map[webrtc.TrackLocal]string{screen: room.SourceScreen}); err != nil {
		t.Fatal(err)
	}
	go client.SendSynth(ctx, screen, client.SynthConfig{Video: true, FPS: 15, BitrateBPS: 300_000, KeyframeInterval: time.Second})
	screenSID := alice.TrackSID("screen")
	waitUntil(t, 20*time.Second, "bob to receive the new screen track", func() bool { return bobCnt.track(screenSID) > 20 })
	if got := bobCnt.track(aliceVideo); got != stopped {
		t.Errorf("bob received %d packets of the video he turned off", got-stopped)
	}

	// Asking again brings it back.
	if err := bob.Subscribe(aliceVideo); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 20*time.Second, "alice's video back at bob", func() bool { return bobCnt.track(aliceVideo) > stopped+30 })
	if m := bob.Messages(); slices.ContainsFunc(m, func(m client.Message) bool { return m.Type == "error" }) {
		t.Errorf("bob got an error")
	}
}

// A resumed session keeps the manual mode it joined with, and what it
// subscribed to.
func TestResumeKeepsManualSubscription(t *testing.T) {
	t.Parallel()
	srv := startServer(t, nil, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	carolCnt, daveCnt := newCounter(), newCounter()
	alice := srv.join(t, ctx, "manualresume", "alice", newCounter(), true)
	defer alice.Close()
	publishSynth(t, ctx, alice, true, false)
	aliceVideo := alice.TrackSID("video-" + alice.SID())
	carol := srv.joinManual(t, ctx, "manualresume", "carol", carolCnt)
	defer carol.Close()
	waitPublished(t, ctx, carol, aliceVideo)
	if err := carol.Subscribe(aliceVideo); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 20*time.Second, "carol to receive alice", func() bool { return carolCnt.track(aliceVideo) > 30 })

	if err := carol.DropAndResume(ctx); err != nil {
		t.Fatal(err)
	}
	// bob publishes after the resume; dave, automatic, receives him.
	bob := srv.join(t, ctx, "manualresume", "bob", newCounter(), true)
	defer bob.Close()
	dave := srv.join(t, ctx, "manualresume", "dave", daveCnt, true)
	defer dave.Close()
	publishSynth(t, ctx, bob, true, false)
	before := carolCnt.track(aliceVideo)
	waitUntil(t, 20*time.Second, "dave to receive bob", func() bool { return daveCnt.get(bob.SID(), "video") > 60 })
	waitUntil(t, 20*time.Second, "carol to keep receiving alice", func() bool { return carolCnt.track(aliceVideo) > before+30 })
	if got := carolCnt.get(bob.SID(), "video"); got != 0 {
		t.Errorf("resumed manual carol received %d packets of bob's video she never chose", got)
	}
	var sids []string
	for _, m := range carol.Messages() {
		if m.Type == "offer" {
			sids = offeredSIDs(m)
		}
	}
	if !slices.Equal(sids, []string{aliceVideo}) {
		t.Errorf("carol's last offer carries %v, want only %s", sids, aliceVideo)
	}
}

// Turning a track off and on again reuses its media section: a client that
// toggles a track must not grow its subscriber offers without bound.
func TestResubscribeReusesMediaSection(t *testing.T) {
	t.Parallel()
	srv := startServer(t, nil, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	carolCnt := newCounter()
	alice := srv.join(t, ctx, "toggle", "alice", newCounter(), true)
	defer alice.Close()
	publishSynth(t, ctx, alice, true, false)
	aliceVideo := alice.TrackSID("video-" + alice.SID())
	carol := srv.joinManual(t, ctx, "toggle", "carol", carolCnt)
	defer carol.Close()
	waitPublished(t, ctx, carol, aliceVideo)
	for range 4 {
		offers := countOffers(carol)
		if err := carol.Subscribe(aliceVideo); err != nil {
			t.Fatal(err)
		}
		nextOffer(t, ctx, carol, offers, aliceVideo)
		before := carolCnt.track(aliceVideo)
		waitUntil(t, 20*time.Second, "carol to receive alice", func() bool { return carolCnt.track(aliceVideo) > before+20 })
		if err := carol.Unsubscribe(aliceVideo); err != nil {
			t.Fatal(err)
		}
		nextOffer(t, ctx, carol, offers+1)
	}
	offers := countOffers(carol)
	if err := carol.Subscribe(aliceVideo); err != nil {
		t.Fatal(err)
	}
	nextOffer(t, ctx, carol, offers, aliceVideo)
	var last client.Message
	for _, m := range carol.Messages() {
		if m.Type == "offer" {
			last = m
		}
	}
	var o struct{ SDP string }
	if err := json.Unmarshal(last.Raw, &o); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(o.SDP, "\nm="); n != 1 {
		t.Errorf("after toggling one track 5 times the offer has %d media sections, want 1", n)
	}
	before := carolCnt.track(aliceVideo)
	waitUntil(t, 20*time.Second, "carol to receive alice again", func() bool { return carolCnt.track(aliceVideo) > before+20 })
}
