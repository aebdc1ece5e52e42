package signal_test

import (
	"errors"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/quartet-rtc/quartet/internal/auth"
	"github.com/quartet-rtc/quartet/internal/room"
	"github.com/quartet-rtc/quartet/internal/room/roomtest"
	"github.com/quartet-rtc/quartet/internal/signal"
)

// joinMsg is a join message with token; extra fields are added to it.
func joinMsg(token string, extra ...any) map[string]any {
	m := map[string]any{"type": "join", "protocol": 1, "token": token}
	for i := 0; i+1 < len(extra); i += 2 {
		m[extra[i].(string)] = extra[i+1]
	}
	return m
}

func TestJoinedDescribesTheRoom(t *testing.T) {
	t.Parallel()
	var (
		mu       sync.Mutex
		askedFor []string // ICEServers runs on the joining session's reader
	)
	ice := []signal.ICEServer{{URLs: []string{"stun:127.0.0.1:3478", "turn:127.0.0.1:3478?transport=udp"},
		Username: "123:alice", Credential: "secret"}}
	hs := newHarness(t, setup{deps: func(d *signal.Deps) {
		d.ICEServers = func(identity string, r *http.Request) []signal.ICEServer {
			if r == nil || r.RemoteAddr == "" {
				t.Errorf("ICEServers got no request")
			}
			mu.Lock()
			defer mu.Unlock()
			askedFor = append(askedFor, identity)
			return ice
		}
	}})
	bob, bobJoined := hs.join("bob", "demo")
	before := time.Now().UTC()
	alice, joined := hs.join("alice", "demo")

	if joined.Protocol != 1 || joined.ServerVersion != "test" || joined.Resumed {
		t.Errorf("joined = %s: want protocol 1, serverVersion test, resumed false", joined)
	}
	if joined.Room.Name != "demo" || !strings.HasPrefix(joined.Room.SID, "RM_") || joined.Room.SID != bobJoined.Room.SID {
		t.Errorf("room = %+v, want demo with bob's room sid %s", joined.Room, bobJoined.Room.SID)
	}
	self := joined.Participant
	if !strings.HasPrefix(self.SID, "PA_") || self.Identity != "alice" || self.Name != "Alice" {
		t.Errorf("participant = %+v", self)
	}
	if want := (room.Permissions{CanPublish: true, CanSubscribe: true}); self.Permissions == nil || *self.Permissions != want {
		t.Errorf("permissions = %+v, want %+v", self.Permissions, want)
	}
	if self.JoinedAt.Before(before.Add(-time.Second)) || self.JoinedAt.Location() != time.UTC {
		t.Errorf("joinedAt = %v, want about %v in UTC", self.JoinedAt, before)
	}
	if len(joined.Participants) != 1 || joined.Participants[0].SID != bobJoined.Participant.SID ||
		joined.Participants[0].Permissions != nil {
		t.Errorf("participants = %+v, want bob without permissions", joined.Participants)
	}
	mu.Lock()
	asked := askedFor
	mu.Unlock()
	if !reflect.DeepEqual(joined.ICEServers, ice) || !reflect.DeepEqual(asked, []string{"bob", "alice"}) {
		t.Errorf("iceServers = %+v (asked for %v), want %+v", joined.ICEServers, asked, ice)
	}
	if len(joined.ResumeToken) < 20 || joined.ResumeToken == bobJoined.ResumeToken {
		t.Errorf("resumeToken = %q, want a fresh secret", joined.ResumeToken)
	}
	for _, field := range []string{`"tracks":[]`, `"participants":[{`} {
		if !strings.Contains(joined.raw, field) {
			t.Errorf("joined lacks %s: %s", field, joined)
		}
	}
	if !strings.Contains(bobJoined.raw, `"participants":[]`) {
		t.Errorf("first joined should list no one: %s", bobJoined)
	}

	// Bob learns of alice, without her permissions.
	pj := bob.expect("participant_joined")
	if pj.Participant.SID != self.SID || pj.Participant.Identity != "alice" || pj.Participant.Permissions != nil ||
		strings.Contains(pj.raw, "permissions") {
		t.Errorf("participant_joined = %s", pj)
	}
	// The media session was opened for the participant and started once,
	// before anything else was asked of it.
	s := hs.session(self.SID)
	if s.Room != "demo" || s.SID != self.SID {
		t.Errorf("media session opened for %s in %s", s.SID, s.Room)
	}
	alice.syncQuiet()
	if got := s.Methods(); !reflect.DeepEqual(got, []string{"Start"}) {
		t.Errorf("media calls = %v, want [Start]", got)
	}
	if n := len(hs.media.Sessions()); n != 2 {
		t.Errorf("%d media sessions opened, want 2", n)
	}
}

