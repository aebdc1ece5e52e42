package room

import (
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Config holds the room limits.
type Config struct {
	// EmptyTimeout is how long an empty room lives on, so that a participant
	// who reloads the page finds the same room.
	EmptyTimeout    time.Duration
	MaxParticipants int
}

// Manager owns the rooms of this server: created on first join, closed when
// they have been empty for EmptyTimeout.
type Manager struct {
	cfg Config
	log *slog.Logger

	mu     sync.Mutex
	rooms  map[string]*Room
	timers map[string]*time.Timer // empty-room timers, by room name
	closed bool
}

// NewManager creates a room manager and registers its metrics on reg.
func NewManager(cfg Config, log *slog.Logger, reg prometheus.Registerer) *Manager {
	m := &Manager{
		cfg:    cfg,
		log:    log,
		rooms:  map[string]*Room{},
		timers: map[string]*time.Timer{},
	}
	reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "quartet_rooms", Help: "Open rooms.",
		}, func() float64 { return float64(len(m.List())) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "quartet_participants", Help: "Participants connected to rooms.",
		}, m.countParticipants),
	)
	return m
}

// Join puts p into the named room, creating the room if needed. It returns
// the room and the participants already there. A participant with the same
// identity is closed with reason duplicate_identity.
func (m *Manager) Join(name string, p Participant, info ParticipantInfo) (*Room, []ParticipantInfo, error) {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil, nil, ErrClosed
	}
	r, ok := m.rooms[name]
	if !ok {
		r = newRoom(name, m.cfg.MaxParticipants, m.log)
		m.rooms[name] = r
		r.log.Info("room created")
	}
	if t, ok := m.timers[name]; ok {
		t.Stop()
		delete(m.timers, name)
	}
	others, replaced, err := r.join(p, info)
	m.mu.Unlock()
	if replaced != nil {
		replaced.Close(ReasonDuplicateIdentity)
	}
	if err != nil {
		m.Left(r)
		return nil, nil, err
	}
	return r, others, nil
}

// Leave removes a participant from its room.
func (m *Manager) Leave(r *Room, participantSID string) {
	r.Leave(participantSID)
	m.Left(r)
}

// Left starts the empty-room timer if r is now empty.
func (m *Manager) Left(r *Room) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.rooms[r.name] != r || !r.empty() {
		return
	}
	if _, ok := m.timers[r.name]; ok {
		return
	}
	m.timers[r.name] = time.AfterFunc(m.cfg.EmptyTimeout, func() { m.closeIfEmpty(r) })
}

func (m *Manager) closeIfEmpty(r *Room) {
	m.mu.Lock()
	if m.rooms[r.name] != r || !r.empty() {
		m.mu.Unlock()
		return
	}
	delete(m.rooms, r.name)
	delete(m.timers, r.name)
	m.mu.Unlock()
	r.close(ReasonRoomClosed)
}

// Get returns the named room, or nil.
func (m *Manager) Get(name string) *Room {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.rooms[name]
}

// List describes every open room, sorted by name.
func (m *Manager) List() []Info {
	m.mu.Lock()
	rooms := make([]*Room, 0, len(m.rooms))
	for _, r := range m.rooms {
		rooms = append(rooms, r)
	}
	m.mu.Unlock()
	out := make([]Info, 0, len(rooms))
	for _, r := range rooms {
		out = append(out, r.Info())
	}
	slices.SortFunc(out, func(a, b Info) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Remove ends the session of one participant, by identity.
func (m *Manager) Remove(roomName, identity string) bool {
	r := m.Get(roomName)
	if r == nil {
		return false
	}
	if !r.Remove(identity, ReasonRemoved) {
		return false
	}
	m.Left(r)
	return true
}

// CloseRoom ends every session in the room and forgets it.
func (m *Manager) CloseRoom(name, reason string) bool {
	m.mu.Lock()
	r, ok := m.rooms[name]
	if ok {
		delete(m.rooms, name)
		if t, ok := m.timers[name]; ok {
			t.Stop()
			delete(m.timers, name)
		}
	}
	m.mu.Unlock()
	if !ok {
		return false
	}
	r.close(reason)
	return true
}

// Close ends every room; later joins fail.
func (m *Manager) Close(reason string) {
	m.mu.Lock()
	m.closed = true
	names := make([]string, 0, len(m.rooms))
	for name := range m.rooms {
		names = append(names, name)
	}
	m.mu.Unlock()
	for _, name := range names {
		m.CloseRoom(name, reason)
	}
}

func (m *Manager) countParticipants() float64 {
	n := 0
	for _, info := range m.List() {
		n += info.Participants
	}
	return float64(n)
}
