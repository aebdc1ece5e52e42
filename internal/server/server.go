// Package server wires Quartet's roles together: it builds the room
// manager, media server, signaling front door and application server from
// one Config, runs them, and shuts them down in order.
package server

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/quartet-rtc/quartet/internal/auth"
	"github.com/quartet-rtc/quartet/internal/config"
	"github.com/quartet-rtc/quartet/internal/httpd"
	"github.com/quartet-rtc/quartet/internal/room"
	"github.com/quartet-rtc/quartet/internal/sfu"
	"github.com/quartet-rtc/quartet/internal/signal"
	"github.com/quartet-rtc/quartet/internal/turn"
)

// Options are what a caller may inject instead of what Config would open.
type Options struct {
	Version      string
	Web          fs.FS          // the browser app
	HTTPListener net.Listener   // default: listen on cfg.HTTP.Addr
	UDPConn      net.PacketConn // default: listen on cfg.Media.UDPHost:UDPPort
	Registry     *prometheus.Registry
}

// Server is a running Quartet node.
type Server struct {
	cfg      config.Config
	log      *slog.Logger
	rooms    *room.Manager
	media    *sfu.Engine
	signal   *signal.Handler
	http     *http.Server
	listener net.Listener
	turn     *turn.Server // nil when this node runs no TURN
}

// New builds every enabled role and opens its sockets.
func New(cfg config.Config, log *slog.Logger, opts Options) (*Server, error) {
	reg := registry(opts)
	keys := auth.Keys(cfg.Auth.Keys)
	if cfg.DevMode() {
		keys = auth.Keys{auth.DevAPIKey: auth.DevAPISecret}
		log.Warn("dev mode: no auth.keys configured; using the built-in dev API key, which is for development only",
			"api_key", auth.DevAPIKey)
	}
	s := &Server{cfg: cfg, log: log}
	// The media server reports to the rooms, which open sessions on it:
	// reports reach the manager through s, set just below, before any
	// session can exist.
	media, err := sfu.New(cfg.Media, sfu.Deps{Log: log, Reports: (*roomReports)(s), Metrics: reg, UDPConn: opts.UDPConn})
	if err != nil {
		return nil, fmt.Errorf("start media server: %w", err)
	}
	s.media = media
	s.rooms = room.NewManager(cfg.Room, room.Deps{Log: log, Media: media, Metrics: reg})
	dir, err := s.startTURN(cfg, reg)
	if err != nil {
		_ = media.Close()
		return nil, err
	}
	verifier := auth.NewVerifier(keys)
	s.signal = signal.New(cfg.Signal, signal.Deps{Log: log, Verifier: verifier, Rooms: s.rooms, Metrics: reg,
		ICEServers: iceServers(dir), ServerVersion: opts.Version})
	deps := httpd.Deps{Log: log, Rooms: s.rooms, Verifier: verifier, Signal: s.signal,
		Metrics: promhttp.HandlerFor(reg, promhttp.HandlerOpts{}), Web: opts.Web}
	if dir != nil {
		deps.TURN = func(user string, r *http.Request) any { return dir.REST(user, r) }
	}
	if cfg.DevMode() {
		deps.DevToken = func(roomName, identity, name string) (string, error) {
			return auth.Mint(auth.DevAPIKey, auth.DevAPISecret, auth.TokenSpec{Identity: identity, Name: name,
				Room: roomName, CanPublish: true, CanSubscribe: true, TTL: cfg.Auth.TokenTTL}, time.Now())
		}
	}
	s.http = newHTTPServer(httpd.New(deps), log)
	s.listener = opts.HTTPListener
	if s.listener == nil {
		if s.listener, err = net.Listen("tcp", cfg.HTTP.Addr); err != nil {
			_ = media.Close()
			s.closeTURN()
			return nil, fmt.Errorf("listen on %s (http.addr): %w", cfg.HTTP.Addr, err)
		}
	}
	return s, nil
}

// registry is the injected Prometheus registry, or a new one with the Go
// and process collectors.
func registry(opts Options) *prometheus.Registry {
	if opts.Registry != nil {
		return opts.Registry
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// newHTTPServer applies the limits every Quartet HTTP listener has.
func newHTTPServer(h http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
		MaxHeaderBytes: 64 << 10, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug)}
}

// roomReports passes the media server's reports to the room manager.
type roomReports Server

func (r *roomReports) TrackPublished(roomName string, t room.TrackInfo) {
	r.rooms.TrackPublished(roomName, t)
}

func (r *roomReports) TrackUnpublished(roomName string, t room.TrackInfo) {
	r.rooms.TrackUnpublished(roomName, t)
}

func (r *roomReports) ActiveSpeakers(roomName string, speakers []room.Speaker) {
	r.rooms.ActiveSpeakers(roomName, speakers)
}

// URL is the application server's base URL.
func (s *Server) URL() string { return "http://" + s.listener.Addr().String() }

// MediaAddr is the media server's UDP address.
func (s *Server) MediaAddr() net.Addr { return s.media.UDPAddr() }

// Media exposes the media server's counters to tests and benchmarks.
func (s *Server) Media() *sfu.Engine { return s.media }

// Rooms exposes the room manager to tests.
func (s *Server) Rooms() *room.Manager { return s.rooms }

// Run serves until ctx ends, then shuts down gracefully: participants are
// told, connections close, and Run returns within the shutdown timeout.
func (s *Server) Run(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() { errc <- s.http.Serve(s.listener) }()
	attrs := []any{"url", s.URL(), "media_udp", s.media.UDPAddr().String()}
	if s.turn != nil {
		attrs = append(attrs, "turn_udp_tcp", s.turn.UDPAddr().String())
		if a := s.turn.TLSAddr(); a != nil {
			attrs = append(attrs, "turn_tls", a.String())
		}
	}
	s.log.Info("quartet is ready", attrs...)
	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-errc:
	}
	s.shutdown()
	if serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) {
		return fmt.Errorf("http server: %w", serveErr)
	}
	return nil
}

func (s *Server) shutdown() {
	s.log.Info("shutting down")
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.HTTP.ShutdownTimeout)
	defer cancel()
	s.rooms.Close(room.ReasonServerShutdown)
	done := make(chan struct{})
	go func() { s.signal.Close(time.Second); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		s.log.Warn("signaling sessions did not end in time")
	}
	if err := s.http.Shutdown(ctx); err != nil {
		s.log.Warn("http shutdown", "err", err)
	}
	if err := s.media.Close(); err != nil {
		s.log.Warn("media shutdown", "err", err)
	}
	s.closeTURN()
	s.log.Info("stopped")
}
