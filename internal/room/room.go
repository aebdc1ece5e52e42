package room

import (
	"errors"
	"log/slog"
	"slices"
	"sync"
	"time"
)

// Participant is a member of a room as the room sees it: a front door
// session (native WebSocket today; WHIP, SIP, recorders later). The room
// calls it with Room.mu held: it must not block and must not call back into
// the room or the media plane (queue the work instead).
type Participant interface {
	// Deliver queues an event for the participant. It must not block.
	Deliver(ev Event)
	// Close ends the participant's session, telling it why.
	Close(reason string)
}

// ErrRoomFull is returned by Join when the room has no place left.
var ErrRoomFull = errors.New("room is full")

// ErrClosed is returned when joining a room that has just closed.
var ErrClosed = errors.New("room is closed")

// member is a participant and what the room knows of it.
type member struct {
	p    Participant
	info ParticipantInfo
	mem  *Member // its membership, which the room ends when it ends it
}

// end tells the participant why the server ended it, then ends its
// membership: the room, not each front door, makes sure the media session
// closes. Call it without holding Room.mu.
func (m *member) end(reason string) {
	m.p.Close(reason)
	if m.mem != nil {
		m.mem.Leave(reason)
	}
}

// Room is a set of participants that see and hear each other. All fields
// below mu are guarded by it; Deliver never blocks, so events are delivered
// while holding it, which keeps their order the same for everyone.
type Room struct {
	sid       string
	name      string
	createdAt time.Time
	max       int
	log       *slog.Logger

	mu       sync.Mutex
	members  map[string]*member // by participant sid
	speakers []Speaker
	closed   bool
}

func newRoom(name string, max int, log *slog.Logger) *Room {
	sid := NewSID("RM_")
	return &Room{
		sid:       sid,
		name:      name,
		createdAt: time.Now(),
		max:       max,
		log:       log.With("room", name, "room_sid", sid),
		members:   map[string]*member{},
	}
}

// SID returns the room's server id.
func (r *Room) SID() string { return r.sid }

// Name returns the room's name.
func (r *Room) Name() string { return r.name }

// Info describes the room.
func (r *Room) Info() Info {
	r.mu.Lock()
	defer r.mu.Unlock()
	return Info{SID: r.sid, Name: r.name, Participants: len(r.members), CreatedAt: r.createdAt}
}

// join adds p. A participant with the same identity is replaced; it is
// returned so the caller can end it outside the lock.
func (r *Room) join(p Participant, info ParticipantInfo, mem *Member) (others []ParticipantInfo, replaced *member, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, nil, ErrClosed
	}
	for sid, m := range r.members {
		if m.info.Identity == info.Identity {
			replaced = m
			r.removeLocked(sid)
			break
		}
	}
	if len(r.members) >= r.max {
		return nil, replaced, ErrRoomFull
	}
	for _, m := range r.members {
		others = append(others, m.publicInfo())
	}
	info.Tracks = []TrackInfo{}
	r.members[info.SID] = &member{p: p, info: info, mem: mem}
	r.broadcastLocked(info.SID, ParticipantEvent{Type: "participant_joined", Participant: publicInfo(info)})
	r.log.Info("participant joined", "participant", info.SID, "identity", info.Identity)
	return others, replaced, nil
}

// Leave removes the participant; it is a no-op if it already left.
func (r *Room) Leave(sid string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.removeLocked(sid)
}

func (r *Room) removeLocked(sid string) {
	m, ok := r.members[sid]
	if !ok {
		return
	}
	delete(r.members, sid)
	r.broadcastLocked("", ParticipantEvent{Type: "participant_left", Participant: m.publicInfo()})
}

// Remove ends the session of the participant with this identity.
// It reports whether there was one.
func (r *Room) Remove(identity, reason string) bool {
	r.mu.Lock()
	var found *member
	for sid, m := range r.members {
		if m.info.Identity == identity {
			found = m
			r.removeLocked(sid)
			break
		}
	}
	r.mu.Unlock()
	if found != nil {
		found.end(reason)
	}
	return found != nil
}

