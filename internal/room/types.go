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
	// Layers are the simulcast layers of a video track, lowest first;
	// empty for audio and for video sent as one stream.
	Layers []Layer `json:"layers,omitempty"`
}

// Layer is one simulcast layer of a published video track.
type Layer struct {
	RID     string `json:"rid"`
	Quality string `json:"quality"`
	Width   int    `json:"width,omitempty"`
	Height  int    `json:"height,omitempty"`
	// Bitrate is the publisher's maximum for the layer, in bits per second.
	Bitrate int `json:"bitrate,omitempty"`
}

// Layer qualities, which name a track's layers by position: one layer is
// high; two are low and high; three are low, medium and high.
const (
	QualityLow    = "low"
	QualityMedium = "medium"
	QualityHigh   = "high"
)

// QualityNames names n layers, lowest first.
func QualityNames(n int) []string {
	switch n {
	case 0:
		return nil
	case 1:
		return []string{QualityHigh}
	case 2:
		return []string{QualityLow, QualityHigh}
	}
	names := make([]string, n)
	for i := range names {
		names[i] = QualityMedium
	}
	names[0], names[n-1] = QualityLow, QualityHigh
	return names
}

// QualityRank orders qualities: low 0, medium 1, high 2; -1 for anything else.
func QualityRank(q string) int {
	switch q {
	case QualityLow:
		return 0
	case QualityMedium:
		return 1
	case QualityHigh:
		return 2
	}
	return -1
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
