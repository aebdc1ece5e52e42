package room

import (
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Config holds the room limits (the room section of the configuration
// file; see docs/configuration.md).
type Config struct {
	// EmptyTimeout is how long an empty room lives on, so that a participant
	// who reloads the page finds the same room.
	EmptyTimeout    time.Duration `yaml:"empty_timeout"`
	MaxParticipants int           `yaml:"max_participants"`
}

// Deps are what the manager works with.
type Deps struct {
	Log   *slog.Logger
	Media Media
	// Metrics, if set, gets the room gauges.
	Metrics prometheus.Registerer
}

// Manager owns the rooms of this server: created on first join, closed when
// they have been empty for EmptyTimeout. It implements Reports.
type Manager struct {
	cfg   Config
	log   *slog.Logger
	media Media

	mu     sync.Mutex
	rooms  map[string]*Room
	timers map[string]*time.Timer // empty-room timers, by room name
	closed bool

	// watchMu orders track reports with the watchers that follow them; it
	// is taken before Room.mu and never while holding Manager.mu.
	watchMu  sync.Mutex
	watchers map[string]map[*watch]struct{}  // by room name
	live     map[string]map[string]TrackInfo // tracks being published, by room name and sid
}

// NewManager creates a room manager and registers its metrics.
func NewManager(cfg Config, deps Deps) *Manager {
	m := &Manager{
		cfg:      cfg,
		log:      deps.Log,
		media:    deps.Media,
		rooms:    map[string]*Room{},
		timers:   map[string]*time.Timer{},
		watchers: map[string]map[*watch]struct{}{},
		live:     map[string]map[string]TrackInfo{},
	}
	if deps.Metrics == nil {
		return m
	}
	deps.Metrics.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "quartet_rooms", Help: "Open rooms.",
		}, func() float64 { return float64(len(m.List())) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "quartet_participants", Help: "Participants connected to rooms.",
		}, m.countParticipants),
	)
	return m
}

// joinRoom puts p into the named room, creating the room if needed. A
// participant with the same identity is closed with reason
// duplicate_identity.
func (m *Manager) joinRoom(name string, p Participant, info ParticipantInfo, mem *Member) (*Room, []ParticipantInfo, error) {
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
	if mem != nil {
		mem.bind(r)
	}
	others, replaced, err := r.join(p, info, mem)
	m.mu.Unlock()
	if replaced != nil {
		replaced.end(ReasonDuplicateIdentity)
	}
	if err != nil {
		m.left(r)
		return nil, nil, err
	}
	return r, others, nil
}

func (m *Manager) isClosed() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.closed
}

// left starts the empty-room timer if r is now empty.
func (m *Manager) left(r *Room) {
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

// Describe returns the named room and its participants; false if there is
// no such room.
func (m *Manager) Describe(name string) (Info, []ParticipantInfo, bool) {
	r := m.Get(name)
	if r == nil {
		return Info{}, nil, false
	}
	return r.Info(), r.Participants(), true
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
	m.left(r)
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