// Participants lists the room's participants.
func (r *Room) Participants() []ParticipantInfo {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]ParticipantInfo, 0, len(r.members))
	for _, m := range r.members {
		out = append(out, m.publicInfo())
	}
	slices.SortFunc(out, func(a, b ParticipantInfo) int { return a.JoinedAt.Compare(b.JoinedAt) })
	return out
}

// AddTrack records a published track and tells everyone. It reports
// whether the track's participant is a member.
func (r *Room) AddTrack(t TrackInfo) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	m, ok := r.members[t.ParticipantSID]
	if !ok {
		return false
	}
	m.info.Tracks = append(m.info.Tracks, t)
	r.broadcastLocked("", TrackEvent{Type: "track_published", Track: t})
	return true
}

// RemoveTrack forgets a track and tells everyone. It reports whether the
// room had the track.
func (r *Room) RemoveTrack(t TrackInfo) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	m, ok := r.members[t.ParticipantSID]
	if !ok {
		return false
	}
	i := slices.IndexFunc(m.info.Tracks, func(x TrackInfo) bool { return x.SID == t.SID })
	if i < 0 {
		return false
	}
	m.info.Tracks = slices.Delete(m.info.Tracks, i, i+1)
	r.broadcastLocked("", TrackEvent{Type: "track_unpublished", Track: t})
	return true
}

// SetMuted records a track's mute state and tells everyone. It reports
// whether the participant has that track.
func (r *Room) SetMuted(participantSID, trackSID string, muted bool) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	m, ok := r.members[participantSID]
	if !ok {
		return false
	}
	i := slices.IndexFunc(m.info.Tracks, func(x TrackInfo) bool { return x.SID == trackSID })
	if i < 0 {
		return false
	}
	if m.info.Tracks[i].Muted != muted {
		m.info.Tracks[i].Muted = muted
		r.broadcastLocked("", MuteEvent{Type: "mute_changed", ParticipantSID: participantSID, TrackSID: trackSID, Muted: muted})
	}
	return true
}

// Chat sends a text message from a participant to everyone, itself included.
func (r *Room) Chat(fromSID, text string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	m, ok := r.members[fromSID]
	if !ok {
		return
	}
	from := ChatSender{SID: m.info.SID, Identity: m.info.Identity, Name: m.info.Name}
	r.broadcastLocked("", ChatEvent{Type: "chat", From: from, Text: text, Time: time.Now().UTC()})
}

// SetActiveSpeakers publishes the active speaker list if it changed.
func (r *Room) SetActiveSpeakers(speakers []Speaker) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if sameSpeakers(r.speakers, speakers) {
		return
	}
	r.speakers = speakers
	r.broadcastLocked("", SpeakersEvent{Type: "active_speakers", Speakers: speakers})
}

// close ends every session in the room.
func (r *Room) close(reason string) {
	r.mu.Lock()
	r.closed = true
	members := r.members
	r.members = map[string]*member{}
	r.mu.Unlock()
	for _, m := range members {
		m.end(reason)
	}
	r.log.Info("room closed", "reason", reason)
}

func (r *Room) empty() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.members) == 0
}

func (r *Room) broadcastLocked(exceptSID string, ev Event) {
	shared := &SharedEvent{Event: ev}
	for sid, m := range r.members {
		if sid != exceptSID {
			m.p.Deliver(shared)
		}
	}
}

func (m *member) publicInfo() ParticipantInfo { return publicInfo(m.info) }

// publicInfo copies info without what only the participant itself may see.
func publicInfo(info ParticipantInfo) ParticipantInfo {
	info.Permissions = nil
	info.Tracks = slices.Clone(info.Tracks)
	if info.Tracks == nil {
		info.Tracks = []TrackInfo{}
	}
	return info
}

func sameSpeakers(a, b []Speaker) bool {
	return slices.EqualFunc(a, b, func(x, y Speaker) bool { return x.SID == y.SID })
}
