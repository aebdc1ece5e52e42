package server_test

import (
	"bufio"
	"bytes"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/stun/v4"

	"github.com/quartet-rtc/quartet/internal/config"
	"github.com/quartet-rtc/quartet/internal/testserver"
)

// logCapture is a log sink that tests can count lines in.
type logCapture struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logCapture) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// lines returns the lines logged so far that contain substr ("" for all).
func (l *logCapture) lines(substr string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(l.buf.Bytes()))
	for sc.Scan() {
		if strings.Contains(sc.Text(), substr) {
			out = append(out, sc.Text())
		}
	}
	return out
}

// startLoggedServer runs a server whose log, at the default level (info),
// goes to the returned capture.
func startLoggedServer(t *testing.T, mutate func(*config.Config)) (*testServer, *logCapture) {
	t.Helper()
	logs := &logCapture{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	return &testServer{testserver.Start(t, testserver.Options{Config: mutate, Log: log})}, logs
}

// metric reads one series from /metrics, e.g.
// `quartet_signal_errors_total{code="too_large"}`; absent is 0.
func (s *testServer) metric(t *testing.T, series string) float64 {
	t.Helper()
	code, body := s.api(t, "GET", "/metrics", "")
	if code != 200 {
		t.Fatalf("GET /metrics: %d", code)
	}
	for line := range strings.SplitSeq(body, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("metric %s: %v", line, err)
			}
			return f
		}
	}
	return 0
}

// maxFloodLines bounds what a flood may add to the log.
const maxFloodLines = 50

// bindingWithoutUsername is the 28-byte STUN binding request of the
// report: anyone can send it, from any spoofed address.
func bindingWithoutUsername(t *testing.T) []byte {
	t.Helper()
	m, err := stun.Build(stun.TransactionID, stun.BindingRequest, stun.Fingerprint)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Raw) != 28 {
		t.Fatalf("binding request is %d bytes, want 28", len(m.Raw))
	}
	return m.Raw
}

// STUN nobody asked for, sent to the media port, is logged rate-limited
// and counted.
func TestMediaPortSTUNFloodLogIsBounded(t *testing.T) {
	t.Parallel()
	srv, logs := startLoggedServer(t, nil)
	conn, err := net.Dial("udp4", srv.MediaAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	const (
		n     = 10_000
		batch = 100 // small enough for the default socket buffer: none is lost
		what  = "No Username attribute"
	)
	suppressed := func() float64 {
		return srv.metric(t, `quartet_pion_log_suppressed_total{scope="udpmux"}`)
	}
	for sent := 0; sent < n; {
		for range batch {
			if _, err := conn.Write(bindingWithoutUsername(t)); err != nil {
				t.Fatal(err)
			}
			sent++
		}
		waitUntil(t, 10*time.Second, "the media port to take the requests", func() bool {
			logged := len(logs.lines(what))
			return logged >= sent || logged+int(suppressed()) >= sent
		})
	}
	logged := len(logs.lines(what))
	t.Logf("%d STUN requests: %d lines logged, %v suppressed", n, logged, suppressed())
	if logged >= maxFloodLines {
		t.Errorf("%d STUN requests wrote %d log lines, want fewer than %d", n, logged, maxFloodLines)
	}
	if got := suppressed(); int(got)+logged != n {
		t.Errorf("suppressed %v + logged %d, want %d", got, logged, n)
	}
}
