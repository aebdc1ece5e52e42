package pionlog

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/quartet-rtc/quartet/internal/logsample"
)

type buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *buffer) lines(substr string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for line := range strings.Lines(b.b.String()) {
		if strings.Contains(line, substr) {
			n++
		}
	}
	return n
}

func newLog(level slog.Level) (*slog.Logger, *buffer) {
	buf := &buffer{}
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: level})), buf
}

func TestRepeatedLinesAreLimitedAndCounted(t *testing.T) {
	t.Parallel()
	log, buf := newLog(slog.LevelInfo)
	limit := NewLimit()
	f := Factory{Log: log, Limit: limit}
	mux, ice := f.NewLogger("udpmux"), f.NewLogger("ice")
	const n = 10_000
	for i := range n {
		mux.Warnf("No Username attribute in STUN message from 10.0.0.%d:9", i%250)
	}
	for range 3 {
		ice.Errorf("a different message: %d", 1)
	}
	got := buf.lines("No Username")
	if got != logsample.DefaultBurst {
		t.Errorf("%d repeated warnings wrote %d lines, want %d", n, got, logsample.DefaultBurst)
	}
	if s := suppressed(t, limit, "udpmux"); int(s)+got != n {
		t.Errorf("suppressed %v + written %d, want %d", s, got, n)
	}
	if got := buf.lines("a different message"); got != 3 {
		t.Errorf("another message wrote %d lines, want 3: it has its own allowance", got)
	}
}

func TestDebugLinesAreNotLimited(t *testing.T) {
	t.Parallel()
	log, buf := newLog(slog.LevelDebug - 4)
	l := Factory{Log: log}.NewLogger("pc")
	for range 100 {
		l.Infof("state %s", "checking") // lowered to debug
		l.Trace("trace")
	}
	if got := buf.lines("state checking"); got != 100 {
		t.Errorf("debug lines: %d of 100 written", got)
	}
	if got := buf.lines("trace"); got != 100 {
		t.Errorf("trace lines: %d of 100 written", got)
	}
}

func TestLoggerWithoutSharedLimitIsLimited(t *testing.T) {
	t.Parallel()
	log, buf := newLog(slog.LevelInfo)
	l := Factory{Log: log}.NewLogger("turn")
	for range 1000 {
		l.Error("failed to handle datagram")
	}
	if got := buf.lines("failed to handle datagram"); got != logsample.DefaultBurst {
		t.Errorf("1000 errors wrote %d lines, want %d", got, logsample.DefaultBurst)
	}
}

func TestLevelsAreLoweredOneStep(t *testing.T) {
	t.Parallel()
	log, buf := newLog(slog.LevelDebug)
	l := Factory{Log: log}.NewLogger("x")
	l.Info("i")
	l.Warn("w")
	l.Errorf("e%d", 1)
	l.Debug("d") // below debug: not written
	for _, want := range []string{"level=DEBUG msg=i", "level=INFO msg=w", "level=WARN msg=e1"} {
		if buf.lines(want) != 1 {
			t.Errorf("no line %q in\n%s", want, buf.b.String())
		}
	}
	if buf.lines("msg=d") != 0 {
		t.Error("pion debug was written at slog debug")
	}
}

func TestSuppressedCountIsReported(t *testing.T) {
	t.Parallel()
	log, buf := newLog(slog.LevelInfo)
	limit := NewLimit()
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	limit.now = func() time.Time { return now }
	l := Factory{Log: log, Limit: limit}.NewLogger("udpmux")
	for range logsample.DefaultBurst + 5 {
		l.Warn("flood")
	}
	if buf.lines("suppressed") != 0 {
		t.Fatal("a line within the burst carried a suppressed count")
	}
	now = now.Add(logsample.DefaultEvery)
	l.Warn("flood")
	if buf.lines("msg=flood pion=udpmux suppressed=5") != 1 {
		t.Fatalf("the line after the interval does not report the 5 left out:\n%s", buf.b.String())
	}
}

func suppressed(t *testing.T, l *Limit, scope string) float64 {
	t.Helper()
	var m dto.Metric
	if err := l.suppressed.WithLabelValues(scope).Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}
