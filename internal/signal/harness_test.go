package signal_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"go.uber.org/goleak"

	"github.com/quartet-rtc/quartet/internal/auth"
	"github.com/quartet-rtc/quartet/internal/room"
	"github.com/quartet-rtc/quartet/internal/room/roomtest"
	"github.com/quartet-rtc/quartet/internal/signal"
)

// The signaling tests run the front door against a real room.Manager and
// the fake media server of roomtest, served by httptest on loopback, and
// speak the protocol with a plain WebSocket client: they assert what a
// client observes, and what the front door asked of the media session.

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// wait bounds every wait for something a test expects; it is a failure
// bound, not a timing assertion.
const wait = 10 * time.Second

const (
	testKey    = "testkey"
	testSecret = "test-secret-of-at-least-32-bytes-long"
)

// harness is one signaling front door with its rooms and fake media.
type harness struct {
	t     *testing.T
	media *roomtest.Media
	rooms *room.Manager
	h     *signal.Handler
	srv   *httptest.Server
	logs  *logBuffer
	// serving counts the requests in the handler: a session's request
	// returns after it is done with its participant (parked or gone).
	serving atomic.Int64
}

// setup changes the harness before it starts.
type setup struct {
	signal func(*signal.Config)
	room   func(*room.Config)
	deps   func(*signal.Deps)
}

func testConfig() signal.Config {
	return signal.Config{
		MaxMessageBytes: 64 << 10,
		RatePerSecond:   1000,
		RateBurst:       1000,
		JoinTimeout:     time.Minute,
		PingInterval:    time.Minute,
		MaxConnections:  100,
		WriteTimeout:    5 * time.Second,
		ResumeTimeout:   time.Minute,
	}
}

// newHarness starts a front door that is closed when the test ends.
func newHarness(t *testing.T, opts ...setup) *harness {
	t.Helper()
	cfg := testConfig()
	rcfg := room.Config{EmptyTimeout: time.Minute, MaxParticipants: 50}
	logs := &logBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	media := roomtest.NewMedia()
	for _, o := range opts {
		if o.signal != nil {
			o.signal(&cfg)
		}
		if o.room != nil {
			o.room(&rcfg)
		}
	}
	rooms := room.NewManager(rcfg, room.Deps{Log: log, Media: media})
	deps := signal.Deps{
		Log:           log,
		Verifier:      auth.NewVerifier(auth.Keys{testKey: testSecret}),
		Rooms:         rooms,
		ServerVersion: "test",
	}
	for _, o := range opts {
		if o.deps != nil {
			o.deps(&deps)
		}
	}
	h := signal.New(cfg, deps)
	hs := &harness{t: t, media: media, rooms: rooms, h: h, logs: logs}
	hs.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hs.serving.Add(1)
		defer hs.serving.Add(-1)
		h.ServeHTTP(w, r)
	}))
	srv := hs.srv
	// As the server shuts down: rooms, then signaling, then HTTP.
	t.Cleanup(func() {
		rooms.Close(room.ReasonServerShutdown)
		h.Close(time.Second)
		srv.Close()
		if t.Failed() {
			t.Logf("server log:\n%s", logs.String())
		}
	})
	return hs
}

func (hs *harness) url() string { return "ws" + strings.TrimPrefix(hs.srv.URL, "http") + "/ws" }

// token mints a token for identity in roomName with every permission but
// admin; change adjusts it first.
func (hs *harness) token(identity, roomName string, change ...func(*auth.TokenSpec)) string {
	hs.t.Helper()
	spec := auth.TokenSpec{Identity: identity, Name: strings.ToUpper(identity[:1]) + identity[1:], Room: roomName,
		CanPublish: true, CanSubscribe: true, TTL: time.Hour}
	for _, c := range change {
		c(&spec)
	}
	tok, err := auth.Mint(testKey, testSecret, spec, time.Now())
	if err != nil {
		hs.t.Fatal(err)
	}
	return tok
}

// dial opens a WebSocket to the front door, closed when the test ends.
func (hs *harness) dial() *client {
	hs.t.Helper()
	c, resp, err := hs.tryDial(nil)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		hs.t.Fatalf("dial: %v (HTTP %d)", err, status)
	}
	return c
}

