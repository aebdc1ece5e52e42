package signal_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/quartet-rtc/quartet/internal/room"
	"github.com/quartet-rtc/quartet/internal/signal"
)

func TestServerEndsParticipant(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		reason string
		end    func(*room.Manager)
		// bobToo: bob is ended as well.
		bobToo bool
	}{
		{"removed", room.ReasonRemoved, func(m *room.Manager) { m.Remove("demo", "alice") }, false},
		{"room closed", room.ReasonRoomClosed, func(m *room.Manager) { m.CloseRoom("demo", room.ReasonRoomClosed) }, true},
		{"server shutdown", room.ReasonServerShutdown, func(m *room.Manager) { m.Close(room.ReasonServerShutdown) }, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			hs := newHarness(t)
			alice, aj := hs.join("alice", "demo")
			bob, bj := hs.join("bob", "demo")
			alice.expect("participant_joined")
			sid := aj.Participant.SID

			tt.end(hs.rooms)
			if m := alice.expect("leave"); m.Reason != tt.reason {
				t.Errorf("alice got %s, want leave %s", m, tt.reason)
			}
			alice.expectClosed(websocket.StatusNormalClosure)
			if s := hs.session(sid); !s.Closed() {
				t.Errorf("alice's media session not closed: %v", s.Methods())
			}
			if tt.bobToo {
				if m := bob.expect("leave"); m.Reason != tt.reason {
					t.Errorf("bob got %s, want leave %s", m, tt.reason)
				}
				bob.expectClosed(websocket.StatusNormalClosure)
				hs.waitServing(0)
			} else {
				if m := bob.expect("participant_left"); m.Participant.SID != sid {
					t.Errorf("bob got %s, want alice to leave", m)
				}
				bob.syncQuiet()
				hs.waitServing(1)
				if s := hs.session(bj.Participant.SID); s.Closed() {
					t.Errorf("bob's media session closed")
				}
			}
			if lines := hs.leftLines(sid); len(lines) != 1 || !strings.Contains(lines[0], "reason="+tt.reason) {
				t.Errorf("participant left log lines = %q, want one with reason %s", lines, tt.reason)
			}
			// An ended participant cannot be resumed.
			if tt.reason != room.ReasonServerShutdown {
				c := hs.dial()
				c.send(resumeMsg(hs.token("alice", "demo"), sid, aj.ResumeToken))
				c.expectError(signal.CodeResumeFailed)
			}
		})
	}
}

func TestRemovingAParkedParticipant(t *testing.T) {
	t.Parallel()
	hs := newHarness(t)
	alice, bob, aj := joinAliceAndBob(hs)
	sid := aj.Participant.SID
	dropAndPark(hs, alice, 1)

	if !hs.rooms.Remove("demo", "alice") {
		t.Fatal("alice is not in the room")
	}
	if m := bob.expect("participant_left"); m.Participant.SID != sid {
		t.Errorf("participant_left = %s", m)
	}
	if s := hs.session(sid); !s.Closed() {
		t.Errorf("media session not closed: %v", s.Methods())
	}
	c := hs.dial()
	c.send(resumeMsg(hs.token("alice", "demo"), sid, aj.ResumeToken))
	c.expectError(signal.CodeResumeFailed)
	if lines := hs.leftLines(sid); len(lines) != 1 || !strings.Contains(lines[0], "reason=removed") {
		t.Errorf("participant left log lines = %q", lines)
	}
}

func TestHandlerCloseRefusesNewConnections(t *testing.T) {
	t.Parallel()
	hs := newHarness(t)
	hs.h.Close(time.Second)
	_, resp, err := hs.tryDial(nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("dial after Close: %v, %v; want HTTP 503", err, resp)
	}
}

// TestShutdownFlushesLeave is the server's shutdown order: the rooms tell
// everyone to leave, then the front door lets the sessions flush.
func TestShutdownFlushesLeave(t *testing.T) {
	t.Parallel()
	hs := newHarness(t)
	alice, _ := hs.join("alice", "demo")
	bob, _ := hs.join("bob", "other")
	hs.rooms.Close(room.ReasonServerShutdown)
	hs.h.Close(wait)
	for _, c := range []*client{alice, bob} {
		if m := c.expect("leave"); m.Reason != room.ReasonServerShutdown {
			t.Errorf("got %s, want leave server_shutdown", m)
		}
		c.expectClosed(websocket.StatusNormalClosure)
	}
	for _, s := range hs.media.Sessions() {
		if !s.Closed() {
			t.Errorf("media session of %s not closed", s.SID)
		}
	}
}

// TestHandlerCloseEndsLingeringSessions: sessions that were not told to
// leave are ended after the grace period, and their participants leave.
func TestHandlerCloseEndsLingeringSessions(t *testing.T) {
	t.Parallel()
	hs := newHarness(t)
	alice, aj := hs.join("alice", "demo")
	bob, _ := hs.join("bob", "demo")
	idle := hs.dial() // not joined
	hs.h.Close(10 * time.Millisecond)
	// Close returned: every session is over, its participant gone.
	// The writer closes with 1001 going away, but the cancelled reader may
	// drop the connection first (coder/websocket closes a connection whose
	// Read is cancelled): a client sees one or the other.
	for _, c := range []*client{alice, bob, idle} {
		if got := c.closed(); got != websocket.StatusGoingAway && got != -1 {
			t.Errorf("closed with %d, want 1001 going away or no status", got)
		}
	}
	for _, s := range hs.media.Sessions() {
		if !s.Closed() {
			t.Errorf("media session of %s not closed", s.SID)
		}
	}
	if lines := hs.leftLines(aj.Participant.SID); len(lines) != 1 || !strings.Contains(lines[0], "reason=server_shutdown") {
		t.Errorf("participant left log lines = %q", lines)
	}
}