func TestJoinedWithoutICEServers(t *testing.T) {
	t.Parallel()
	hs := newHarness(t)
	_, joined := hs.join("alice", "demo")
	if !strings.Contains(joined.raw, `"iceServers":[]`) {
		t.Errorf("joined = %s, want iceServers []", joined)
	}
}

func TestJoinNameDefaultsToIdentity(t *testing.T) {
	t.Parallel()
	hs := newHarness(t)
	c := hs.dial()
	c.send(joinMsg(hs.token("alice", "demo", func(s *auth.TokenSpec) { s.Name = "" })))
	if p := c.expect("joined").Participant; p.Name != "alice" {
		t.Errorf("name = %q, want the identity", p.Name)
	}
}

func TestJoinSessionOptions(t *testing.T) {
	t.Parallel()
	no := false
	tests := []struct {
		name          string
		publish, sub  bool
		admin         bool
		autoSubscribe any // nil: absent
		want          room.SessionOptions
	}{
		{"defaults", true, true, false, nil,
			room.SessionOptions{Permissions: room.Permissions{CanPublish: true, CanSubscribe: true}}},
		{"auto subscribe", true, true, false, true,
			room.SessionOptions{Permissions: room.Permissions{CanPublish: true, CanSubscribe: true}}},
		{"manual subscribe", true, true, false, no,
			room.SessionOptions{Permissions: room.Permissions{CanPublish: true, CanSubscribe: true}, ManualSubscribe: true}},
		{"viewer", false, true, false, nil,
			room.SessionOptions{Permissions: room.Permissions{CanSubscribe: true}}},
		{"publisher only", true, false, false, nil,
			room.SessionOptions{Permissions: room.Permissions{CanPublish: true}}},
		{"admin", true, true, true, no,
			room.SessionOptions{Permissions: room.Permissions{CanPublish: true, CanSubscribe: true, Admin: true}, ManualSubscribe: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			hs := newHarness(t)
			c := hs.dial()
			tok := hs.token("alice", "demo", func(s *auth.TokenSpec) {
				s.CanPublish, s.CanSubscribe, s.Admin = tt.publish, tt.sub, tt.admin
			})
			m := joinMsg(tok)
			if tt.autoSubscribe != nil {
				m["autoSubscribe"] = tt.autoSubscribe
			}
			c.send(m)
			joined := c.expect("joined")
			s := hs.session(joined.Participant.SID)
			if s.Options != tt.want {
				t.Errorf("session options = %+v, want %+v", s.Options, tt.want)
			}
			if p := joined.Participant.Permissions; p == nil || *p != tt.want.Permissions {
				t.Errorf("joined permissions = %+v, want %+v", p, tt.want.Permissions)
			}
		})
	}
}

