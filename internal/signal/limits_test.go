package signal_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/quartet-rtc/quartet/internal/signal"
)

// The limits of what one client can make the front door do: how long it
// may flood, what its abuse costs in log lines, and that it is counted.

// defaultRates are the shipped rate limits (docs/configuration.md).
func defaultRates(c *signal.Config) { c.RatePerSecond, c.RateBurst = 50, 200 }

// maxFloodLines bounds what a flood may add to the log at the default
// level (info).
const maxFloodLines = 50

// infoLines counts the log lines at info level or above.
func (hs *harness) infoLines() int {
	n := 0
	for _, line := range hs.logLines() {
		if !strings.Contains(line, "level=DEBUG") {
			n++
		}
	}
	return n
}

// A client that keeps sending faster than the limit is disconnected, even
// though the limiter lets one of its messages through every 20 ms; a
// client over the limit only for a moment, and one within it, stay.
func TestSteadyFlooderIsDisconnected(t *testing.T) {
	t.Parallel()
	hs := newHarness(t, setup{signal: defaultRates})
	// 20 messages over the burst at once, then 10 a second.
	polite, _ := hs.join("polite", "demo")
	for range 220 {
		polite.send(map[string]any{"type": "ping"})
	}
	limited := 0
	for range 220 {
		if m := polite.next(); m.Code == signal.CodeRateLimited {
			limited++
		}
	}
	if limited < 10 || limited > 21 { // join took a token; the bucket refills a little meanwhile
		t.Fatalf("%d of 220 messages at once were rate limited, want about 20", limited)
	}

	flood := hs.dial()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	tick := time.NewTicker(10 * time.Millisecond) // 10 each: 1,000 a second
	defer tick.Stop()
	paced := time.NewTicker(100 * time.Millisecond)
	defer paced.Stop()
	giveUp := time.After(10 * time.Second)
	start, sent := time.Now(), 0
	for ended := false; !ended; {
		select {
		case <-tick.C:
			for range 10 {
				if flood.conn.Write(ctx, websocket.MessageText, []byte(`{"type":"ping"}`)) != nil {
					break
				}
				sent++
			}
		case <-paced.C:
			polite.send(map[string]any{"type": "ping"})
		case <-flood.done:
			ended = true
		case <-giveUp:
			t.Fatal("a client sending 1,000 messages a second is still connected after 10 s")
		}
		for len(flood.in) > 0 { // the replies; the reader must not block
			<-flood.in
		}
	}
	if got := websocket.CloseStatus(flood.err); got != websocket.StatusPolicyViolation {
		t.Fatalf("the flooder's connection ended with %v, want 1008", flood.err)
	}
	t.Logf("flooder disconnected after %v and %d messages", time.Since(start).Round(time.Millisecond), sent)
	polite.send(map[string]any{"type": "ping", "id": "still-here"})
	polite.waitFor("the polite client's pong", func(m msg) bool { return m.Type == "pong" && m.ID == "still-here" })
}

// An oversized frame closes the connection with 1009, is counted as
// too_large and logged once.
func TestOversizedMessageIsCounted(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	hs := newHarness(t, setup{
		signal: func(c *signal.Config) { c.MaxMessageBytes = 1024 },
		deps:   func(d *signal.Deps) { d.Metrics = reg },
	})
	c, _ := hs.join("alice", "demo")
	c.send(map[string]any{"type": "chat", "text": strings.Repeat("a", 2000)})
	c.expectClosed(websocket.StatusMessageTooBig)
	hs.waitServing(0)
	if got := metricValue(t, reg, "quartet_signal_errors_total", map[string]string{"code": "too_large"}); got != 1 {
		t.Errorf(`quartet_signal_errors_total{code="too_large"} = %v, want 1`, got)
	}
	if got := hs.logLines("client sent an oversized message"); len(got) != 1 {
		t.Errorf("oversized message logged %d times, want once: %q", len(got), got)
	}
}

// Errors a client causes are all counted but logged sampled: 2,000 of them
// used to write 2,000 lines.
func TestErrorFloodLogIsBounded(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	hs := newHarness(t, setup{
		signal: func(c *signal.Config) { c.RatePerSecond, c.RateBurst = 1e6, 1e6 }, // every message is answered
		deps:   func(d *signal.Deps) { d.Metrics = reg },
	})
	c := hs.dial()
	c.syncQuiet()
	before := hs.infoLines()
	const n = 2000
	for sent := 0; sent < n; sent += 100 { // in batches: a client that never reads is dropped
		for range 100 {
			c.sendRaw(websocket.MessageText, `{"type":"teleport"}`)
		}
		for range 100 {
			c.expectError(signal.CodeUnknownType)
		}
	}
	lines := hs.infoLines() - before
	t.Logf("%d errors wrote %d log lines", n, lines)
	if lines >= maxFloodLines {
		t.Errorf("%d errors wrote %d log lines, want fewer than %d", n, lines, maxFloodLines)
	}
	if got := metricValue(t, reg, "quartet_signal_errors_total", map[string]string{"code": "unknown_type"}); got != n {
		t.Errorf(`quartet_signal_errors_total{code="unknown_type"} = %v, want %d`, got, n)
	}
}

// 2,000 rate-limited messages on one connection wrote 1,675 lines; now the
// flood costs a few lines, and the connection.
func TestRateLimitedFloodLogIsBounded(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	// A small burst, so that the replies (pongs, then an error for each
	// limited message) fit in the outgoing queue however slow the writer.
	hs := newHarness(t, setup{
		signal: func(c *signal.Config) { c.RatePerSecond, c.RateBurst = 50, 20 },
		deps:   func(d *signal.Deps) { d.Metrics = reg },
	})
	c := hs.dial()
	c.syncQuiet()
	before := hs.infoLines()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	for range 2000 {
		if c.conn.Write(ctx, websocket.MessageText, []byte(`{"type":"ping"}`)) != nil {
			break
		}
	}
	if got := c.closed(); got != websocket.StatusPolicyViolation {
		t.Fatalf("the flooder's connection ended with %d, want 1008", got)
	}
	hs.waitServing(0)
	lines := hs.infoLines() - before
	limited := metricValue(t, reg, "quartet_signal_errors_total", map[string]string{"code": "rate_limited"})
	t.Logf("a flood of 2,000 messages: %v rate limited, %d log lines", limited, lines)
	if lines >= maxFloodLines {
		t.Errorf("the flood wrote %d log lines, want fewer than %d", lines, maxFloodLines)
	}
	if limited <= 100 {
		t.Errorf(`quartet_signal_errors_total{code="rate_limited"} = %v, want more than 100`, limited)
	}
}

// The sampling is shared by all connections: opening many does not
// multiply the lines.
func TestManyConnectionsLogBounded(t *testing.T) {
	t.Parallel()
	hs := newHarness(t)
	before := hs.infoLines()
	for range 100 {
		// A foreign origin: refused before the upgrade, logged.
		if _, _, err := hs.tryDial(http.Header{"Origin": {"https://evil.example"}}); err == nil {
			t.Fatal("a foreign origin was accepted")
		}
		c := hs.dial()
		for range 5 {
			c.sendRaw(websocket.MessageText, "nonsense")
			c.expectError(signal.CodeBadJSON)
		}
		c.drop()
	}
	if lines := hs.infoLines() - before; lines >= maxFloodLines {
		t.Errorf("100 connections with 5 errors each wrote %d log lines, want fewer than %d", lines, maxFloodLines)
	}
}
