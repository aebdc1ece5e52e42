// Package testserver runs an in-process Quartet on random loopback ports
// for tests and benchmarks in any package.
package testserver

import (
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/quartet-rtc/quartet/internal/auth"
	"github.com/quartet-rtc/quartet/internal/config"
	"github.com/quartet-rtc/quartet/internal/server"
	"github.com/quartet-rtc/quartet/web"
)

// Server is a running in-process server.
type Server struct {
	*server.Server
	Config config.Config
	// Stop shuts the server down and waits; it also runs at cleanup.
	Stop func()
}

// Options adjust the server a test starts.
type Options struct {
	// Config changes the default (dev mode) configuration.
	Config func(*config.Config)
	// WrapUDP wraps the media socket, e.g. to inject loss.
	WrapUDP func(net.PacketConn) net.PacketConn
	// UDPConn, if set, is the media socket instead of one on loopback,
	// e.g. one of a pion/transport vnet (then set media.loopback_only
	// false in Config, since its addresses are not loopback). The server
	// closes it when it stops.
	UDPConn net.PacketConn
	// Log, if set, gets the server's log instead of the capture.
	Log *slog.Logger
}

// Logger discards logs unless QUARTET_TEST_LOG is set. Clients use it; a
// started server logs to its own capture (see Start).
func Logger() *slog.Logger {
	if os.Getenv("QUARTET_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// maxCapturedLog bounds the server log kept for a failing test: the last
// bytes are the ones that explain a failure.
const maxCapturedLog = 2 << 20

// logCapture keeps the tail of a server's log.
type logCapture struct {
	mu  sync.Mutex
	buf []byte
}

func (l *logCapture) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, p...)
	// Trim by half the bound at a time, not per line: a full buffer would
	// otherwise move 2 MB for every line logged.
	if len(l.buf) > maxCapturedLog {
		l.buf = append(l.buf[:0], l.buf[len(l.buf)-maxCapturedLog/2:]...)
	}
	return len(p), nil
}

func (l *logCapture) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return string(l.buf)
}

// serverLogger returns the logger of a server started for tb. Its debug
// log is printed when tb fails, so that an intermittent failure explains
// itself; with QUARTET_TEST_LOG set it goes to stderr as it happens.
func serverLogger(tb testing.TB) *slog.Logger {
	if os.Getenv("QUARTET_TEST_LOG") != "" {
		return Logger()
	}
	if _, bench := tb.(*testing.B); bench {
		return Logger() // a benchmark measures the server, not its debug log
	}
	capture := &logCapture{}
	tb.Cleanup(func() {
		if tb.Failed() {
			tb.Logf("server log (last %d bytes at most):\n%s", maxCapturedLog, capture)
		}
	})
	return slog.New(slog.NewTextHandler(capture, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// Start runs a server until the test or benchmark ends.
func Start(tb testing.TB, opts Options) *Server {
	tb.Helper()
	cfg := config.Default()
	cfg.Room.EmptyTimeout = 100 * time.Millisecond
	cfg.HTTP.ShutdownTimeout = 3 * time.Second
	cfg.TURN.Port = 0 // a free port, so that tests can run side by side
	if opts.Config != nil {
		opts.Config(&cfg)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	udp := opts.UDPConn
	if udp == nil {
		if udp, err = net.ListenPacket("udp4", "127.0.0.1:0"); err != nil {
			tb.Fatal(err)
		}
	}
	if opts.WrapUDP != nil {
		udp = opts.WrapUDP(udp)
	}
	log := opts.Log
	if log == nil {
		log = serverLogger(tb)
	}
	srv, err := server.New(cfg, log, server.Options{Version: "test", Web: web.FS, HTTPListener: ln, UDPConn: udp})
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	s := &Server{Server: srv, Config: cfg}
	s.Stop = sync.OnceFunc(func() {
		cancel()
		if err := <-done; err != nil {
			tb.Errorf("server run: %v", err)
		}
	})
	tb.Cleanup(s.Stop)
	return s
}

// WSURL is the signaling endpoint.
func (s *Server) WSURL() string { return "ws" + strings.TrimPrefix(s.URL(), "http") + "/ws" }

// Token mints a dev-key token for identity in roomName with every grant
// but admin.
func (s *Server) Token(tb testing.TB, roomName, identity string) string {
	tb.Helper()
	return MintToken(tb, auth.TokenSpec{Identity: identity, Name: identity, Room: roomName,
		CanPublish: true, CanSubscribe: true, TTL: time.Hour})
}

// MintToken mints a dev-key token for spec.
func MintToken(tb testing.TB, spec auth.TokenSpec) string {
	tb.Helper()
	tok, err := auth.Mint(auth.DevAPIKey, auth.DevAPISecret, spec, time.Now())
	if err != nil {
		tb.Fatal(err)
	}
	return tok
}
