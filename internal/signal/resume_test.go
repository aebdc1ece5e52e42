package signal_test

import (
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/quartet-rtc/quartet/internal/room"
	"github.com/quartet-rtc/quartet/internal/signal"
)

// resumeMsg is a join that resumes a participant.
func resumeMsg(token, participantSID, resumeToken string) map[string]any {
	return joinMsg(token, "resume", map[string]any{"participantSid": participantSID, "resumeToken": resumeToken})
}

// leftLines are the server's "participant left" log lines of a participant.
func (hs *harness) leftLines(sid string) []string {
	return hs.logLines(`msg="participant left"`, "participant="+sid)
}

func TestLeave(t *testing.T) {
	t.Parallel()
	hs := newHarness(t)
	alice, bob, aj := joinAliceAndBob(hs)
	sid := aj.Participant.SID

	alice.send(map[string]any{"type": "leave"})
	alice.expectClosed(websocket.StatusNormalClosure)
	if m := bob.expect("participant_left"); m.Participant.SID != sid || m.Participant.Identity != "alice" {
		t.Errorf("participant_left = %s", m)
	}
	bob.syncQuiet()
	hs.waitServing(1) // alice's session is over
	s := hs.session(sid)
	if !s.Closed() {
		t.Errorf("media session not closed: %v", s.Methods())
	}
	if _, ps, _ := hs.rooms.Describe("demo"); len(ps) != 1 || ps[0].Identity != "bob" {
		t.Errorf("room has %+v, want bob alone", ps)
	}
	// Leaving is final: the session cannot be resumed.
	c := hs.dial()
	c.send(resumeMsg(hs.token("alice", "demo"), sid, aj.ResumeToken))
	c.expectError(signal.CodeResumeFailed)

	// One log line says the participant left, also once the server is shut.
	hs.rooms.Close(room.ReasonServerShutdown)
	hs.h.Close(time.Second)
	lines := hs.leftLines(sid)
	if len(lines) != 1 || !strings.Contains(lines[0], "reason=left") {
		t.Errorf("participant left log lines = %q, want one with reason left", lines)
	}
	if n := s.Count("Close"); n != 1 {
		t.Errorf("media session closed %d times", n)
	}
}

// dropAndPark drops a client's connection and waits until its session is
// over, which parks its participant; serving is how many sessions remain.
func dropAndPark(hs *harness, c *client, serving int64) {
	hs.t.Helper()
	c.drop()
	hs.waitServing(serving)
}

