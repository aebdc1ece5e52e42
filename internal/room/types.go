// Package room is the room model shared by every front door and the media
// plane: rooms, participants, tracks, the events participants receive, and
// the interfaces that connect a front door to the media server.
//
// A front door joins with Manager.Join and leaves with Member.Leave; in
// between it talks to the member's MediaSession. The media plane reports
// track and speaker changes through Reports, which the Manager implements.
// An in-process consumer follows a room's tracks with Manager.Watch and
// takes a track's packets with Manager.Attach and a Sink.
//
// Lock order: Manager.watchMu → Manager.mu → Room.mu. Manager.mu is held
// around joining a room, so Participant.Deliver may run under it (the
// participant_joined broadcast); it is never held while calling the media
// plane or a watcher.
//
// Callbacks: Participant.Deliver and TrackWatcher's methods run with room
// locks held; MediaEvents run on media goroutines that may hold media
// locks; Sink methods run on the sink's own goroutine. None of these may
// block, and none may call back into the room or the media plane (Join,
// Leave, Watch, Attach, MediaSession methods): a front door queues such
// work for a goroutine of its own. The exceptions are a sink's own
// Attachment: it may call RequestKeyframe and Detach from inside its
// methods. Participant.Close runs with no lock held and may call
// Member.Leave; the room calls Member.Leave itself right after it.
package room

import (
	"crypto/rand"
	"encoding/base32"
	"time"
)

// Track sources a client may declare.
const (
	SourceCamera      = "camera"
	SourceMicrophone  = "microphone"
	SourceScreen      = "screen"
	SourceScreenAudio = "screen_audio"
	SourceUnknown     = "unknown"
)

// Leave reasons sent to a participant whose session the server ends.
const (
	ReasonRemoved           = "removed"
	ReasonRoomClosed        = "room_closed"
	ReasonServerShutdown    = "server_shutdown"
	ReasonDuplicateIdentity = "duplicate_identity"
	ReasonTimeout           = "timeout"
)

// TrackInfo describes a published track.
type TrackInfo struct {
	SID            string `json:"sid"`
	ParticipantSID string `json:"participantSid"`
	// TrackID is the publisher's own id for the track (its msid track id).
	TrackID  string `json:"trackId,omitempty"`
	Kind     string `json:"kind,omitempty"`
	Source   string `json:"source"`
	Muted    bool   `json:"muted"`
	MimeType string `json:"mimeType,omitempty"`
}

// Permissions are what a participant's access token grants.
type Permissions struct {
	CanPublish   bool `json:"canPublish"`
	CanSubscribe bool `json:"canSubscribe"`
	Admin        bool `json:"admin"`
}

// ParticipantInfo describes a participant as others see it.
type ParticipantInfo struct {
	SID         string       `json:"sid"`
	Identity    string       `json:"identity"`
	Name        string       `json:"name"`
	Tracks      []TrackInfo  `json:"tracks"`
	Permissions *Permissions `json:"permissions,omitempty"`
	JoinedAt    time.Time    `json:"joinedAt"`
}

// Speaker is one entry of the active speaker list.
type Speaker struct {
	SID   string  `json:"sid"`
	Level float64 `json:"level"`
}

// Info describes a room.
type Info struct {
	SID          string    `json:"sid"`
	Name         string    `json:"name"`
	Participants int       `json:"participants"`
	CreatedAt    time.Time `json:"createdAt"`
}

// NewSID returns a random server id with the given prefix, e.g. "PA_".
func NewSID(prefix string) string {
	var b [10]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	return prefix + base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:])
}
