package server_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/quartet-rtc/quartet/internal/auth"
	"github.com/quartet-rtc/quartet/internal/client"
	"github.com/quartet-rtc/quartet/internal/config"
	"github.com/quartet-rtc/quartet/internal/server"
	"github.com/quartet-rtc/quartet/web"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testServer is an in-process Quartet on random loopback ports.
type testServer struct {
	*server.Server
	cfg  config.Config
	stop func() // shuts the server down and waits
}

func testLogger() *slog.Logger {
	if os.Getenv("QUARTET_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// startServer runs a server until the test ends. wrap, if set, wraps the
// media UDP socket (to inject loss).
func startServer(t *testing.T, mutate func(*config.Config), wrap func(net.PacketConn) net.PacketConn) *testServer {
	t.Helper()
	cfg := config.Default()
	cfg.Room.EmptyTimeout = 100 * time.Millisecond
	cfg.HTTP.ShutdownTimeout = 3 * time.Second
	if mutate != nil {
		mutate(&cfg)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	udp, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if wrap != nil {
		udp = wrap(udp)
	}
	srv, err := server.New(cfg, testLogger(), server.Options{Version: "test", Web: web.FS, HTTPListener: ln, UDPConn: udp})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	ts := &testServer{Server: srv, cfg: cfg}
	ts.stop = sync.OnceFunc(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("server run: %v", err)
		}
	})
	t.Cleanup(ts.stop)
	return ts
}

func (s *testServer) wsURL() string { return "ws" + s.URL()[len("http"):] + "/ws" }

func (s *testServer) token(t *testing.T, roomName, identity string) string {
	t.Helper()
	tok, err := auth.Mint(auth.DevAPIKey, auth.DevAPISecret, auth.TokenSpec{Identity: identity, Name: identity,
		Room: roomName, CanPublish: true, CanSubscribe: true, TTL: time.Hour}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// counter counts RTP packets received per publishing participant and kind.
type counter struct {
	mu      sync.Mutex
	packets map[string]int // participantSID/kind
	seqs    map[string]map[uint16]bool
}

func newCounter() *counter {
	return &counter{packets: map[string]int{}, seqs: map[string]map[uint16]bool{}}
}

func (c *counter) get(participantSID, kind string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.packets[participantSID+"/"+kind]
}

// join connects a participant whose received packets are counted. If read
// is false, it never reads its tracks (a stalled subscriber).
func (s *testServer) join(t *testing.T, ctx context.Context, roomName, identity string, cnt *counter, read bool) *client.Client {
	t.Helper()
	opts := client.Options{URL: s.wsURL(), Token: s.token(t, roomName, identity), Log: testLogger()}
	opts.OnTrack = func(tr *webrtcTrack, info roomTrack) {
		if !read {
			return
		}
		go cnt.consume(tr, info)
	}
	c, err := client.Dial(ctx, opts)
	if err != nil {
		t.Fatalf("%s: join: %v", identity, err)
	}
	return c
}

// waitUntil polls cond until it holds or the deadline passes. Deadlines
// here are generous failure bounds, not performance assertions.
func waitUntil(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// startServerB is startServer for benchmarks, with default settings.
func startServerB(b *testing.B) *testServer {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	udp, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	cfg := config.Default()
	srv, err := server.New(cfg, testLogger(), server.Options{Version: "bench", Web: web.FS, HTTPListener: ln, UDPConn: udp})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	b.Cleanup(func() { cancel(); <-done })
	return &testServer{Server: srv, cfg: cfg}
}

func (s *testServer) tokenB(b *testing.B, roomName, identity string) string {
	tok, err := auth.Mint(auth.DevAPIKey, auth.DevAPISecret, auth.TokenSpec{Identity: identity, Name: identity,
		Room: roomName, CanPublish: true, CanSubscribe: true, TTL: time.Hour}, time.Now())
	if err != nil {
		b.Fatal(err)
	}
	return tok
}