func TestJoinRefused(t *testing.T) {
	t.Parallel()
	mint := func(t *testing.T, key, secret string, spec auth.TokenSpec, now time.Time) string {
		tok, err := auth.Mint(key, secret, spec, now)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	alice := auth.TokenSpec{Identity: "alice", Room: "demo", CanPublish: true, CanSubscribe: true, TTL: time.Hour}
	withRoom := func(name string) auth.TokenSpec { s := alice; s.Room = name; return s }
	tests := []struct {
		name  string
		join  func(t *testing.T, hs *harness) any
		code  string
		fatal bool
	}{
		{"no token", func(*testing.T, *harness) any { return map[string]any{"type": "join", "protocol": 1} },
			signal.CodeUnauthorized, true},
		{"malformed token", func(*testing.T, *harness) any { return joinMsg("not.a.jwt") },
			signal.CodeUnauthorized, true},
		{"bad signature", func(t *testing.T, _ *harness) any {
			return joinMsg(mint(t, testKey, "another-secret-of-at-least-32-bytes", alice, time.Now()))
		}, signal.CodeUnauthorized, true},
		{"unknown key", func(t *testing.T, _ *harness) any {
			return joinMsg(mint(t, "otherkey", testSecret, alice, time.Now()))
		}, signal.CodeUnauthorized, true},
		{"expired", func(t *testing.T, _ *harness) any {
			return joinMsg(mint(t, testKey, testSecret, alice, time.Now().Add(-2*time.Hour)))
		}, signal.CodeUnauthorized, true},
		{"no room grant", func(t *testing.T, _ *harness) any {
			return joinMsg(mint(t, testKey, testSecret, withRoom(""), time.Now()))
		}, signal.CodeUnauthorized, true},
		{"room name too long", func(t *testing.T, _ *harness) any {
			return joinMsg(mint(t, testKey, testSecret, withRoom(strings.Repeat("r", 129)), time.Now()))
		}, signal.CodeUnauthorized, true},
		{"room name with a control character", func(t *testing.T, _ *harness) any {
			return joinMsg(mint(t, testKey, testSecret, withRoom("de\nmo"), time.Now()))
		}, signal.CodeUnauthorized, true},
		{"no protocol", func(t *testing.T, hs *harness) any {
			return map[string]any{"type": "join", "token": hs.token("alice", "demo")}
		}, signal.CodeUnsupportedProtocol, true},
		{"protocol 2", func(t *testing.T, hs *harness) any {
			m := joinMsg(hs.token("alice", "demo"))
			m["protocol"] = 2
			return m
		}, signal.CodeUnsupportedProtocol, true},
		{"resume without its token", func(t *testing.T, hs *harness) any {
			return joinMsg(hs.token("alice", "demo"), "resume", map[string]any{"participantSid": "PA_x"})
		}, signal.CodeBadRequest, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			hs := newHarness(t)
			c := hs.dial()
			c.send(tt.join(t, hs))
			e := c.expectError(tt.code)
			if e.RequestType != "join" || e.Message == "" {
				t.Errorf("error = %s, want requestType join and a message", e)
			}
			if tt.fatal {
				c.expectClosed(websocket.StatusNormalClosure)
			} else {
				c.syncQuiet()
			}
			if n := len(hs.media.Sessions()); n != 0 {
				t.Errorf("%d media sessions opened for a refused join", n)
			}
			if _, ps, ok := hs.rooms.Describe("demo"); ok && len(ps) > 0 {
				t.Errorf("room has %d participants after a refused join", len(ps))
			}
		})
	}
}

func TestJoinNeverEchoesTheToken(t *testing.T) {
	t.Parallel()
	hs := newHarness(t)
	c := hs.dial()
	tok := hs.token("alice", "demo")
	bad := tok[:len(tok)-4] + "AAAA" // a bad signature
	c.send(joinMsg(bad))
	e := c.expectError(signal.CodeUnauthorized)
	payload := strings.Split(tok, ".")[1] // the claims
	if strings.Contains(e.raw, payload) || strings.Contains(hs.logs.String(), payload) {
		t.Errorf("the token was echoed: %s", e)
	}
}

func TestJoinTwice(t *testing.T) {
	t.Parallel()
	hs := newHarness(t)
	c, joined := hs.join("alice", "demo")
	c.send(joinMsg(hs.token("alice", "demo")))
	if e := c.expectError(signal.CodeAlreadyJoined); e.RequestType != "join" {
		t.Errorf("error = %s", e)
	}
	c.syncQuiet() // still open
	if n := len(hs.media.Sessions()); n != 1 {
		t.Errorf("%d media sessions opened, want 1", n)
	}
	if s := hs.session(joined.Participant.SID); s.Closed() || s.Count("Start") != 1 {
		t.Errorf("media calls = %v, want one Start and no Close", s.Methods())
	}
}