func TestDroppedConnectionResumes(t *testing.T) {
	t.Parallel()
	hs := newHarness(t)
	alice, aj := hs.join("alice", "demo")
	bob, bj := hs.join("bob", "demo")
	alice.expect("participant_joined")
	sid := aj.Participant.SID
	mine := room.TrackInfo{SID: "TR_a", ParticipantSID: sid, Kind: "audio", Source: room.SourceMicrophone}
	publishTrack(hs, "demo", mine, alice, bob)

	dropAndPark(hs, alice, 1)
	// Nobody notices; the participant is still in the room with its media.
	bob.syncQuiet()
	s := hs.session(sid)
	if s.Closed() {
		t.Fatal("media session closed on a dropped connection")
	}
	if _, ps, _ := hs.rooms.Describe("demo"); len(ps) != 2 {
		t.Fatalf("room has %d participants, want 2", len(ps))
	}
	// What happens while parked is lost for alice: a chat, carol joining.
	bob.send(map[string]any{"type": "chat", "text": "anyone?"})
	bob.expect("chat")
	carol, cj := hs.join("carol", "demo")
	bob.expect("participant_joined")

	again := hs.dial()
	again.send(resumeMsg(hs.token("alice", "demo"), sid, aj.ResumeToken))
	joined := again.expect("joined")
	if !joined.Resumed || joined.Participant.SID != sid || joined.Room.SID != aj.Room.SID {
		t.Errorf("joined = %s, want alice resumed in the same room", joined)
	}
	if joined.ResumeToken == "" || joined.ResumeToken == aj.ResumeToken {
		t.Errorf("resumed joined must carry a new resume token, got %q", joined.ResumeToken)
	}
	if p := joined.Participant.Permissions; p == nil || !p.CanPublish {
		t.Errorf("resumed joined has permissions %+v", p)
	}
	if tr := joined.Participant.Tracks; len(tr) != 1 || tr[0].SID != "TR_a" {
		t.Errorf("resumed joined shows alice's tracks as %+v", tr)
	}
	others := map[string]bool{}
	for _, p := range joined.Participants {
		others[p.SID] = true
	}
	if len(others) != 2 || !others[bj.Participant.SID] || !others[cj.Participant.SID] {
		t.Errorf("resumed joined lists %+v, want bob and carol", joined.Participants)
	}
	// The missed chat is gone; the media session was told to resync once,
	// and no new one was opened.
	again.syncQuiet()
	if n := s.Count("Resync"); n != 1 {
		t.Errorf("Resync called %d times, want 1 (calls %v)", n, s.Methods())
	}
	if n := len(hs.media.Sessions()); n != 3 {
		t.Errorf("%d media sessions, want 3", n)
	}
	// Others saw nothing of it; the new connection serves the participant.
	bob.syncQuiet()
	carol.syncQuiet()
	s.Events.SubscriberOffer("v=0 after resume", map[string]room.TrackInfo{})
	if o := again.expect("offer"); o.SDP != "v=0 after resume" {
		t.Errorf("offer = %s", o)
	}
	again.send(map[string]any{"type": "chat", "text": "back"})
	for _, c := range []*client{again, bob, carol} {
		if m := c.expect("chat"); m.From.SID != sid {
			t.Errorf("chat = %s", m)
		}
	}
	// A resume token is single-use.
	third := hs.dial()
	third.send(resumeMsg(hs.token("alice", "demo"), sid, aj.ResumeToken))
	third.expectError(signal.CodeResumeFailed)
	again.syncQuiet()
}

func TestResumeKeepsTheSubscriptionMode(t *testing.T) {
	t.Parallel()
	hs := newHarness(t)
	c := hs.dial()
	c.send(joinMsg(hs.token("alice", "demo"), "autoSubscribe", false))
	aj := c.expect("joined")
	dropAndPark(hs, c, 0)
	again := hs.dial()
	m := resumeMsg(hs.token("alice", "demo"), aj.Participant.SID, aj.ResumeToken)
	m["autoSubscribe"] = true
	again.send(m)
	again.expect("joined")
	sessions := hs.media.Sessions()
	if len(sessions) != 1 || !sessions[0].Options.ManualSubscribe {
		t.Errorf("want the one media session, opened with ManualSubscribe")
	}
}

func TestUnresumedParticipantLeaves(t *testing.T) {
	t.Parallel()
	hs := newHarness(t, setup{signal: func(c *signal.Config) { c.ResumeTimeout = 50 * time.Millisecond }})
	alice, bob, aj := joinAliceAndBob(hs)
	sid := aj.Participant.SID

	alice.drop()
	if m := bob.expect("participant_left"); m.Participant.SID != sid {
		t.Errorf("participant_left = %s", m)
	}
	s := hs.session(sid)
	waitUntil(t, "the media session to close", s.Closed)
	waitUntil(t, "the participant left log line", func() bool { return len(hs.leftLines(sid)) > 0 })
	if lines := hs.leftLines(sid); len(lines) != 1 || !strings.Contains(lines[0], "reason=resume_timeout") {
		t.Errorf("participant left log lines = %q", lines)
	}
	// A late resume fails and leaves the connection open for a fresh join.
	c := hs.dial()
	c.send(resumeMsg(hs.token("alice", "demo"), sid, aj.ResumeToken))
	c.expectError(signal.CodeResumeFailed)
	c.send(joinMsg(hs.token("alice", "demo")))
	joined := c.expect("joined")
	if joined.Resumed || joined.Participant.SID == sid {
		t.Errorf("fresh joined = %s, want a new participant", joined)
	}
	if m := bob.expect("participant_joined"); m.Participant.SID != joined.Participant.SID {
		t.Errorf("participant_joined = %s", m)
	}
}