func (hs *harness) tryDial(header http.Header) (*client, *http.Response, error) {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	conn, resp, err := websocket.Dial(ctx, hs.url(), &websocket.DialOptions{HTTPHeader: header})
	if err != nil {
		return nil, resp, err
	}
	c := &client{t: hs.t, conn: conn, in: make(chan msg, 1024), done: make(chan struct{})}
	go c.readLoop()
	hs.t.Cleanup(c.drop)
	return c, resp, nil
}

// join connects a participant and waits for its joined.
func (hs *harness) join(identity, roomName string) (*client, msg) {
	hs.t.Helper()
	c := hs.dial()
	c.send(map[string]any{"type": "join", "protocol": 1, "token": hs.token(identity, roomName)})
	return c, c.expect("joined")
}

// joinAliceAndBob joins alice then bob to room demo, and has alice see bob
// join; it returns alice's joined message too.
func joinAliceAndBob(hs *harness) (alice, bob *client, aliceJoined msg) {
	hs.t.Helper()
	alice, aliceJoined = hs.join("alice", "demo")
	bob, _ = hs.join("bob", "demo")
	alice.expect("participant_joined")
	return alice, bob, aliceJoined
}

// waitServing waits until n requests are in the handler, e.g. until a
// dropped connection's session has parked its participant.
func (hs *harness) waitServing(n int64) {
	hs.t.Helper()
	waitUntil(hs.t, fmt.Sprintf("%d sessions to be served", n), func() bool { return hs.serving.Load() == n })
}

// session is the fake media session of a joined participant.
func (hs *harness) session(participantSID string) *roomtest.Session {
	hs.t.Helper()
	s := hs.media.Session(participantSID)
	if s == nil {
		hs.t.Fatalf("no media session was opened for %s", participantSID)
	}
	return s
}

// logLines returns the lines of the server log that contain every one of
// the given strings.
func (hs *harness) logLines(contains ...string) []string {
	var out []string
	for line := range strings.SplitSeq(hs.logs.String(), "\n") {
		ok := line != ""
		for _, s := range contains {
			ok = ok && strings.Contains(line, s)
		}
		if ok {
			out = append(out, line)
		}
	}
	return out
}

// waitUntil polls cond until it holds, failing the test after wait.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// logBuffer collects the server log; slog handlers write to it from many
// goroutines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// msg is any server message; which fields are set depends on Type.
type msg struct {
	Type           string                     `json:"type"`
	ID             string                     `json:"id"`
	Code           string                     `json:"code"`
	Message        string                     `json:"message"`
	RequestType    string                     `json:"requestType"`
	Reason         string                     `json:"reason"`
	Protocol       int                        `json:"protocol"`
	ServerVersion  string                     `json:"serverVersion"`
	Room           struct{ SID, Name string } `json:"room"`
	Participant    room.ParticipantInfo       `json:"participant"`
	Participants   []room.ParticipantInfo     `json:"participants"`
	ICEServers     []signal.ICEServer         `json:"iceServers"`
	ResumeToken    string                     `json:"resumeToken"`
	Resumed        bool                       `json:"resumed"`
	Target         string                     `json:"target"`
	SDP            string                     `json:"sdp"`
	Tracks         json.RawMessage            `json:"tracks"`
	Candidate      *room.Candidate            `json:"candidate"`
	Track          room.TrackInfo             `json:"track"`
	TrackSID       string                     `json:"trackSid"`
	ParticipantSID string                     `json:"participantSid"`
	Muted          bool                       `json:"muted"`
	From           room.ChatSender            `json:"from"`
	Text           string                     `json:"text"`
	Time           time.Time                  `json:"time"`

	raw string
}

func (m msg) String() string { return m.raw }

// client is a test's end of one signaling WebSocket. A goroutine reads
// every message into in, so that the server's writes and close handshakes
// never wait for the test.
type client struct {
	t    *testing.T
	conn *websocket.Conn
	in   chan msg      // closed when the connection ends
	done chan struct{} // closed after in
	err  error         // why reading stopped; set before done closes

	pings int // sync pings sent, by the test's goroutine
}

