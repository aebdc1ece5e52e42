package room

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"
)

func TestJoinOpensMediaAndLeaveClosesItOnce(t *testing.T) {
	t.Parallel()
	m := newTestManager(10, time.Hour)
	media := m.media.(*nopMedia)
	_, _, alice := join(t, m, "r", "alice")
	_, bob, bobMem := join(t, m, "r", "bob")
	if !media.isOpen(alice.SID()) || !media.isOpen(bobMem.SID()) {
		t.Fatal("join did not open a media session")
	}
	if others := bobMem.Others(); len(others) != 1 || others[0].Identity != "alice" {
		t.Fatalf("bob's others = %v, want alice", others)
	}
	alice.Leave("left")
	alice.Leave("left")
	if media.isOpen(alice.SID()) {
		t.Fatal("leave did not close the media session")
	}
	if got := bob.types(); !slices.Equal(got, []string{"participant_left"}) {
		t.Fatalf("bob got %v, want one participant_left", got)
	}
}

func TestJoinAfterCloseFails(t *testing.T) {
	t.Parallel()
	m := newTestManager(10, time.Hour)
	m.Close(ReasonServerShutdown)
	if _, err := m.Join(context.Background(), joinRequest("r", "a", &fakeParticipant{})); err != ErrClosed {
		t.Fatalf("join after close: %v, want ErrClosed", err)
	}
}

// trackLog records a watcher's calls.
type trackLog struct {
	mu     sync.Mutex
	events []string
}

func (l *trackLog) TrackAdded(t TrackInfo)   { l.add("+" + t.SID) }
func (l *trackLog) TrackRemoved(t TrackInfo) { l.add("-" + t.SID) }
func (l *trackLog) add(s string)             { l.mu.Lock(); l.events = append(l.events, s); l.mu.Unlock() }
func (l *trackLog) get() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.events)
}

func TestWatchFollowsTracksByRoomName(t *testing.T) {
	t.Parallel()
	m := newTestManager(10, time.Hour)
	early := &trackLog{}
	stopEarly := m.Watch("r", early) // before the room exists
	_, _, a := join(t, m, "r", "a")
	m.TrackPublished("r", TrackInfo{SID: "TR_1", ParticipantSID: a.SID()})
	late := &trackLog{}
	stopLate := m.Watch("r", late)
	m.TrackPublished("r", TrackInfo{SID: "TR_2", ParticipantSID: a.SID()})
	m.TrackPublished("r", TrackInfo{SID: "TR_x", ParticipantSID: "PA_gone"}) // not a member: ignored
	m.TrackUnpublished("r", TrackInfo{SID: "TR_1", ParticipantSID: a.SID()})
	a.Leave("left")
	// The publisher left first; its track still ends for watchers.
	m.TrackUnpublished("r", TrackInfo{SID: "TR_2", ParticipantSID: a.SID()})
	m.TrackUnpublished("r", TrackInfo{SID: "TR_2", ParticipantSID: a.SID()})
	stopLate()
	m.CloseRoom("r", ReasonRoomClosed)
	_, _, b := join(t, m, "r", "b") // the same name, a new room
	m.TrackPublished("r", TrackInfo{SID: "TR_3", ParticipantSID: b.SID()})
	stopEarly()
	m.TrackUnpublished("r", TrackInfo{SID: "TR_3", ParticipantSID: b.SID()})

	if got, want := early.get(), []string{"+TR_1", "+TR_2", "-TR_1", "-TR_2", "+TR_3"}; !slices.Equal(got, want) {
		t.Errorf("early watcher saw %v, want %v", got, want)
	}
	if got, want := late.get(), []string{"+TR_1", "+TR_2", "-TR_1", "-TR_2"}; !slices.Equal(got, want) {
		t.Errorf("late watcher saw %v, want %v", got, want)
	}
}

// When the server ends a participant (removed, replaced by a newer join,
// room closed), the room ends its membership itself: the participant is
// told, and its media session closes whether or not the front door calls
// Leave.
func TestServerEndedMembersCloseTheirMedia(t *testing.T) {
	t.Parallel()
	m := newTestManager(10, time.Hour)
	media := m.media.(*nopMedia)
	_, first, firstMem := join(t, m, "r", "alice")
	_, _, second := join(t, m, "r", "alice") // replaces the first
	if first.closed != ReasonDuplicateIdentity || media.isOpen(firstMem.SID()) {
		t.Fatalf("replaced: closed %q, media open %v", first.closed, media.isOpen(firstMem.SID()))
	}
	_, bob, bobMem := join(t, m, "r", "bob")
	if !m.Remove("r", "bob") || bob.closed != ReasonRemoved || media.isOpen(bobMem.SID()) {
		t.Fatalf("removed: closed %q, media open %v", bob.closed, media.isOpen(bobMem.SID()))
	}
	if !m.CloseRoom("r", ReasonRoomClosed) || media.isOpen(second.SID()) {
		t.Fatal("room closed with a media session still open")
	}
}