func TestResumeRefused(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// resume returns the attempt, given alice's sid and resume token.
		resume func(hs *harness, sid, token string) map[string]any
	}{
		{"wrong resume token", func(hs *harness, sid, _ string) map[string]any {
			return resumeMsg(hs.token("alice", "demo"), sid, "not-the-token")
		}},
		{"unknown participant", func(hs *harness, _, token string) map[string]any {
			return resumeMsg(hs.token("alice", "demo"), "PA_NOBODY", token)
		}},
		{"another identity", func(hs *harness, sid, token string) map[string]any {
			return resumeMsg(hs.token("mallory", "demo"), sid, token)
		}},
		{"another room", func(hs *harness, sid, token string) map[string]any {
			return resumeMsg(hs.token("alice", "other"), sid, token)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			hs := newHarness(t)
			alice, aj := hs.join("alice", "demo")
			sid := aj.Participant.SID
			dropAndPark(hs, alice, 0)

			c := hs.dial()
			c.send(tt.resume(hs, sid, aj.ResumeToken))
			e := c.expectError(signal.CodeResumeFailed)
			if e.RequestType != "join" || strings.Contains(e.raw, aj.ResumeToken) {
				t.Errorf("error = %s", e)
			}
			c.syncQuiet() // the connection stays open
			// The failed attempt did not touch the parked participant.
			again := hs.dial()
			again.send(resumeMsg(hs.token("alice", "demo"), sid, aj.ResumeToken))
			if j := again.expect("joined"); !j.Resumed || j.Participant.SID != sid {
				t.Errorf("joined = %s", j)
			}
		})
	}
}

// TestResumeTakesOverALiveConnection: a client may see its connection die
// before the server does, and resume while the server still holds it.
func TestResumeTakesOverALiveConnection(t *testing.T) {
	t.Parallel()
	hs := newHarness(t)
	old, aj := hs.join("alice", "demo")
	bob, _ := hs.join("bob", "demo")
	old.expect("participant_joined")
	sid := aj.Participant.SID

	c := hs.dial()
	c.send(resumeMsg(hs.token("alice", "demo"), sid, aj.ResumeToken))
	if j := c.expect("joined"); !j.Resumed || j.Participant.SID != sid {
		t.Errorf("joined = %s", j)
	}
	// The old connection is closed without a leave: it is not the
	// participant that ends.
	old.expectClosed(websocket.StatusNormalClosure)
	hs.waitServing(2) // the old session is over
	s := hs.session(sid)
	c.syncQuiet()
	bob.syncQuiet()
	if s.Closed() || s.Count("Resync") != 1 {
		t.Errorf("media calls = %v, want one Resync and no Close", s.Methods())
	}
	c.send(map[string]any{"type": "chat", "text": "moved"})
	c.expect("chat")
	bob.expect("chat")
}

func TestResumeAfterResume(t *testing.T) {
	t.Parallel()
	hs := newHarness(t)
	c, j := hs.join("alice", "demo")
	sid := j.Participant.SID
	for i := range 3 {
		dropAndPark(hs, c, 0)
		c = hs.dial()
		c.send(resumeMsg(hs.token("alice", "demo"), sid, j.ResumeToken))
		j = c.expect("joined")
		if !j.Resumed || j.Participant.SID != sid {
			t.Fatalf("resume %d: joined = %s", i, j)
		}
	}
	c.syncQuiet()
	if n := hs.session(sid).Count("Resync"); n != 3 {
		t.Errorf("Resync called %d times, want 3", n)
	}
}
