package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
	"github.com/quartet-rtc/quartet/internal/config"
	"github.com/quartet-rtc/quartet/internal/room"

	"github.com/coder/websocket"

	"github.com/quartet-rtc/quartet/internal/auth"
	"github.com/quartet-rtc/quartet/internal/client"
)

// rawConn is a bare WebSocket to the signaling endpoint, for sending what
// no well-behaved client would.
type rawConn struct {
	t    *testing.T
	conn *websocket.Conn
}

func (s *testServer) dialRaw(t *testing.T, ctx context.Context) *rawConn {
	t.Helper()
	conn, _, err := websocket.Dial(ctx, s.WSURL(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.CloseNow() })
	return &rawConn{t: t, conn: conn}
}

func (r *rawConn) write(ctx context.Context, typ websocket.MessageType, data string) {
	r.t.Helper()
	if err := r.conn.Write(ctx, typ, []byte(data)); err != nil {
		r.t.Fatalf("write: %v", err)
	}
}

// expect reads the next message and checks its type and error code.
func (r *rawConn) expect(ctx context.Context, typ, code string) map[string]any {
	r.t.Helper()
	_, data, err := r.conn.Read(ctx)
	if err != nil {
		r.t.Fatalf("want %s %s, read failed: %v", typ, code, err)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		r.t.Fatalf("server sent invalid JSON %q: %v", data, err)
	}
	if m["type"] != typ || (code != "" && m["code"] != code) {
		r.t.Fatalf("want %s %s, got %s", typ, code, data)
	}
	if typ == "error" && m["message"] == "" {
		r.t.Fatalf("error without a message: %s", data)
	}
	return m
}

// expectClosed checks that the server closes the connection with status.
func (r *rawConn) expectClosed(ctx context.Context, status websocket.StatusCode) {
	r.t.Helper()
	for {
		_, _, err := r.conn.Read(ctx)
		if err == nil {
			continue
		}
		if got := websocket.CloseStatus(err); got != status {
			r.t.Fatalf("want close status %d, got %v", status, err)
		}
		return
	}
}

