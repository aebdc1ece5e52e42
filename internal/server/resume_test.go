package server_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/quartet-rtc/quartet/internal/client"
	"github.com/quartet-rtc/quartet/internal/config"
)

// rawJoin joins with a bare WebSocket and returns it with the participant
// sid and resume token.
func (s *testServer) rawJoin(t *testing.T, ctx context.Context, roomName, identity string) (*rawConn, string, string) {
	t.Helper()
	r := s.dialRaw(t, ctx)
	r.write(ctx, websocket.MessageText, `{"type":"join","protocol":1,"token":"`+s.Token(t, roomName, identity)+`"}`)
	joined := r.expect(ctx, "joined", "")
	return r, joined["participant"].(map[string]any)["sid"].(string), joined["resumeToken"].(string)
}

// rawResume tries to resume sid with token over a new bare WebSocket.
func (s *testServer) rawResume(t *testing.T, ctx context.Context, roomName, identity, sid, token string) *rawConn {
	t.Helper()
	r := s.dialRaw(t, ctx)
	r.write(ctx, websocket.MessageText, `{"type":"join","protocol":1,"token":"`+s.Token(t, roomName, identity)+
		`","resume":{"participantSid":"`+sid+`","resumeToken":"`+token+`"}}`)
	return r
}

func TestResumeAfterSignalingDropIsInvisibleToOthers(t *testing.T) {
	t.Parallel()
	srv := startServer(t, nil, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	aliceCnt, bobCnt := newCounter(), newCounter()
	alice := srv.join(t, ctx, "resume", "alice", aliceCnt, true)
	defer alice.Close()
	bob := srv.join(t, ctx, "resume", "bob", bobCnt, true)
	defer bob.Close()
	publishSynth(t, ctx, alice, true, true)
	publishSynth(t, ctx, bob, true, false)
	waitUntil(t, 20*time.Second, "media both ways", func() bool {
		return bobCnt.get(alice.SID(), "video") > 30 && aliceCnt.get(bob.SID(), "video") > 30
	})
	sid, token := alice.SID(), alice.Joined.ResumeToken

	if err := alice.DropAndResume(ctx); err != nil {
		t.Fatal(err)
	}
	if alice.SID() != sid || alice.Joined.ResumeToken == token || alice.Joined.ResumeToken == "" {
		t.Fatalf("resumed as %s with token %q; want the same sid and a new token", alice.SID(), alice.Joined.ResumeToken)
	}
	if len(alice.Joined.Participants) != 1 || alice.Joined.Participants[0].SID != bob.SID() {
		t.Fatalf("resumed joined lists %+v, want bob", alice.Joined.Participants)
	}
	before := []int{bobCnt.get(alice.SID(), "video"), aliceCnt.get(bob.SID(), "video")}
	waitUntil(t, 20*time.Second, "media both ways after the resume", func() bool {
		return bobCnt.get(alice.SID(), "video") > before[0]+60 && aliceCnt.get(bob.SID(), "video") > before[1]+60
	})
	for _, m := range bob.Messages() {
		if m.Type == "participant_left" || (m.Type == "participant_joined" && containsSID(m, sid)) {
			t.Fatalf("bob noticed the resume: %s", m.Raw)
		}
	}
	// The old token is spent.
	srv.rawResume(t, ctx, "resume", "alice", sid, token).expect(ctx, "error", "resume_failed")
}

func TestUnresumedParticipantLeavesAfterTimeout(t *testing.T) {
	t.Parallel()
	srv := startServer(t, func(c *config.Config) { c.Signal.ResumeTimeout = 300 * time.Millisecond }, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	watcher := srv.join(t, ctx, "expire", "watcher", newCounter(), true)
	defer watcher.Close()
	r, sid, resumeToken := srv.rawJoin(t, ctx, "expire", "ghost")
	r.conn.CloseNow() // gone without a leave

	if _, err := watcher.WaitFor(ctx, func(m client.Message) bool {
		return m.Type == "participant_left" && containsSID(m, sid)
	}); err != nil {
		t.Fatalf("the ghost never left: %v", err)
	}
	late := srv.rawResume(t, ctx, "expire", "ghost", sid, resumeToken)
	m := late.expect(ctx, "error", "resume_failed")
	if !strings.Contains(m["message"].(string), "join afresh") {
		t.Fatalf("message %q does not say what to do", m["message"])
	}
	// The connection stays usable for a plain join.
	late.write(ctx, websocket.MessageText, `{"type":"join","protocol":1,"token":"`+srv.Token(t, "expire", "ghost")+`"}`)
	late.expect(ctx, "joined", "")
}

func TestResumeNeedsTheSameIdentity(t *testing.T) {
	t.Parallel()
	srv := startServer(t, nil, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, sid, resumeToken := srv.rawJoin(t, ctx, "steal", "victim")
	r.conn.CloseNow()
	time.Sleep(100 * time.Millisecond) // let the server park it

	srv.rawResume(t, ctx, "steal", "thief", sid, resumeToken).expect(ctx, "error", "resume_failed")
	srv.rawResume(t, ctx, "steal", "victim", sid, "wrong").expect(ctx, "error", "resume_failed")
	// The real client can still resume: failed attempts do not spend it.
	ok := srv.rawResume(t, ctx, "steal", "victim", sid, resumeToken)
	if m := ok.expect(ctx, "joined", ""); m["resumed"] != true {
		t.Fatalf("joined without resumed: %v", m)
	}
}

// A client may notice a dead connection before the server does; its resume
// then takes over the participant from the connection still attached.
func TestResumeTakesOverAConnectionTheServerStillHolds(t *testing.T) {
	t.Parallel()
	srv := startServer(t, nil, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	watcher := srv.join(t, ctx, "takeover", "watcher", newCounter(), true)
	defer watcher.Close()
	first, sid, resumeToken := srv.rawJoin(t, ctx, "takeover", "mobile")
	second := srv.rawResume(t, ctx, "takeover", "mobile", sid, resumeToken)
	if m := second.expect(ctx, "joined", ""); m["resumed"] != true {
		t.Fatalf("not resumed: %v", m)
	}
	first.expectClosed(ctx, websocket.StatusNormalClosure)
	second.write(ctx, websocket.MessageText, `{"type":"chat","text":"still here"}`)
	if _, err := watcher.WaitFor(ctx, func(m client.Message) bool {
		return m.Type == "chat" && strings.Contains(string(m.Raw), "still here")
	}); err != nil {
		t.Fatal(err)
	}
	for _, m := range watcher.Messages() {
		if m.Type == "participant_left" {
			t.Fatalf("the watcher saw a leave: %s", m.Raw)
		}
	}
}

// A resume before anything was ever offered must not break later offers.
func TestResumeBeforeFirstOfferStillGetsMedia(t *testing.T) {
	t.Parallel()
	srv := startServer(t, nil, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	aliceCnt := newCounter()
	alice := srv.join(t, ctx, "early", "alice", aliceCnt, true)
	defer alice.Close()
	if err := alice.DropAndResume(ctx); err != nil {
		t.Fatal(err)
	}
	bob := srv.join(t, ctx, "early", "bob", newCounter(), true)
	defer bob.Close()
	publishSynth(t, ctx, bob, true, false)
	waitUntil(t, 20*time.Second, "alice to receive bob after her resume", func() bool {
		return aliceCnt.get(bob.SID(), "video") > 30
	})
}

// A participant the server ended cannot come back through a resume.
func TestRemovedParticipantCannotResume(t *testing.T) {
	t.Parallel()
	srv := startServer(t, nil, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, sid, resumeToken := srv.rawJoin(t, ctx, "kick", "bad")
	if !srv.Rooms().Remove("kick", "bad") {
		t.Fatal("remove failed")
	}
	srv.rawResume(t, ctx, "kick", "bad", sid, resumeToken).expect(ctx, "error", "resume_failed")
	waitUntil(t, 5*time.Second, "the removed participant's media to be gone", func() bool {
		return srv.Media().TrackCount() == 0 && srv.Rooms().Get("kick") != nil && len(srv.Rooms().Get("kick").Participants()) == 0
	})
}
