package signal_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/quartet-rtc/quartet/internal/room"
	"github.com/quartet-rtc/quartet/internal/room/roomtest"
	"github.com/quartet-rtc/quartet/internal/signal"
)

func ptr[T any](v T) *T { return &v }

// callsAfterStart are the media calls made after the join's Start.
func callsAfterStart(t *testing.T, s *roomtest.Session) []roomtest.Call {
	t.Helper()
	calls := s.Calls()
	if len(calls) == 0 || calls[0].Method != "Start" {
		t.Fatalf("media calls = %v, want Start first", s.Methods())
	}
	return calls[1:]
}

func TestHandlersCallTheMediaSession(t *testing.T) {
	t.Parallel()
	cand := room.Candidate{Candidate: "candidate:1 1 udp 2130706431 127.0.0.1 50000 typ host",
		SDPMid: ptr("0"), SDPMLineIndex: ptr[uint16](0), UsernameFragment: ptr("abcd")}
	tests := []struct {
		name  string
		send  map[string]any
		want  roomtest.Call
		reply string // the message type the client gets, if any
	}{
		{"offer", map[string]any{"type": "offer", "target": "publisher", "sdp": "v=0 pub",
			"tracks": []map[string]any{{"trackId": "a1", "source": "microphone", "muted": true}, {"trackId": "v1", "source": "camera"}}},
			roomtest.Call{Method: "Publish", Args: []any{"v=0 pub", []room.TrackMeta{
				{TrackID: "a1", Source: room.SourceMicrophone, Muted: true}, {TrackID: "v1", Source: room.SourceCamera}}}},
			"answer"},
		{"offer without tracks", map[string]any{"type": "offer", "target": "publisher", "sdp": "v=0 restart"},
			roomtest.Call{Method: "Publish", Args: []any{"v=0 restart", []room.TrackMeta(nil)}}, "answer"},
		{"answer", map[string]any{"type": "answer", "target": "subscriber", "sdp": "v=0 sub"},
			roomtest.Call{Method: "SubscriberAnswer", Args: []any{"v=0 sub"}}, ""},
		{"candidate", map[string]any{"type": "candidate", "target": "publisher", "candidate": cand},
			roomtest.Call{Method: "AddCandidate", Args: []any{"publisher", &cand}}, ""},
		{"end of candidates", map[string]any{"type": "candidate", "target": "subscriber", "candidate": nil},
			roomtest.Call{Method: "AddCandidate", Args: []any{"subscriber", (*room.Candidate)(nil)}}, ""},
		{"empty candidate", map[string]any{"type": "candidate", "target": "publisher",
			"candidate": map[string]any{"candidate": "", "sdpMid": "0"}},
			roomtest.Call{Method: "AddCandidate", Args: []any{"publisher", (*room.Candidate)(nil)}}, ""},
		{"restart_ice", map[string]any{"type": "restart_ice"},
			roomtest.Call{Method: "RestartICE"}, ""},
		{"mute", map[string]any{"type": "mute", "trackSid": "TR_x", "muted": true},
			roomtest.Call{Method: "SetMuted", Args: []any{"TR_x", true}}, ""},
		{"unmute", map[string]any{"type": "mute", "trackSid": "TR_x", "muted": false},
			roomtest.Call{Method: "SetMuted", Args: []any{"TR_x", false}}, ""},
		{"subscribe", map[string]any{"type": "subscribe", "trackSids": []string{"TR_1", "TR_2"}},
			roomtest.Call{Method: "Subscribe", Args: []any{[]string{"TR_1", "TR_2"}, true}}, ""},
		{"unsubscribe", map[string]any{"type": "unsubscribe", "trackSids": []string{"TR_1"}},
			roomtest.Call{Method: "Subscribe", Args: []any{[]string{"TR_1"}, false}}, ""},
		{"track_settings", map[string]any{"type": "track_settings", "trackSids": []string{"TR_1"}, "quality": "low",
			"width": 320, "height": 180},
			roomtest.Call{Method: "SetTrackSettings", Args: []any{[]string{"TR_1"},
				room.TrackSettings{MaxQuality: "low", Width: 320, Height: 180}}}, ""},
		{"track_settings disabled", map[string]any{"type": "track_settings", "trackSids": []string{"TR_1"}, "enabled": false},
			roomtest.Call{Method: "SetTrackSettings", Args: []any{[]string{"TR_1"}, room.TrackSettings{Disabled: true}}}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			hs := newHarness(t)
			c, joined := hs.join("alice", "demo")
			c.send(tt.send)
			got := c.sync()
			calls := callsAfterStart(t, hs.session(joined.Participant.SID))
			if len(calls) != 1 || !reflect.DeepEqual(calls[0], tt.want) {
				t.Errorf("media calls = %+v, want %+v", calls, tt.want)
			}
			switch {
			case tt.reply == "" && len(got) > 0:
				t.Errorf("got %v, want no reply", got)
			case tt.reply != "" && (len(got) != 1 || got[0].Type != tt.reply):
				t.Errorf("got %v, want one %s", got, tt.reply)
			}
		})
	}
}