func TestSignalingRejectsBadInputAndKeepsServing(t *testing.T) {
	t.Parallel()
	srv := startServer(t, nil, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	bystander := srv.join(t, ctx, "bad", "bystander", newCounter(), true)
	defer bystander.Close()

	r := srv.dialRaw(t, ctx)
	r.write(ctx, websocket.MessageText, `{"type":"ping","id":"1"}`)
	r.expect(ctx, "pong", "")
	r.write(ctx, websocket.MessageText, `not json`)
	r.expect(ctx, "error", "bad_json")
	r.write(ctx, websocket.MessageText, `{"type":`)
	r.expect(ctx, "error", "bad_json")
	r.write(ctx, websocket.MessageText, `[1,2]`)
	r.expect(ctx, "error", "bad_json")
	r.write(ctx, websocket.MessageText, `{"type":"teleport"}`)
	r.expect(ctx, "error", "unknown_type")
	r.write(ctx, websocket.MessageText, `{"type":"chat","text":"hi"}`)
	r.expect(ctx, "error", "not_joined")
	r.write(ctx, websocket.MessageBinary, `{"type":"ping"}`)
	r.expect(ctx, "error", "bad_request")
	r.write(ctx, websocket.MessageText, `{"type":"join","protocol":1,"token":"`+srv.Token(t, "bad", "intruder")+`"}`)
	r.expect(ctx, "joined", "")
	r.write(ctx, websocket.MessageText, `{"type":"offer","target":"publisher","sdp":"v=0 garbage"}`)
	r.expect(ctx, "error", "bad_sdp")
	r.write(ctx, websocket.MessageText, `{"type":"answer","target":"subscriber","sdp":"v=0"}`)
	r.expect(ctx, "error", "bad_request") // no offer is waiting
	r.write(ctx, websocket.MessageText, `{"type":"offer","target":"subscriber","sdp":"x"}`)
	r.expect(ctx, "error", "bad_request")
	r.write(ctx, websocket.MessageText, `{"type":"mute","trackSid":"TR_nope","muted":true}`)
	r.expect(ctx, "error", "bad_request")
	r.write(ctx, websocket.MessageText, `{"type":"chat","text":"`+strings.Repeat("a", 5000)+`"}`)
	r.expect(ctx, "error", "bad_request")
	r.write(ctx, websocket.MessageText, `{"type":"join","protocol":1,"token":"x"}`)
	r.expect(ctx, "error", "already_joined")
	r.write(ctx, websocket.MessageText, `{"type":"ping","id":"2"}`)
	r.expect(ctx, "pong", "")

	// An oversized frame closes only that connection.
	r.write(ctx, websocket.MessageText, `{"type":"chat","text":"`+strings.Repeat("a", 70_000)+`"}`)
	r.expectClosed(ctx, websocket.StatusMessageTooBig)

	// The bystander saw the intruder come and go, and nothing else.
	if _, err := bystander.WaitFor(ctx, func(m client.Message) bool { return m.Type == "participant_left" }); err != nil {
		t.Fatal(err)
	}
	for _, m := range bystander.Messages() {
		if m.Type == "error" {
			t.Fatalf("bystander got an error: %s", m.Raw)
		}
	}
	if err := bystander.Send(map[string]any{"type": "ping", "id": "b"}); err != nil {
		t.Fatal(err)
	}
	if _, err := bystander.WaitFor(ctx, func(m client.Message) bool { return m.Type == "pong" }); err != nil {
		t.Fatal(err)
	}
}

func TestSignalingRefusesBadTokens(t *testing.T) {
	t.Parallel()
	srv := startServer(t, nil, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	mint := func(key, secret string, spec auth.TokenSpec, now time.Time) string {
		tok, err := auth.Mint(key, secret, spec, now)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	spec := auth.TokenSpec{Identity: "mallory", Room: "r", CanPublish: true, CanSubscribe: true, TTL: time.Minute}
	noRoom := spec
	noRoom.Room = ""
	tests := []struct {
		name, join string
		code       string
	}{
		{"garbage token", `{"type":"join","protocol":1,"token":"abc.def.ghi"}`, "unauthorized"},
		{"no token", `{"type":"join","protocol":1}`, "unauthorized"},
		{"wrong secret", `{"type":"join","protocol":1,"token":"` +
			mint(auth.DevAPIKey, "another-secret-another-secret-123", spec, time.Now()) + `"}`, "unauthorized"},
		{"expired", `{"type":"join","protocol":1,"token":"` +
			mint(auth.DevAPIKey, auth.DevAPISecret, spec, time.Now().Add(-time.Hour)) + `"}`, "unauthorized"},
		{"no room grant", `{"type":"join","protocol":1,"token":"` +
			mint(auth.DevAPIKey, auth.DevAPISecret, noRoom, time.Now()) + `"}`, "unauthorized"},
		{"future protocol", `{"type":"join","protocol":2,"token":"` +
			mint(auth.DevAPIKey, auth.DevAPISecret, spec, time.Now()) + `"}`, "unsupported_protocol"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := srv.dialRaw(t, ctx)
			r.write(ctx, websocket.MessageText, tt.join)
			m := r.expect(ctx, "error", tt.code)
			if strings.Contains(m["message"].(string), "eyJ") {
				t.Fatalf("error echoes the token: %v", m["message"])
			}
			r.expectClosed(ctx, websocket.StatusNormalClosure)
		})
	}
}

func TestSignalingJoinTimeoutAndRateLimit(t *testing.T) {
	t.Parallel()
	srv := startServer(t, func(c *config.Config) {
		c.Signal.JoinTimeout = 300 * time.Millisecond
		c.Signal.RatePerSecond = 5
		c.Signal.RateBurst = 5
	}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	idle := srv.dialRaw(t, ctx)
	idle.expectClosed(ctx, websocket.StatusPolicyViolation)

	flood := srv.dialRaw(t, ctx)
	limited := 0
	for range 20 {
		flood.write(ctx, websocket.MessageText, `{"type":"ping"}`)
	}
	for range 20 {
		if m := flood.expectAny(ctx); m["code"] == "rate_limited" {
			limited++
		}
	}
	if limited < 10 {
		t.Fatalf("only %d of 20 flooding messages were rate limited", limited)
	}
}

func (r *rawConn) expectAny(ctx context.Context) map[string]any {
	r.t.Helper()
	_, data, err := r.conn.Read(ctx)
	if err != nil {
		r.t.Fatalf("read: %v", err)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		r.t.Fatalf("server sent invalid JSON %q", data)
	}
	return m
}

func TestSignalingChecksTheBrowserOrigin(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	dial := func(srv *testServer, origin string) error {
		conn, _, err := websocket.Dial(ctx, srv.WSURL(), &websocket.DialOptions{HTTPHeader: http.Header{"Origin": {origin}}})
		if err == nil {
			conn.CloseNow()
		}
		return err
	}
	strict := startServer(t, nil, nil)
	if err := dial(strict, "https://evil.example"); err == nil {
		t.Fatal("a foreign origin was accepted by default")
	}
	if err := dial(strict, strict.URL()); err != nil {
		t.Fatalf("the server's own origin was refused: %v", err)
	}
	open := startServer(t, func(c *config.Config) { c.Signal.AllowedOrigins = []string{"*.example.com"} }, nil)
	if err := dial(open, "https://app.example.com"); err != nil {
		t.Fatalf("an allowed origin was refused: %v", err)
	}
	if err := dial(open, "https://evil.example"); err == nil {
		t.Fatal("an origin outside the allowed patterns was accepted")
	}
}

// TestJoinedComesFirst joins participants while others publish and leave:
// every client's first message must be joined (client.Dial refuses
// anything else), never a room event that raced ahead of it.
func TestJoinedComesFirst(t *testing.T) {
	t.Parallel()
	srv := startServer(t, nil, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for round := range 5 {
		var wg sync.WaitGroup
		errs := make(chan error, 12)
		for i := range 12 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				id := fmt.Sprintf("u%d-%d", round, i)
				c, err := client.Dial(ctx, client.Options{URL: srv.WSURL(), Token: srv.Token(t, "first", id)})
				if err != nil {
					errs <- fmt.Errorf("%s: %w", id, err)
					return
				}
				defer c.Close()
				v, err := client.NewSynthTrack(true, "v-"+id, id)
				if err == nil {
					err = c.Publish(ctx, map[webrtc.TrackLocal]string{v: room.SourceCamera})
				}
				if err != nil {
					errs <- fmt.Errorf("%s: publish: %w", id, err)
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	}
}

// A client that stops answering WebSocket pings is disconnected; one that
// answers them stays.
func TestSignalingDropsClientsThatStopAnsweringPings(t *testing.T) {
	t.Parallel()
	srv := startServer(t, func(c *config.Config) { c.Signal.PingInterval = 200 * time.Millisecond }, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	join := func(identity string) *rawConn {
		r := srv.dialRaw(t, ctx)
		r.write(ctx, websocket.MessageText, fmt.Sprintf(`{"type":"join","protocol":1,"token":%q}`, srv.Token(t, "pings", identity)))
		r.expect(ctx, "joined", "")
		return r
	}
	deaf, alive := join("deaf"), join("alive")
	readCtx, stopReading := context.WithCancel(ctx)
	defer stopReading()
	go func() { // reading is what answers pings
		for {
			if _, _, err := alive.conn.Read(readCtx); err != nil {
				return
			}
		}
	}()
	time.Sleep(1500 * time.Millisecond) // deaf reads nothing: its pongs never go out
	if err := alive.conn.Ping(ctx); err != nil {
		t.Fatalf("the client that answers pings was dropped: %v", err)
	}
	for {
		_, _, err := deaf.conn.Read(ctx)
		if err == nil {
			continue // what was queued before the server gave up
		}
		if ctx.Err() != nil {
			t.Fatal("the deaf client is still connected")
		}
		break
	}
}
