package room

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// nopMedia opens sessions that do nothing, counting the ones still open.
// (roomtest.Media is the fuller fake; it cannot be imported here.)
type nopMedia struct{ open sync.Map }

type nopSession struct {
	MediaSession // nil: only Start and Close are called by the room
	m            *nopMedia
	sid          string
}

func (n *nopMedia) Open(_, sid string, _ SessionOptions, _ MediaEvents) (MediaSession, error) {
	n.open.Store(sid, true)
	return &nopSession{m: n, sid: sid}, nil
}

func (n *nopMedia) Attach(string, string, Sink) (Attachment, error) { return nil, ErrUnknownTrack }

func (n *nopMedia) isOpen(sid string) bool { _, ok := n.open.Load(sid); return ok }

func (s *nopSession) Start() {}
func (s *nopSession) Close() { s.m.open.Delete(s.sid) }

// fakeParticipant records what the room sends it.
type fakeParticipant struct {
	mu     sync.Mutex
	events []Event
	closed string
}

func (f *fakeParticipant) Deliver(ev Event) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.events = append(f.events, ev)
}

func (f *fakeParticipant) Close(reason string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = reason
}

func (f *fakeParticipant) types() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, ev := range f.events {
		out = append(out, ev.EventType())
	}
	return out
}

func newTestManager(max int, empty time.Duration) *Manager {
	return NewManager(Config{EmptyTimeout: empty, MaxParticipants: max},
		Deps{Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Media: &nopMedia{}, Metrics: prometheus.NewRegistry()})
}

func joinRequest(roomName, identity string, p Participant) JoinRequest {
	return JoinRequest{Room: roomName, Participant: p,
		Info: ParticipantInfo{SID: NewSID("PA_"), Identity: identity, Name: identity, Permissions: &Permissions{}}}
}

func join(t *testing.T, m *Manager, roomName, identity string) (*Room, *fakeParticipant, *Member) {
	t.Helper()
	p := &fakeParticipant{}
	mem, err := m.Join(context.Background(), joinRequest(roomName, identity, p))
	if err != nil {
		t.Fatalf("join %s: %v", identity, err)
	}
	return m.Get(roomName), p, mem
}

func TestJoinLeaveEvents(t *testing.T) {
	t.Parallel()
	m := newTestManager(10, time.Hour)
	r, alice, aliceMem := join(t, m, "r", "alice")
	_, bob, bobMem := join(t, m, "r", "bob")
	if got := alice.types(); len(got) != 1 || got[0] != "participant_joined" {
		t.Fatalf("alice got %v, want one participant_joined", got)
	}
	if got := bob.types(); len(got) != 0 {
		t.Fatalf("bob got %v about himself", got)
	}
	track := TrackInfo{SID: "TR_1", ParticipantSID: bobMem.SID(), Kind: "audio", Source: SourceMicrophone}
	m.TrackPublished("r", track)
	if !r.SetMuted(bobMem.SID(), "TR_1", true) || r.SetMuted(bobMem.SID(), "TR_2", true) {
		t.Fatal("SetMuted should accept bob's track and refuse an unknown one")
	}
	aliceMem.Chat("hi")
	bobMem.Leave("test")
	want := []string{"participant_joined", "track_published", "mute_changed", "chat", "participant_left"}
	if got := alice.types(); len(got) != len(want) {
		t.Fatalf("alice got %v, want %v", got, want)
	}
	if ps := r.Participants(); len(ps) != 1 || ps[0].Identity != "alice" {
		t.Fatalf("participants = %v", ps)
	}
}

func TestDuplicateIdentityReplacesOlder(t *testing.T) {
	t.Parallel()
	m := newTestManager(10, time.Hour)
	_, first, _ := join(t, m, "r", "alice")
	r, _, _ := join(t, m, "r", "alice")
	if first.closed != ReasonDuplicateIdentity {
		t.Fatalf("older session closed with %q, want %q", first.closed, ReasonDuplicateIdentity)
	}
	if n := len(r.Participants()); n != 1 {
		t.Fatalf("%d participants, want 1", n)
	}
}

func TestRoomFull(t *testing.T) {
	t.Parallel()
	m := newTestManager(2, time.Hour)
	join(t, m, "r", "a")
	join(t, m, "r", "b")
	media := m.media.(*nopMedia)
	req := joinRequest("r", "c", &fakeParticipant{})
	if _, err := m.Join(context.Background(), req); !errors.Is(err, ErrRoomFull) {
		t.Fatalf("third join: %v, want ErrRoomFull", err)
	}
	if media.isOpen(req.Info.SID) {
		t.Fatal("a refused join left its media session open")
	}
}

func TestEmptyRoomClosesAfterTimeout(t *testing.T) {
	t.Parallel()
	m := newTestManager(10, 50*time.Millisecond)
	_, _, mem := join(t, m, "r", "a")
	mem.Leave("test")
	if m.Get("r") == nil {
		t.Fatal("room closed at once; it should wait for the empty timeout")
	}
	deadline := time.Now().Add(5 * time.Second)
	for m.Get("r") != nil {
		if time.Now().After(deadline) {
			t.Fatal("empty room was never closed")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestRejoinCancelsEmptyTimeout(t *testing.T) {
	t.Parallel()
	m := newTestManager(10, 50*time.Millisecond)
	r, _, mem := join(t, m, "r", "a")
	mem.Leave("test")
	r2, _, _ := join(t, m, "r", "b")
	time.Sleep(150 * time.Millisecond)
	if m.Get("r") != r2 || r2 != r {
		t.Fatal("a room with a participant was closed")
	}
}

func TestRemoveAndCloseRoom(t *testing.T) {
	t.Parallel()
	m := newTestManager(10, time.Hour)
	join(t, m, "r", "a")
	_, b, _ := join(t, m, "r", "b")
	if !m.Remove("r", "b") || b.closed != ReasonRemoved {
		t.Fatalf("remove: closed=%q", b.closed)
	}
	if m.Remove("r", "b") || m.Remove("nope", "a") {
		t.Fatal("removing a missing participant reported success")
	}
	_, c, _ := join(t, m, "r", "c")
	if !m.CloseRoom("r", ReasonRoomClosed) || c.closed != ReasonRoomClosed || m.Get("r") != nil {
		t.Fatal("close room did not close everyone")
	}
}

func TestSharedEventEncodesOnceLikeItsEvent(t *testing.T) {
	ev := ParticipantEvent{Type: "participant_joined", Participant: ParticipantInfo{SID: "PA_1", Identity: "ann", Tracks: []TrackInfo{}}}
	shared := &SharedEvent{Event: ev}
	want, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	a, err := shared.JSON()
	if err != nil || string(a) != string(want) {
		t.Fatalf("JSON() = %s, %v; want %s", a, err, want)
	}
	b, _ := json.Marshal(shared)
	c, _ := shared.JSON()
	if string(b) != string(want) || &a[0] != &c[0] {
		t.Errorf("marshal %s; encoded again: %v", b, &a[0] != &c[0])
	}
	if shared.EventType() != "participant_joined" {
		t.Errorf("type %q", shared.EventType())
	}
}
