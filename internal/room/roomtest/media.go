// Package roomtest has a fake media server for tests of the room and of
// front doors: it records what a front door asks of its media session and
// lets a test play the media plane's events.
package roomtest

import (
	"context"
	"fmt"
	"sync"

	"github.com/quartet-rtc/quartet/internal/room"
)

// Media is a fake room.Media. Every session it opens is kept, by
// participant sid.
type Media struct {
	mu       sync.Mutex
	sessions map[string]*Session
	order    []*Session
	// OpenErr, if set, makes Open fail.
	OpenErr error
	onOpen  func(*Session)
}

var (
	_ room.Media        = (*Media)(nil)
	_ room.MediaSession = (*Session)(nil)
)

// NewMedia returns a fake media server.
func NewMedia() *Media { return &Media{sessions: map[string]*Session{}} }

// Open implements room.Media.
func (m *Media) Open(roomName, participantSID string, opts room.SessionOptions, events room.MediaEvents) (room.MediaSession, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.OpenErr != nil {
		return nil, m.OpenErr
	}
	s := &Session{Room: roomName, SID: participantSID, Options: opts, Events: events}
	m.sessions[participantSID] = s
	m.order = append(m.order, s)
	if m.onOpen != nil {
		m.onOpen(s)
	}
	return s, nil
}

// SetOnOpen makes Open call f with each new session before returning it,
// so that a test can prepare the session (OnStart, SetErr) before the
// front door uses it. f runs with the Media's lock held: it must not call
// the Media.
func (m *Media) SetOnOpen(f func(*Session)) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.onOpen = f
}

// Attach implements room.Media; the fake has no tracks to attach to.
func (m *Media) Attach(roomName, trackSID string, _ room.Sink) (room.Attachment, error) {
	return nil, fmt.Errorf("%w: %s in %s", room.ErrUnknownTrack, trackSID, roomName)
}

// Session returns the session opened for a participant, or nil.
func (m *Media) Session(participantSID string) *Session {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.sessions[participantSID]
}

// Sessions returns every session opened, in order.
func (m *Media) Sessions() []*Session {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]*Session(nil), m.order...)
}

// Call is one call a front door made on a session.
type Call struct {
	Method string
	Args   []any
}

// Session is a fake room.MediaSession. Publish answers at once through
// Events with "answer:" + the offer, unless PublishErr is set.
type Session struct {
	Room    string
	SID     string
	Options room.SessionOptions
	Events  room.MediaEvents

	mu      sync.Mutex
	calls   []Call
	started bool
	closed  bool
	// Err, if set, is returned by every method that returns an error.
	Err error
	// OnStart, if set, runs at the end of Start, with no lock held: it
	// plays what the media plane does when a session starts, such as
	// sending a subscriber offer for the tracks already in the room (which
	// reaches the front door before Manager.Join returns). Set it from
	// Media.SetOnOpen.
	OnStart func(*Session)
}

func (s *Session) record(method string, args ...any) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, Call{Method: method, Args: args})
	return s.Err
}

// Calls returns the calls made so far.
func (s *Session) Calls() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Call(nil), s.calls...)
}

// Methods returns the names of the calls made so far.
func (s *Session) Methods() []string {
	var out []string
	for _, c := range s.Calls() {
		out = append(out, c.Method)
	}
	return out
}

// Count returns how many times method was called.
func (s *Session) Count(method string) int {
	n := 0
	for _, c := range s.Calls() {
		if c.Method == method {
			n++
		}
	}
	return n
}

// Last returns the last call of method; false if there was none.
func (s *Session) Last(method string) (Call, bool) {
	calls := s.Calls()
	for i := len(calls) - 1; i >= 0; i-- {
		if calls[i].Method == method {
			return calls[i], true
		}
	}
	return Call{}, false
}

// Started and Closed report whether Start and Close were called.
func (s *Session) Started() bool { s.mu.Lock(); defer s.mu.Unlock(); return s.started }
func (s *Session) Closed() bool  { s.mu.Lock(); defer s.mu.Unlock(); return s.closed }

// SetErr makes later calls fail with err.
func (s *Session) SetErr(err error) { s.mu.Lock(); s.Err = err; s.mu.Unlock() }

// Publish implements room.MediaSession.
func (s *Session) Publish(offerSDP string, tracks []room.TrackMeta) error {
	if err := s.record("Publish", offerSDP, tracks); err != nil {
		return err
	}
	s.Events.PublisherAnswer("answer:"+offerSDP, []room.TrackInfo{})
	return nil
}

// PublishGathered implements room.MediaSession.
func (s *Session) PublishGathered(_ context.Context, offerSDP string, tracks []room.TrackMeta) (room.Answer, error) {
	if err := s.record("PublishGathered", offerSDP, tracks); err != nil {
		return room.Answer{}, err
	}
	return room.Answer{SDP: "answer:" + offerSDP, Tracks: []room.TrackInfo{}}, nil
}

// SubscriberAnswer implements room.MediaSession.
func (s *Session) SubscriberAnswer(sdp string) error { return s.record("SubscriberAnswer", sdp) }

// AcceptSubscriberOffer implements room.MediaSession.
func (s *Session) AcceptSubscriberOffer(_ context.Context, offerSDP string, trackSIDs []string) (room.Answer, error) {
	if err := s.record("AcceptSubscriberOffer", offerSDP, trackSIDs); err != nil {
		return room.Answer{}, err
	}
	return room.Answer{SDP: "answer:" + offerSDP, Mids: map[string]room.TrackInfo{}}, nil
}

// AddCandidate implements room.MediaSession.
func (s *Session) AddCandidate(target string, c *room.Candidate) error {
	return s.record("AddCandidate", target, c)
}

// RestartICE implements room.MediaSession.
func (s *Session) RestartICE() error { return s.record("RestartICE") }

// Resync implements room.MediaSession.
func (s *Session) Resync() error { return s.record("Resync") }

// SetMuted implements room.MediaSession.
func (s *Session) SetMuted(trackSID string, muted bool) error {
	return s.record("SetMuted", trackSID, muted)
}

// Subscribe implements room.MediaSession.
func (s *Session) Subscribe(trackSIDs []string, subscribe bool) error {
	return s.record("Subscribe", trackSIDs, subscribe)
}

// SetTrackSettings implements room.MediaSession.
func (s *Session) SetTrackSettings(trackSIDs []string, settings room.TrackSettings) error {
	return s.record("SetTrackSettings", trackSIDs, settings)
}

// Start implements room.MediaSession.
func (s *Session) Start() {
	_ = s.record("Start")
	s.mu.Lock()
	s.started = true
	onStart := s.OnStart
	s.mu.Unlock()
	if onStart != nil {
		onStart(s)
	}
}

// Close implements room.MediaSession.
func (s *Session) Close() {
	_ = s.record("Close")
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
}
