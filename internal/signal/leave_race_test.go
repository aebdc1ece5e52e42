package signal_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// A client that sends leave and closes its socket at once, while the
// server is writing to it, leaves; it is not parked as a dropped
// connection. The server's write to the closed socket fails, and that
// used to cancel the reader before it read the leave already received.
func TestLeaveThenCloseWhileServerWrites(t *testing.T) {
	t.Parallel()
	hs := newHarness(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	talker, _ := hs.rawJoin(ctx, "talker", "busy")
	go func() { // reads and drops everything, so the server never waits on it
		for {
			if _, _, err := talker.Read(ctx); err != nil {
				return
			}
		}
	}()
	chat := []byte(fmt.Sprintf(`{"type":"chat","text":%q}`, strings.Repeat("x", 2000)))
	go func() {
		for ctx.Err() == nil {
			if talker.Write(ctx, websocket.MessageText, chat) != nil {
				return
			}
			time.Sleep(500 * time.Microsecond)
		}
	}()
	const rounds = 20
	for i := range rounds {
		conn, tcp := hs.rawJoin(ctx, fmt.Sprintf("leaver%d", i), "busy")
		_ = conn.Write(ctx, websocket.MessageText, []byte(`{"type":"leave"}`))
		_ = tcp.SetLinger(0)
		_ = tcp.Close() // at once, with a reset, as a client that does not wait for the close
	}
	waitUntil(t, "every leaver to be gone", func() bool {
		return len(hs.logLines("participant left", "identity=leaver"))+len(hs.logLines("connection lost")) >= rounds
	})
	if parked := hs.logLines("connection lost"); len(parked) > 0 {
		t.Errorf("%d of %d leavers were parked as dropped connections", len(parked), rounds)
	}
}

// rawJoin joins over a WebSocket whose TCP connection the test holds.
func (hs *harness) rawJoin(ctx context.Context, identity, roomName string) (*websocket.Conn, *net.TCPConn) {
	hs.t.Helper()
	var tcp *net.TCPConn
	dialer := &net.Dialer{}
	client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dialer.DialContext(ctx, network, addr)
		if err == nil {
			tcp = c.(*net.TCPConn)
		}
		return c, err
	}}}
	conn, _, err := websocket.Dial(ctx, hs.url(), &websocket.DialOptions{HTTPClient: client})
	if err != nil {
		hs.t.Fatal(err)
	}
	conn.SetReadLimit(1 << 20)
	hs.t.Cleanup(func() { _ = conn.CloseNow() })
	join := fmt.Sprintf(`{"type":"join","protocol":1,"token":%q}`, hs.token(identity, roomName))
	if err := conn.Write(ctx, websocket.MessageText, []byte(join)); err != nil {
		hs.t.Fatal(err)
	}
	for {
		_, data, err := conn.Read(ctx)
		if err != nil {
			hs.t.Fatalf("%s: waiting for joined: %v", identity, err)
		}
		if strings.Contains(string(data), `"type":"joined"`) {
			return conn, tcp
		}
	}
}