func TestOfferIsAnswered(t *testing.T) {
	t.Parallel()
	hs := newHarness(t)
	c, _ := hs.join("alice", "demo")
	c.send(map[string]any{"type": "offer", "target": "publisher", "sdp": "v=0 pub"})
	a := c.expect("answer")
	if a.Target != room.TargetPublisher || a.SDP != "answer:v=0 pub" || string(a.Tracks) != "[]" {
		t.Errorf("answer = %s", a)
	}
}

func TestMediaErrorsBecomeProtocolErrors(t *testing.T) {
	t.Parallel()
	secret := errors.New("pion: the DTLS transport exploded")
	errs := []struct {
		err  error
		code string
	}{
		{room.ErrForbidden, signal.CodeForbidden},
		{room.ErrNoSubscribe, signal.CodeForbidden},
		{room.ErrBadSDP, signal.CodeBadSDP},
		{fmt.Errorf("%w: m-line 2 has no mid", room.ErrBadSDP), signal.CodeBadSDP},
		{room.ErrUnknownTrack, signal.CodeBadRequest},
		{fmt.Errorf("%w: TR_9", room.ErrUnknownTrack), signal.CodeBadRequest},
		{room.ErrOwnTrack, signal.CodeBadRequest},
		{room.ErrNoOffer, signal.CodeBadRequest},
		{room.ErrTooMany, signal.CodeBadRequest},
		{secret, signal.CodeInternal},
	}
	requests := []map[string]any{
		{"type": "offer", "target": "publisher", "sdp": "v=0"},
		{"type": "answer", "target": "subscriber", "sdp": "v=0"},
		{"type": "restart_ice"},
		{"type": "subscribe", "trackSids": []string{"TR_1"}},
		{"type": "unsubscribe", "trackSids": []string{"TR_1"}},
	}
	for _, req := range requests {
		typ := req["type"].(string)
		t.Run(typ, func(t *testing.T) {
			t.Parallel()
			hs := newHarness(t)
			c, joined := hs.join("alice", "demo")
			s := hs.session(joined.Participant.SID)
			for _, tt := range errs {
				s.SetErr(tt.err)
				c.send(req)
				e := c.expectError(tt.code)
				if e.RequestType != typ || !strings.HasPrefix(e.Message, typ+": ") {
					t.Errorf("%v: error = %s, want requestType and message for %s", tt.err, e, typ)
				}
				if tt.code == signal.CodeInternal && strings.Contains(e.Message, "exploded") {
					t.Errorf("internal error shown to the client: %s", e)
				}
				if tt.code != signal.CodeInternal && !strings.Contains(e.Message, tt.err.Error()) {
					t.Errorf("error %s does not say what went wrong (%v)", e, tt.err)
				}
			}
			// Media errors never end the session.
			s.SetErr(nil)
			c.send(map[string]any{"type": "chat", "text": "still here"})
			c.expect("chat")
		})
	}
}

func TestCandidateAndMuteErrorsAreBadRequests(t *testing.T) {
	t.Parallel()
	hs := newHarness(t)
	c, joined := hs.join("alice", "demo")
	s := hs.session(joined.Participant.SID)
	s.SetErr(errors.New("candidate for publisher before its offer"))
	c.send(map[string]any{"type": "candidate", "target": "publisher",
		"candidate": map[string]any{"candidate": "candidate:1 1 udp 1 127.0.0.1 9 typ host"}})
	if e := c.expectError(signal.CodeBadRequest); e.RequestType != "candidate" || !strings.Contains(e.Message, "before its offer") {
		t.Errorf("error = %s", e)
	}
	s.SetErr(room.ErrUnknownTrack)
	c.send(map[string]any{"type": "mute", "trackSid": "TR_nope", "muted": true})
	if e := c.expectError(signal.CodeBadRequest); e.RequestType != "mute" || !strings.Contains(e.Message, "TR_nope") {
		t.Errorf("error = %s", e)
	}
}

