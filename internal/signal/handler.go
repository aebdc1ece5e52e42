// Package signal is the native signaling front door: JSON over WebSocket,
// as documented in docs/protocol.md. It knows rooms and media sessions only
// through the room package's interfaces, and nothing about RTP.
package signal

import (
	"context"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/quartet-rtc/quartet/internal/auth"
	"github.com/quartet-rtc/quartet/internal/logsample"
	"github.com/quartet-rtc/quartet/internal/room"
)

// Config holds the front door's limits (the signal section of the
// configuration file; see docs/configuration.md).
type Config struct {
	MaxMessageBytes int64         `yaml:"max_message_bytes"`
	RatePerSecond   float64       `yaml:"rate_per_second"`
	RateBurst       int           `yaml:"rate_burst"`
	JoinTimeout     time.Duration `yaml:"join_timeout"`
	PingInterval    time.Duration `yaml:"ping_interval"`
	MaxConnections  int           `yaml:"max_connections"`
	WriteTimeout    time.Duration `yaml:"write_timeout"`
	// ResumeTimeout is how long a participant whose connection dropped is
	// kept for its client to resume the session.
	ResumeTimeout time.Duration `yaml:"resume_timeout"`
	// AllowedOrigins are the other web origins (host patterns such as
	// "app.example.com" or "*.example.com") whose pages may open signaling
	// connections; the server's own origin is always allowed.
	AllowedOrigins []string `yaml:"allowed_origins"`
}

// Rooms is how the front door joins rooms; *room.Manager implements it.
type Rooms interface {
	Join(ctx context.Context, req room.JoinRequest) (*room.Member, error)
}

// Deps are what the front door talks to.
type Deps struct {
	Log      *slog.Logger
	Verifier *auth.Verifier
	Rooms    Rooms
	// ICEServers returns the ICE servers for a joining participant; nil
	// means none (no STUN/TURN role).
	ICEServers func(identity string, r *http.Request) []ICEServer
	Metrics    prometheus.Registerer
	// ServerVersion is told to clients in joined.
	ServerVersion string
}

// Handler accepts WebSocket connections at the signaling endpoint.
type Handler struct {
	cfg     Config
	deps    Deps
	conns   atomic.Int64
	closing atomic.Bool

	participantsMu sync.Mutex
	participants   map[string]*participant // joined and not yet gone, by sid
	ctx            context.Context         // canceled by Close
	cancel         context.CancelFunc
	sessions       sync.WaitGroup

	connections prometheus.GaugeFunc
	errors      *prometheus.CounterVec
	messages    prometheus.Counter
	clientLogs  *logsample.Sampler // see logClient
}

// New creates the signaling handler.
func New(cfg Config, deps Deps) *Handler {
	h := &Handler{cfg: cfg, deps: deps, participants: map[string]*participant{}, clientLogs: newClientLogs()}
	h.ctx, h.cancel = context.WithCancel(context.Background())
	h.connections = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "quartet_signal_connections", Help: "Open signaling WebSocket connections.",
	}, func() float64 { return float64(h.conns.Load()) })
	h.errors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "quartet_signal_errors_total", Help: "Errors sent to signaling clients, by code.",
	}, []string{"code"})
	h.messages = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "quartet_signal_messages_total", Help: "Messages received from signaling clients.",
	})
	if deps.Metrics != nil {
		deps.Metrics.MustRegister(h.connections, h.errors, h.messages)
	}
	return h
}

// ServeHTTP upgrades the request to a WebSocket and runs the session until
// it ends.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if n := h.conns.Add(1); n > int64(h.cfg.MaxConnections) {
		h.conns.Add(-1)
		h.logClient(h.deps.Log, slog.LevelWarn, "refused", "signaling connection refused: too many connections", "limit", h.cfg.MaxConnections)
		http.Error(w, "too many connections", http.StatusServiceUnavailable)
		return
	}
	defer h.conns.Add(-1)
	if h.closing.Load() {
		http.Error(w, "server is shutting down", http.StatusServiceUnavailable)
		return
	}
	h.sessions.Add(1)
	defer h.sessions.Done()
	// A browser's Origin must be the server's own or an allowed one, so
	// that no other site can open sessions from its visitors' browsers.
	conn, err := websocket.Accept(w, r, &websocket.AcceptOptions{OriginPatterns: h.cfg.AllowedOrigins})
	if err != nil {
		h.logClient(h.deps.Log, slog.LevelInfo, "upgrade_failed", "websocket upgrade failed", "err", err, "remote", r.RemoteAddr)
		return
	}
	conn.SetReadLimit(h.cfg.MaxMessageBytes)
	s := newSession(h, conn, r)
	s.run(h.ctx)
}

// countError records an error sent to a client.
func (h *Handler) countError(code string) { h.errors.WithLabelValues(code).Inc() }

// Close refuses new sessions, gives the ones already told to leave up to
// grace to flush their last messages, then ends the rest and waits for all.
func (h *Handler) Close(grace time.Duration) {
	h.closing.Store(true)
	done := make(chan struct{})
	go func() { h.sessions.Wait(); close(done) }()
	select {
	case <-done:
		return
	case <-time.After(grace):
	}
	h.cancel()
	<-done
}

// register records a joined participant so that its client can resume it.
func (h *Handler) register(p *participant) {
	h.participantsMu.Lock()
	defer h.participantsMu.Unlock()
	h.participants[p.sid] = p
}

func (h *Handler) unregister(p *participant) {
	h.participantsMu.Lock()
	defer h.participantsMu.Unlock()
	if h.participants[p.sid] == p {
		delete(h.participants, p.sid)
	}
}

func (h *Handler) participant(sid string) *participant {
	h.participantsMu.Lock()
	defer h.participantsMu.Unlock()
	return h.participants[sid]
}
