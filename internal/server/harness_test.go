package server_test

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/quartet-rtc/quartet/internal/client"
	"github.com/quartet-rtc/quartet/internal/config"
	"github.com/quartet-rtc/quartet/internal/testserver"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testServer is an in-process Quartet on random loopback ports.
type testServer struct{ *testserver.Server }

// startServer runs a server until the test ends. wrap, if set, wraps the
// media UDP socket (to inject loss).
func startServer(t *testing.T, mutate func(*config.Config), wrap func(net.PacketConn) net.PacketConn) *testServer {
	t.Helper()
	return &testServer{testserver.Start(t, testserver.Options{Config: mutate, WrapUDP: wrap})}
}

func (s *testServer) wsURL() string { return s.WSURL() }

func (s *testServer) token(t *testing.T, roomName, identity string) string {
	t.Helper()
	return s.Token(t, roomName, identity)
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

// track counts the packets of one track, by its sid.
func (c *counter) track(sid string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.packets[sid]
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
	opts := client.Options{URL: s.wsURL(), Token: s.token(t, roomName, identity), Log: testserver.Logger()}
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
	return &testServer{testserver.Start(b, testserver.Options{})}
}

func (s *testServer) tokenB(b *testing.B, roomName, identity string) string {
	b.Helper()
	return s.Token(b, roomName, identity)
}