// publishTrack plays the media plane reporting a track: everyone in the
// room gets track_published.
func publishTrack(hs *harness, roomName string, tr room.TrackInfo, clients ...*client) {
	hs.t.Helper()
	hs.rooms.TrackPublished(roomName, tr)
	for _, c := range clients {
		if m := c.waitType("track_published"); m.Track.SID != tr.SID {
			hs.t.Fatalf("track_published = %s, want %s", m, tr.SID)
		}
	}
}

func TestMuteTellsEveryone(t *testing.T) {
	t.Parallel()
	hs := newHarness(t)
	alice, bob, aj := joinAliceAndBob(hs)
	sid := aj.Participant.SID
	publishTrack(hs, "demo", room.TrackInfo{SID: "TR_a", ParticipantSID: sid, Kind: "audio", Source: room.SourceMicrophone},
		alice, bob)

	alice.send(map[string]any{"type": "mute", "trackSid": "TR_a", "muted": true})
	for _, c := range []*client{alice, bob} {
		m := c.expect("mute_changed")
		if m.ParticipantSID != sid || m.TrackSID != "TR_a" || !m.Muted {
			t.Errorf("mute_changed = %s", m)
		}
	}
	// The same state again changes nothing and tells no one.
	alice.send(map[string]any{"type": "mute", "trackSid": "TR_a", "muted": true})
	alice.syncQuiet()
	bob.syncQuiet()
	if n := hs.session(sid).Count("SetMuted"); n != 2 {
		t.Errorf("SetMuted called %d times, want 2", n)
	}
	// A later participant sees the state in joined.
	_, cj := hs.join("carol", "demo")
	for _, p := range cj.Participants {
		if p.SID == sid && (len(p.Tracks) != 1 || !p.Tracks[0].Muted) {
			t.Errorf("carol sees alice's tracks as %+v, want TR_a muted", p.Tracks)
		}
	}
}

func TestChatReachesEveryone(t *testing.T) {
	t.Parallel()
	hs := newHarness(t)
	alice, aj := hs.join("alice", "demo")
	bob, _ := hs.join("bob", "demo")
	carol, _ := hs.join("carol", "demo")
	other, _ := hs.join("dave", "elsewhere")
	alice.waitType("participant_joined")
	alice.waitType("participant_joined")
	bob.waitType("participant_joined")

	alice.send(map[string]any{"type": "chat", "text": "hello, world"})
	for _, c := range []*client{alice, bob, carol} {
		m := c.expect("chat")
		want := room.ChatSender{SID: aj.Participant.SID, Identity: "alice", Name: "Alice"}
		if m.From != want || m.Text != "hello, world" || m.Time.IsZero() {
			t.Errorf("chat = %s, want from %+v", m, want)
		}
	}
	other.syncQuiet() // another room hears nothing
}

func TestMediaEventsReachTheClientInOrder(t *testing.T) {
	t.Parallel()
	hs := newHarness(t)
	c, joined := hs.join("alice", "demo")
	ev := hs.session(joined.Participant.SID).Events
	track := room.TrackInfo{SID: "TR_b", ParticipantSID: "PA_b", Kind: "video", Source: room.SourceCamera, MimeType: "video/VP8"}
	cand := &room.Candidate{Candidate: "candidate:2 1 udp 1 127.0.0.1 40000 typ host", SDPMid: ptr("0")}

	ev.PublisherAnswer("v=0 answer", []room.TrackInfo{{SID: "TR_a", ParticipantSID: joined.Participant.SID, TrackID: "a1"}})
	ev.LocalCandidate(room.TargetPublisher, cand)
	ev.SubscriberOffer("v=0 offer", map[string]room.TrackInfo{"0": track})
	ev.LocalCandidate(room.TargetSubscriber, cand)
	ev.LocalCandidate(room.TargetSubscriber, nil)

	ev.StreamState("TR_b", room.StreamPaused, room.ReasonBandwidth)
	ev.SubscribedLayers("TR_a", []room.LayerState{{RID: "q", Active: true}, {RID: "f", Active: false}})

	a := c.expect("answer")
	var answerTracks []room.TrackInfo
	if err := json.Unmarshal(a.Tracks, &answerTracks); err != nil || a.Target != room.TargetPublisher ||
		a.SDP != "v=0 answer" || len(answerTracks) != 1 || answerTracks[0].TrackID != "a1" {
		t.Errorf("answer = %s", a)
	}
	if m := c.expect("candidate"); m.Target != room.TargetPublisher || !reflect.DeepEqual(m.Candidate, cand) {
		t.Errorf("candidate = %s", m)
	}
	o := c.expect("offer")
	var offerTracks map[string]room.TrackInfo
	if err := json.Unmarshal(o.Tracks, &offerTracks); err != nil || o.Target != room.TargetSubscriber ||
		o.SDP != "v=0 offer" || !reflect.DeepEqual(offerTracks, map[string]room.TrackInfo{"0": track}) {
		t.Errorf("offer = %s", o)
	}
	if m := c.expect("candidate"); m.Target != room.TargetSubscriber || !reflect.DeepEqual(m.Candidate, cand) {
		t.Errorf("candidate = %s", m)
	}
	if m := c.expect("candidate"); m.Target != room.TargetSubscriber || m.Candidate != nil ||
		!strings.Contains(m.raw, `"candidate":null`) {
		t.Errorf("end of candidates = %s", m)
	}
	if m := c.expect("stream_state"); m.raw != `{"type":"stream_state","trackSid":"TR_b","state":"paused","reason":"bandwidth"}` {
		t.Errorf("stream_state = %s", m)
	}
	if m := c.expect("subscribed_layers"); m.raw !=
		`{"type":"subscribed_layers","trackSid":"TR_a","layers":[{"rid":"q","active":true},{"rid":"f","active":false}]}` {
		t.Errorf("subscribed_layers = %s", m)
	}
}