func TestMaxConnections(t *testing.T) {
	t.Parallel()
	hs := newHarness(t, setup{signal: func(c *signal.Config) { c.MaxConnections = 1 }})
	first := hs.dial()
	_, resp, err := hs.tryDial(nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("second dial: %v, %v; want HTTP 503", err, resp)
	}
	first.drop()
	hs.waitServing(0)
	hs.join("alice", "demo") // a place is free again
}

func TestOriginCheck(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		allowed []string
		origin  func(host string) string
		ok      bool
	}{
		{"no origin", nil, func(string) string { return "" }, true},
		{"same origin", nil, func(host string) string { return "http://" + host }, true},
		{"other origin", nil, func(string) string { return "https://evil.example" }, false},
		{"allowed origin", []string{"app.example.com"}, func(string) string { return "https://app.example.com" }, true},
		{"allowed pattern", []string{"*.example.com"}, func(string) string { return "https://a.example.com" }, true},
		{"not the allowed one", []string{"app.example.com"}, func(string) string { return "https://app.example.org" }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			hs := newHarness(t, setup{signal: func(c *signal.Config) { c.AllowedOrigins = tt.allowed }})
			header := http.Header{}
			if o := tt.origin(hs.srv.Listener.Addr().String()); o != "" {
				header.Set("Origin", o)
			}
			c, resp, err := hs.tryDial(header)
			if !tt.ok {
				if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
					t.Fatalf("dial: %v, %v; want HTTP 403", err, resp)
				}
				return
			}
			if err != nil {
				t.Fatalf("dial: %v", err)
			}
			c.syncQuiet()
		})
	}
}

func TestJoinTimeout(t *testing.T) {
	t.Parallel()
	hs := newHarness(t, setup{signal: func(c *signal.Config) { c.JoinTimeout = 20 * time.Millisecond }})
	c := hs.dial()
	if got := c.closed(); got != websocket.StatusPolicyViolation {
		t.Errorf("closed with %d, want 1008", got)
	}
}

func TestOversizedMessageClosesTheConnection(t *testing.T) {
	t.Parallel()
	hs := newHarness(t, setup{signal: func(c *signal.Config) { c.MaxMessageBytes = 1024 }})
	c, _ := hs.join("alice", "demo")
	c.send(map[string]any{"type": "chat", "text": strings.Repeat("a", 900)}) // fits
	c.expect("chat")
	c.send(map[string]any{"type": "chat", "text": strings.Repeat("a", 2000)})
	c.expectClosed(websocket.StatusMessageTooBig)
}

func TestRateLimit(t *testing.T) {
	t.Parallel()
	hs := newHarness(t, setup{signal: func(c *signal.Config) { c.RatePerSecond, c.RateBurst = 1e-9, 3 }})
	c := hs.dial()
	for range 3 {
		c.send(map[string]any{"type": "ping"})
		c.expect("pong")
	}
	c.send(map[string]any{"type": "ping"})
	c.expectError(signal.CodeRateLimited)
	// A flood ends the connection.
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	for range 1000 {
		if err := c.conn.Write(ctx, websocket.MessageText, []byte(`{"type":"ping"}`)); err != nil {
			break
		}
	}
	if got := c.closed(); got != websocket.StatusPolicyViolation {
		t.Errorf("closed with %d, want 1008", got)
	}
}

func TestMetrics(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	hs := newHarness(t, setup{deps: func(d *signal.Deps) { d.Metrics = reg }})
	alice, _ := hs.join("alice", "demo")
	alice.sendRaw(websocket.MessageText, "nonsense")
	alice.expectError(signal.CodeBadJSON)
	alice.send(map[string]any{"type": "join", "protocol": 1, "token": "x"})
	alice.expectError(signal.CodeAlreadyJoined)
	other := hs.dial()
	other.syncQuiet()

	for _, tt := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"quartet_signal_connections", nil, 2},
		{"quartet_signal_errors_total", map[string]string{"code": "bad_json"}, 1},
		{"quartet_signal_errors_total", map[string]string{"code": "already_joined"}, 1},
		{"quartet_signal_messages_total", nil, 4}, // join, nonsense, join, ping
	} {
		if got := metricValue(t, reg, tt.name, tt.labels); got != tt.want {
			t.Errorf("%s%v = %v, want %v", tt.name, tt.labels, got, tt.want)
		}
	}
	other.drop()
	alice.drop()
	hs.waitServing(0)
	if n := metricValue(t, reg, "quartet_signal_connections", nil); n != 0 {
		t.Errorf("quartet_signal_connections = %v after every connection ended", n)
	}
}

// metricValue is the value of the one series of name with these labels;
// -1 if there is none.
func metricValue(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if labels[lp.GetName()] != lp.GetValue() {
					continue series
				}
			}
			switch {
			case m.GetGauge() != nil:
				return m.GetGauge().GetValue()
			case m.GetCounter() != nil:
				return m.GetCounter().GetValue()
			}
		}
	}
	return -1
}
