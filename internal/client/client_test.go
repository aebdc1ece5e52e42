package client_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/coder/websocket"
	"go.uber.org/goleak"

	"github.com/quartet-rtc/quartet/internal/client"
	"github.com/quartet-rtc/quartet/internal/testserver"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func dial(t *testing.T, srv *testserver.Server, identity string, opts client.Options) *client.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	opts.URL, opts.Token, opts.Log = srv.WSURL(), srv.Token(t, "close", identity), testserver.Logger()
	c, err := client.Dial(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func participants(srv *testserver.Server) int {
	n := 0
	for _, r := range srv.Rooms().List() {
		n += r.Participants
	}
	return n
}

// When Close returns, the server has taken the leave: the participant is
// gone from the room, not parked waiting for a resume.
func TestCloseLeavesBeforeReturning(t *testing.T) {
	srv := testserver.Start(t, testserver.Options{})
	stay := dial(t, srv, "stay", client.Options{SignalingOnly: true})
	defer stay.Close()
	for i := range 10 {
		c := dial(t, srv, fmt.Sprint("leave-", i), client.Options{})
		c.Close()
		if n := participants(srv); n != 1 {
			t.Fatalf("round %d: %d participants in the room after Close, want 1", i, n)
		}
	}
}

// A server that ends the session is reported through OnDisconnect; a
// client's own Close is not.
func TestOnDisconnect(t *testing.T) {
	srv := testserver.Start(t, testserver.Options{})
	ended := make(chan error, 2)
	opts := client.Options{SignalingOnly: true, OnDisconnect: func(err error) { ended <- err }}
	closed := dial(t, srv, "closes", opts)
	closed.Close()
	kept := dial(t, srv, "kept", opts)
	defer kept.Close()
	srv.Stop()
	select {
	case err := <-ended:
		if status := websocket.CloseStatus(err); status != websocket.StatusNormalClosure {
			t.Errorf("OnDisconnect(%v): status %v, want %v", err, status, websocket.StatusNormalClosure)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("OnDisconnect was not called when the server stopped")
	}
	kept.Close()
	select {
	case err := <-ended:
		t.Errorf("OnDisconnect called twice, or for Close: %v", err)
	default:
	}
	isLeave := func(m client.Message) bool { return m.Type == "leave" }
	if !slices.ContainsFunc(kept.Messages(), isLeave) {
		t.Errorf("the server's leave is not among %v", kept.Messages())
	}
}