func TestMessagesBeforeJoin(t *testing.T) {
	t.Parallel()
	hs := newHarness(t)
	c := hs.dial()
	for _, m := range []map[string]any{
		{"type": "offer", "target": "publisher", "sdp": "v=0"},
		{"type": "answer", "target": "subscriber", "sdp": "v=0"},
		{"type": "candidate", "target": "publisher", "candidate": nil},
		{"type": "restart_ice"},
		{"type": "mute", "trackSid": "TR_1", "muted": true},
		{"type": "subscribe", "trackSids": []string{"TR_1"}},
		{"type": "unsubscribe", "trackSids": []string{"TR_1"}},
		{"type": "chat", "text": "hi"},
		{"type": "leave"},
	} {
		c.send(m)
		if e := c.expectError(signal.CodeNotJoined); e.RequestType != m["type"] {
			t.Errorf("%v: error = %s, want requestType %v", m["type"], e, m["type"])
		}
	}
	c.send(map[string]any{"type": "ping", "id": "7"})
	if p := c.expect("pong"); p.ID != "7" {
		t.Errorf("pong = %s, want id 7", p)
	}
	// Undecodable messages are answered the same before and after a join.
	for _, tt := range []struct {
		typ  websocket.MessageType
		data string
		code string
	}{
		{websocket.MessageText, `not json`, signal.CodeBadJSON},
		{websocket.MessageText, `{"type":"teleport"}`, signal.CodeUnknownType},
		{websocket.MessageText, `{"type":"offer","target":"subscriber","sdp":"x"}`, signal.CodeBadRequest},
		{websocket.MessageBinary, `{"type":"ping"}`, signal.CodeBadRequest},
	} {
		c.sendRaw(tt.typ, tt.data)
		c.expectError(tt.code)
	}
	// Nothing of that reached the rooms or the media server; a join on the
	// same connection works.
	if n := len(hs.media.Sessions()); n != 0 {
		t.Errorf("%d media sessions before join", n)
	}
	c.send(joinMsg(hs.token("alice", "demo")))
	c.expect("joined")
}

func TestJoinFullRoom(t *testing.T) {
	t.Parallel()
	hs := newHarness(t, setup{room: func(c *room.Config) { c.MaxParticipants = 1 }})
	alice, _ := hs.join("alice", "demo")
	bob := hs.dial()
	bob.send(joinMsg(hs.token("bob", "demo")))
	bob.expectError(signal.CodeRoomFull)
	bob.expectClosed(websocket.StatusNormalClosure)
	alice.syncQuiet() // alice saw nobody come or go
	// Bob's media session was opened before the room refused him, and closed.
	sessions := hs.media.Sessions()
	if len(sessions) != 2 || !sessions[1].Closed() || sessions[0].Closed() {
		t.Fatalf("media sessions: want bob's closed and alice's open")
	}
	// Another room is not full.
	hs.join("bob", "other")
}

func TestJoinWhenMediaFails(t *testing.T) {
	t.Parallel()
	hs := newHarness(t)
	hs.media.OpenErr = errors.New("udp socket exploded")
	c := hs.dial()
	c.send(joinMsg(hs.token("alice", "demo")))
	e := c.expectError(signal.CodeInternal)
	if strings.Contains(e.Message, "exploded") {
		t.Errorf("error %s shows an internal error to the client", e)
	}
	c.expectClosed(websocket.StatusNormalClosure)
	if lines := hs.logLines(`msg="join failed"`, "exploded"); len(lines) != 1 {
		t.Errorf("want one log line of the failure, got %q", lines)
	}
}

