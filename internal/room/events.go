package room

import (
	"encoding/json"
	"sync"
	"time"
)

// Event is anything delivered to a participant. Each event is a JSON-ready
// struct whose Type field is the native protocol's message type, so the
// native front door sends it as is and other front doors translate it.
type Event interface{ EventType() string }

// ParticipantEvent is participant_joined or participant_left.
type ParticipantEvent struct {
	Type        string          `json:"type"`
	Participant ParticipantInfo `json:"participant"`
}

// TrackEvent is track_published or track_unpublished.
type TrackEvent struct {
	Type  string    `json:"type"`
	Track TrackInfo `json:"track"`
}

// MuteEvent is mute_changed.
type MuteEvent struct {
	Type           string `json:"type"`
	ParticipantSID string `json:"participantSid"`
	TrackSID       string `json:"trackSid"`
	Muted          bool   `json:"muted"`
}

// SpeakersEvent is active_speakers.
type SpeakersEvent struct {
	Type     string    `json:"type"`
	Speakers []Speaker `json:"speakers"`
}

// ChatSender identifies who sent a chat message.
type ChatSender struct {
	SID      string `json:"sid"`
	Identity string `json:"identity"`
	Name     string `json:"name"`
}

// ChatEvent is chat.
type ChatEvent struct {
	Type string     `json:"type"`
	From ChatSender `json:"from"`
	Text string     `json:"text"`
	Time time.Time  `json:"time"`
}

// EventType implements Event.
func (e ParticipantEvent) EventType() string { return e.Type }

// EventType implements Event.
func (e TrackEvent) EventType() string { return e.Type }

// EventType implements Event.
func (e MuteEvent) EventType() string { return e.Type }

// EventType implements Event.
func (e SpeakersEvent) EventType() string { return e.Type }

// EventType implements Event.
func (e ChatEvent) EventType() string { return e.Type }

// SharedEvent is one event delivered to many participants. Front doors
// that send JSON encode it once for all of them: in a big room every join
// reaches everyone, and encoding per recipient made joins quadratic in CPU.
type SharedEvent struct {
	Event
	once sync.Once
	data []byte
	err  error
}

// JSON returns the event's JSON encoding, computed once. The bytes are
// shared: callers must not modify them.
func (s *SharedEvent) JSON() ([]byte, error) {
	s.once.Do(func() { s.data, s.err = json.Marshal(s.Event) })
	return s.data, s.err
}

// MarshalJSON implements json.Marshaler with the cached encoding.
func (s *SharedEvent) MarshalJSON() ([]byte, error) { return s.JSON() }
