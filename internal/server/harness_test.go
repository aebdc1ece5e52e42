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
func startServer(tb testing.TB, mutate func(*config.Config), wrap func(net.PacketConn) net.PacketConn) *testServer {
	tb.Helper()
	return &testServer{testserver.Start(tb, testserver.Options{Config: mutate, WrapUDP: wrap})}
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
	opts := client.Options{URL: s.WSURL(), Token: s.Token(t, roomName, identity), Log: testserver.Logger()}
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