// TestEventsDuringJoinFollowJoined plays a media plane that offers and
// trickles while the join is still in progress, and a track that starts
// meanwhile: the client gets joined first, then all of it, in order.
func TestEventsDuringJoinFollowJoined(t *testing.T) {
	t.Parallel()
	hs := newHarness(t)
	bob, bj := hs.join("bob", "demo")
	bobTrack := room.TrackInfo{SID: "TR_b", ParticipantSID: bj.Participant.SID, Kind: "audio", Source: room.SourceMicrophone}
	cand := &room.Candidate{Candidate: "candidate:1 1 udp 1 127.0.0.1 40000 typ host"}
	hs.media.SetOnOpen(func(s *roomtest.Session) {
		s.OnStart = func(s *roomtest.Session) {
			s.Events.SubscriberOffer("v=0 start", map[string]room.TrackInfo{"0": bobTrack})
			s.Events.LocalCandidate(room.TargetSubscriber, cand)
			hs.rooms.TrackPublished("demo", bobTrack)
			s.Events.LocalCandidate(room.TargetSubscriber, nil)
		}
	})
	alice, _ := hs.join("alice", "demo") // join checks that joined comes first
	if o := alice.expect("offer"); o.SDP != "v=0 start" {
		t.Errorf("offer = %s", o)
	}
	if m := alice.expect("candidate"); m.Candidate == nil || m.Candidate.Candidate != cand.Candidate {
		t.Errorf("candidate = %s", m)
	}
	if m := alice.expect("track_published"); m.Track.SID != "TR_b" {
		t.Errorf("track_published = %s", m)
	}
	if m := alice.expect("candidate"); m.Candidate != nil {
		t.Errorf("end of candidates = %s", m)
	}
	alice.syncQuiet()
	bob.expect("participant_joined")
	bob.expect("track_published")
	bob.syncQuiet()
}

func TestParticipantEventsAfterJoined(t *testing.T) {
	t.Parallel()
	hs := newHarness(t)
	alice, _ := hs.join("alice", "demo")
	bob, bj := hs.join("bob", "demo")
	if m := alice.expect("participant_joined"); m.Participant.SID != bj.Participant.SID || m.Participant.Name != "Bob" {
		t.Errorf("participant_joined = %s", m)
	}
	hs.rooms.ActiveSpeakers("demo", []room.Speaker{{SID: bj.Participant.SID, Level: 0.5}})
	for _, c := range []*client{alice, bob} {
		m := c.expect("active_speakers")
		if !strings.Contains(m.raw, bj.Participant.SID) {
			t.Errorf("active_speakers = %s", m)
		}
	}
	tr := room.TrackInfo{SID: "TR_1", ParticipantSID: bj.Participant.SID, Kind: "video", Source: room.SourceScreen}
	hs.rooms.TrackPublished("demo", tr)
	hs.rooms.TrackUnpublished("demo", tr)
	for _, c := range []*client{alice, bob} {
		if m := c.expect("track_published"); !reflect.DeepEqual(m.Track, tr) {
			t.Errorf("track_published = %s", m)
		}
		if m := c.expect("track_unpublished"); m.Track.SID != tr.SID {
			t.Errorf("track_unpublished = %s", m)
		}
	}
}
