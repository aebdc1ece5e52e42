package server_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/quartet-rtc/quartet/internal/config"
)

// openFDs counts the process's open file descriptors: server and clients
// alike, as everything runs in this process.
func openFDs(t *testing.T) int {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("cannot count file descriptors: %v", err)
	}
	return len(entries)
}

// stalledConn is a participant's bare WebSocket that stopped reading.
type stalledConn struct {
	ws  *websocket.Conn
	tcp *net.TCPConn
}

// dialStalled opens a bare WebSocket that joins and then never reads
// again. Its socket is set up so that what the server sends backs up at
// once: a tiny receive buffer, and a small MSS, which keeps the server's
// send buffer (sized by the kernel from the MSS) small too. The server's
// writer then blocks with messages still queued.
func (s *testServer) dialStalled(t *testing.T, ctx context.Context, roomName, identity string) *stalledConn {
	t.Helper()
	sc := &stalledConn{}
	dialer := &net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = errors.Join(syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 2048),
				syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_MAXSEG, 536))
		})
		if err != nil {
			return err
		}
		return serr
	}}
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dialer.DialContext(ctx, network, addr)
		if err == nil {
			sc.tcp = c.(*net.TCPConn)
		}
		return c, err
	}
	hc := &http.Client{Transport: &http.Transport{DialContext: dial}}
	conn, _, err := websocket.Dial(ctx, s.WSURL(), &websocket.DialOptions{HTTPClient: hc})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.CloseNow() })
	sc.ws = conn
	r := &rawConn{t: t, conn: conn}
	r.write(ctx, websocket.MessageText, `{"type":"join","protocol":1,"token":"`+s.Token(t, roomName, identity)+`"}`)
	r.expect(ctx, "joined", "")
	return sc
}

// drop loses the connections the way vanishing clients do. Half first
// end their stream, so that the server's reader is done while its writer
// is still blocked; closing with unread data then resets every connection,
// which fails the blocked writes (and, for the other half, the reads).
func drop(conns []*stalledConn) {
	for i, c := range conns {
		if i%2 == 0 {
			_ = c.tcp.CloseWrite()
		}
	}
	time.Sleep(200 * time.Millisecond) // for the server's readers to see the end; only the order matters
	for _, c := range conns {
		c.ws.CloseNow()
	}
}

// drain reads and discards what the server sends until the connection
// ends; the returned channel gets the read error.
func (r *rawConn) drain(ctx context.Context) <-chan error {
	done := make(chan error, 1)
	go func() {
		for {
			if _, _, err := r.conn.Read(ctx); err != nil {
				done <- err
				return
			}
		}
	}()
	return done
}

// churnRound fills a room, floods it with chat so that some participants'
// connections are backed up, then has some leave politely and the others
// drop their TCP connection, and waits until the room is gone (the dropped
// ones are parked until the resume timeout).
func churnRound(t *testing.T, ctx context.Context, srv *testServer, round int) {
	roomName := fmt.Sprintf("churn-%d", round)
	const droppers, leavers, chats = 6, 3, 100
	var stalled []*stalledConn
	for i := range droppers {
		stalled = append(stalled, srv.dialStalled(t, ctx, roomName, fmt.Sprintf("drop-%d", i)))
	}
	var polite []*rawConn
	var ended []<-chan error
	for i := range leavers {
		r, _, _ := srv.rawJoin(t, ctx, roomName, fmt.Sprintf("leave-%d", i))
		polite, ended = append(polite, r), append(ended, r.drain(ctx))
	}
	chatter, _, _ := srv.rawJoin(t, ctx, roomName, "chatter")
	text := strings.Repeat("x", 4000)
	for range chats {
		chatter.write(ctx, websocket.MessageText, `{"type":"chat","text":"`+text+`"}`)
	}
	// The chatter's own copy of the last chat means every member's copy is
	// queued.
	for seen := 0; seen < chats; {
		if m := chatter.expectAny(ctx); m["type"] == "chat" {
			seen++
		}
	}
	var wg sync.WaitGroup
	wg.Go(func() { drop(stalled) })
	for _, r := range append(polite, chatter) {
		wg.Go(func() { _ = r.conn.Write(ctx, websocket.MessageText, []byte(`{"type":"leave"}`)) })
	}
	wg.Wait()
	for _, e := range ended {
		if err := <-e; websocket.CloseStatus(err) != websocket.StatusNormalClosure {
			t.Fatalf("a polite leave ended with %v", err)
		}
	}
	chatter.conn.CloseNow()
	waitUntil(t, 10*time.Second, roomName+" to close", func() bool { return srv.Rooms().Get(roomName) == nil })
}

// TestChurnReleasesSockets runs rounds of participants joining, some
// leaving politely and some dropping their connection mid-stream, and
// checks that the process's open descriptors return to where they were once
// the resume timeout has passed. Goroutines return either way, so goleak
// does not see a socket that stays open. Not parallel: it counts the whole
// process's descriptors.
func TestChurnReleasesSockets(t *testing.T) {
	srv := startServer(t, func(c *config.Config) {
		c.Signal.ResumeTimeout = 300 * time.Millisecond
		c.Signal.RateBurst = 500 // the chatter sends its chat at once
	}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	churnRound(t, ctx, srv, 0) // warm up: whatever is opened once stays open
	settle := func() int {
		runtime.GC() // a socket only a finalizer would close counts as leaked
		http.DefaultClient.CloseIdleConnections()
		return openFDs(t)
	}
	baseline := settle()
	const rounds = 4
	for round := 1; round <= rounds; round++ {
		churnRound(t, ctx, srv, round)
	}
	deadline := time.Now().Add(10 * time.Second)
	fds := settle()
	for fds > baseline && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
		fds = settle()
	}
	t.Logf("open descriptors: %d before, %d after %d rounds", baseline, fds, rounds)
	if fds > baseline {
		t.Fatalf("%d rounds of churn left %d open descriptors, %d before", rounds, fds, baseline)
	}
}