func (c *client) readLoop() {
	defer close(c.done)
	defer close(c.in)
	for {
		_, data, err := c.conn.Read(context.Background())
		if err != nil {
			c.err = err
			return
		}
		m := msg{raw: string(data)}
		if err := json.Unmarshal(data, &m); err != nil {
			m = msg{Type: "undecodable", raw: string(data)}
		}
		c.in <- m
	}
}

// drop closes the TCP connection without a close handshake or a leave, as
// a lost network would, and waits for the reader to stop.
func (c *client) drop() {
	c.conn.CloseNow()
	<-c.done
}

func (c *client) send(v any) {
	c.t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		c.t.Fatal(err)
	}
	c.sendRaw(websocket.MessageText, string(data))
}

func (c *client) sendRaw(typ websocket.MessageType, data string) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := c.conn.Write(ctx, typ, []byte(data)); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// next returns the next message, failing if none comes or the connection
// ends.
func (c *client) next() msg {
	c.t.Helper()
	select {
	case m, ok := <-c.in:
		if !ok {
			c.t.Fatalf("connection ended while waiting for a message: %v", c.err)
		}
		return m
	case <-time.After(wait):
		c.t.Fatal("timed out waiting for a message")
	}
	return msg{}
}

// expect returns the next message, failing unless it has type typ.
func (c *client) expect(typ string) msg {
	c.t.Helper()
	m := c.next()
	if m.Type != typ {
		c.t.Fatalf("got %s, want a %s message", m, typ)
	}
	return m
}

// expectError returns the next message, failing unless it is an error with
// this code.
func (c *client) expectError(code string) msg {
	c.t.Helper()
	m := c.expect("error")
	if m.Code != code {
		c.t.Fatalf("got %s, want error code %s", m, code)
	}
	return m
}

// waitFor skips messages until one satisfies match.
func (c *client) waitFor(what string, match func(msg) bool) msg {
	c.t.Helper()
	timeout := time.After(wait)
	for {
		select {
		case m, ok := <-c.in:
			if !ok {
				c.t.Fatalf("connection ended while waiting for %s: %v", what, c.err)
			}
			if match(m) {
				return m
			}
		case <-timeout:
			c.t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// waitType skips messages until one of type typ.
func (c *client) waitType(typ string) msg {
	c.t.Helper()
	return c.waitFor(typ, func(m msg) bool { return m.Type == typ })
}

// sync makes a ping round trip and returns what arrived before the pong.
// The server reads a connection's messages one at a time and queues its
// replies in order, so when the pong arrives everything the earlier
// messages caused on this connection has been done and sent.
func (c *client) sync() []msg {
	c.t.Helper()
	c.pings++
	id := fmt.Sprintf("sync-%d", c.pings)
	c.send(map[string]any{"type": "ping", "id": id})
	var before []msg
	for {
		m := c.next()
		if m.Type == "pong" && m.ID == id {
			return before
		}
		before = append(before, m)
	}
}

// syncQuiet is sync for a connection that expects nothing meanwhile.
func (c *client) syncQuiet() {
	c.t.Helper()
	if got := c.sync(); len(got) > 0 {
		c.t.Fatalf("unexpected messages: %v", got)
	}
}

// closed waits for the connection to end, skipping messages, and returns
// the close status the server sent (-1 if there was none).
func (c *client) closed() websocket.StatusCode {
	c.t.Helper()
	timeout := time.After(wait)
	for {
		select {
		case _, ok := <-c.in:
			if !ok {
				return websocket.CloseStatus(c.err)
			}
		case <-timeout:
			c.t.Fatal("timed out waiting for the connection to close")
		}
	}
}

// expectClosed waits for the end of the connection, with nothing but
// the given message types before it, and checks the close status.
func (c *client) expectClosed(status websocket.StatusCode) {
	c.t.Helper()
	timeout := time.After(wait)
	for {
		select {
		case m, ok := <-c.in:
			if !ok {
				if got := websocket.CloseStatus(c.err); got != status {
					c.t.Fatalf("connection closed with %d (%v), want %d", got, c.err, status)
				}
				return
			}
			c.t.Fatalf("got %s, want the connection to close", m)
		case <-timeout:
			c.t.Fatal("timed out waiting for the connection to close")
		}
	}
}