func TestJoinAfterRoomsClosed(t *testing.T) {
	t.Parallel()
	hs := newHarness(t)
	hs.rooms.Close(room.ReasonServerShutdown)
	c := hs.dial()
	c.send(joinMsg(hs.token("alice", "demo")))
	c.expectError(signal.CodeInternal)
	c.expectClosed(websocket.StatusNormalClosure)
}

func TestJoinWithDuplicateIdentity(t *testing.T) {
	t.Parallel()
	hs := newHarness(t)
	first, firstJoined := hs.join("alice", "demo")
	bob, _ := hs.join("bob", "demo")
	first.expect("participant_joined")
	second, secondJoined := hs.join("alice", "demo")

	// The older session is told why and closed; its media session too.
	if m := first.expect("leave"); m.Reason != room.ReasonDuplicateIdentity {
		t.Errorf("older session got %s, want leave duplicate_identity", m)
	}
	first.expectClosed(websocket.StatusNormalClosure)
	oldSID := firstJoined.Participant.SID
	if s := hs.session(oldSID); !s.Closed() {
		t.Errorf("older media session not closed: %v", s.Methods())
	}
	// The newer one is a different participant that sees only bob.
	newSID := secondJoined.Participant.SID
	if newSID == oldSID || len(secondJoined.Participants) != 1 || secondJoined.Participants[0].Identity != "bob" {
		t.Errorf("newer joined = %s", secondJoined)
	}
	// Bob sees the old alice go, then the new one come.
	if m := bob.expect("participant_left"); m.Participant.SID != oldSID {
		t.Errorf("bob got %s, want the older alice to leave", m)
	}
	if m := bob.expect("participant_joined"); m.Participant.SID != newSID {
		t.Errorf("bob got %s, want the newer alice to join", m)
	}
	second.syncQuiet()
	bob.syncQuiet()
	hs.waitServing(2)
	if lines := hs.logLines(`msg="participant left"`, oldSID); len(lines) != 1 ||
		!strings.Contains(lines[0], "reason="+room.ReasonDuplicateIdentity) {
		t.Errorf("participant left log lines = %q, want one with reason duplicate_identity", lines)
	}
	// The replaced session cannot be resumed.
	c := hs.dial()
	c.send(joinMsg(hs.token("alice", "demo"), "resume",
		map[string]any{"participantSid": oldSID, "resumeToken": firstJoined.ResumeToken}))
	c.expectError(signal.CodeResumeFailed)
}

// TestEndedWhileJoining ends a participant while its join is in progress:
// between the room taking it and the front door's joined. The client must
// see only the leave, and its media session must close.
func TestEndedWhileJoining(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		reason string
		end    func(*room.Manager)
	}{
		{"removed", room.ReasonRemoved, func(m *room.Manager) { m.Remove("demo", "alice") }},
		{"room closed", room.ReasonRoomClosed, func(m *room.Manager) { m.CloseRoom("demo", room.ReasonRoomClosed) }},
		{"server shutdown", room.ReasonServerShutdown, func(m *room.Manager) { m.Close(room.ReasonServerShutdown) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			hs := newHarness(t)
			hs.media.SetOnOpen(func(s *roomtest.Session) {
				s.OnStart = func(*roomtest.Session) { tt.end(hs.rooms) }
			})
			c := hs.dial()
			c.send(joinMsg(hs.token("alice", "demo")))
			if m := c.next(); m.Type != "leave" || m.Reason != tt.reason {
				t.Fatalf("got %s, want leave %s", m, tt.reason)
			}
			c.expectClosed(websocket.StatusNormalClosure)
			s := hs.media.Sessions()[0]
			waitUntil(t, "the media session to close", s.Closed)
			hs.waitServing(0)
			if lines := hs.logLines(`msg="participant left"`, s.SID); len(lines) != 1 {
				t.Errorf("participant left log lines = %q, want one", lines)
			}
			if _, ps, ok := hs.rooms.Describe("demo"); ok && len(ps) != 0 {
				t.Errorf("room still has %+v", ps)
			}
		})
	}
}
