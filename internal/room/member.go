package room

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
)

// ErrEnded is returned by Join when the server ended the participant while
// it was joining (removed, room closed, replaced by a newer join): the
// participant was told through Participant.Close.
var ErrEnded = errors.New("the participant was ended while joining")

// JoinRequest is what a front door knows of a participant joining a room.
type JoinRequest struct {
	Room string
	// Info is the participant as the access token describes it; Info.SID
	// and Info.Permissions must be set.
	Info ParticipantInfo
	// Participant receives the room's events and is closed when the server
	// ends the membership.
	Participant Participant
	// Events receives the media session's descriptions and candidates.
	Events MediaEvents
	// ManualSubscribe: see SessionOptions.
	ManualSubscribe bool
}

// Member is a participant's membership of a room, with its media session:
// what a front door holds between Join and Leave.
type Member struct {
	m     *Manager
	room  *Room
	info  ParticipantInfo
	media MediaSession
	// others is who was in the room at the moment of joining: later
	// changes reach the participant as events, so a front door's first
	// message lists these and no one twice.
	others []ParticipantInfo
	log    *slog.Logger
	once   sync.Once
	left   atomic.Bool // Leave was called
}

// Join is the one way into a room for every front door: it opens the
// participant's media session, joins the room (creating it if needed;
// a participant with the same identity is closed with
// ReasonDuplicateIdentity) and starts the media session, which subscribes
// it to the tracks already there. Events for the participant may arrive
// before Join returns; the front door queues them behind its reply.
func (m *Manager) Join(ctx context.Context, req JoinRequest) (*Member, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if m.isClosed() {
		return nil, ErrClosed
	}
	opts := SessionOptions{ManualSubscribe: req.ManualSubscribe}
	if req.Info.Permissions != nil {
		opts.Permissions = *req.Info.Permissions
	}
	media, err := m.media.Open(req.Room, req.Info.SID, opts, req.Events)
	if err != nil {
		return nil, fmt.Errorf("open media session: %w", err)
	}
	mem := &Member{m: m, info: req.Info, media: media}
	_, others, err := m.joinRoom(req.Room, req.Participant, req.Info, mem)
	if err != nil {
		media.Close()
		return nil, err
	}
	mem.others = others
	if mem.left.Load() {
		// The server ended it during the join (removed, room closed,
		// replaced): the participant was told, its media is closed.
		return nil, ErrEnded
	}
	media.Start()
	return mem, nil
}

// bind records the room the member is joining; Manager.mu is held.
func (mem *Member) bind(r *Room) {
	mem.room = r
	mem.log = r.log.With("participant", mem.info.SID, "identity", mem.info.Identity)
}

// Leave ends the membership: the others are told (unless the server
// already removed the participant), the media session closes, and an
// empty room starts its timer. Only the first call does anything. The room
// calls it itself, after Participant.Close, when the server ends a
// participant (removed, room closed, shutdown, replaced by a newer join),
// so a front door calls it only when its client is gone.
func (mem *Member) Leave(reason string) {
	mem.once.Do(func() {
		mem.left.Store(true)
		mem.room.Leave(mem.info.SID)
		mem.m.left(mem.room)
		mem.media.Close()
		mem.log.Info("participant left", "reason", reason)
	})
}

// Media is the participant's media session.
func (mem *Member) Media() MediaSession { return mem.media }

// SID is the participant's server id.
func (mem *Member) SID() string { return mem.info.SID }

// RoomSID and RoomName identify the room.
func (mem *Member) RoomSID() string  { return mem.room.SID() }
func (mem *Member) RoomName() string { return mem.room.Name() }

// Others lists who was in the room when the member joined.
func (mem *Member) Others() []ParticipantInfo { return mem.others }

// Participants lists everyone in the room now, the member included.
func (mem *Member) Participants() []ParticipantInfo { return mem.room.Participants() }

// SetMuted records the mute state of one of the member's tracks in the
// media plane and tells the room.
func (mem *Member) SetMuted(trackSID string, muted bool) error {
	if err := mem.media.SetMuted(trackSID, muted); err != nil {
		return err
	}
	mem.room.SetMuted(mem.info.SID, trackSID, muted)
	return nil
}

// Chat sends a text message to everyone in the room, the member included.
func (mem *Member) Chat(text string) { mem.room.Chat(mem.info.SID, text) }
