// Package room is the room model shared by every front door and the media
// plane: rooms, participants, tracks, the events participants receive, and
// the interfaces that connect a front door to the media server.
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
